#!/usr/bin/env bash
# Regenerates the figures README.md and docs/*.md quote from `batchnorm4j train --compare` (the text between
# <!-- fig:NAME --> and <!-- /fig -->, the JSON example's test_accuracy) and the plot docs/train-compare-digits.png,
# from fresh runs on the CPU backend: the default --compare run, and two more for the learning-rate sweep of
# docs/training.md. DocsFiguresTest (part of `mvn test`) checks the same figures against its own run of the default
# command, so a change that moves them fails the build until this script is run and its diff read and committed.
#
# Usage: scripts/update-doc-figures.sh        (from anywhere; about a minute on 2 cores)
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
cd "$root"
mvn -q -B test -Dtest=DocsFiguresTest -Dbatchnorm4j.updateDocs=true -Dsurefire.failIfNoSpecifiedTests=false
git --no-pager diff --stat -- README.md docs/ || true
