# batchnorm4j: the command line on the CUDA 12 runtime (cuBLAS 12, cuDNN 9) with a Java 17 runtime.
#
#   docker build -t batchnorm4j .
#   docker run --rm --gpus all batchnorm4j                      # prints `info`, then runs `check`
#   docker run --rm --gpus all batchnorm4j check --backends cpu,cuda,cudnn
#
# docs/docker.md says what the host needs (an NVIDIA driver for CUDA 12.0 or newer and the NVIDIA Container
# Toolkit), how to mount data for `train`, and what works without a GPU.
# src/test/java/io/github/batchnorm4j/DockerfileTest.java checks this file against the repository and the pom.

# ---- build: Maven and JDK 17 package the runnable jar, target/batchnorm4j-cli.jar ----
FROM maven:3.9.11-eclipse-temurin-17 AS build
WORKDIR /build
# The pom alone first: this dependency layer is rebuilt only when pom.xml changes, not on every source edit.
# A package run of the pom alone (no sources; its output is discarded) resolves every dependency and every
# plugin's own dependencies that the real build uses, so that build then needs nothing more from the network;
# dependency:go-offline misses the plugins' dependencies (measured: 128 artifacts were still downloaded after it).
COPY pom.xml ./
RUN mvn -B -q -DskipTests package && rm -rf target
# The kernels' PTX is committed under src/main/resources, so the Java build needs neither cuda/ nor nvcc.
COPY src ./src
RUN mvn -B -q -DskipTests package

# ---- jre: Eclipse Temurin's Java 17 runtime, the same vendor as the build stage's JDK ----
# Copied whole into the CUDA image below (the way Adoptium documents for other base images) rather than installing
# Ubuntu's openjdk-17 packages: the Java update is fixed by this tag, the JRE is the one the build stage's JDK
# comes from, and apt pulls in no Java dependency tree.
FROM eclipse-temurin:17.0.17_10-jre-noble AS jre

# ---- runtime: NVIDIA's CUDA 12.6 runtime with cuDNN 9 (libcublas.so.12, libcudnn.so.9) on Ubuntu 24.04 ----
# The host's driver provides libcuda.so.1 through the NVIDIA Container Toolkit.
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 AS runtime

LABEL org.opencontainers.image.title="batchnorm4j" \
      org.opencontainers.image.description="Batch normalization for Java on NVIDIA GPUs: the batchnorm4j command line on CUDA 12 with cuDNN 9"

ENV JAVA_HOME=/opt/java/openjdk
ENV PATH="/opt/batchnorm4j/bin:${JAVA_HOME}/bin:${PATH}" \
    LANG=C.UTF-8 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    NVIDIA_REQUIRE_CUDA="cuda>=12.0"
# NVIDIA_REQUIRE_CUDA: the base image asks for a CUDA 12.6 driver (or one of a few datacenter branches), but this
# image needs only CUDA 12.0: the PTX is ISA 8.0, and cuBLAS 12 and cuDNN 9 run on any CUDA 12 driver
# (minor-version compatibility). For the same reason the forward-compatibility libcuda of the base image is
# removed below: a container toolkit that finds it newer than the host's driver would load it instead, and it
# fails on GPUs without forward-compatibility support (GeForce and most workstation cards).

COPY --from=jre /opt/java/openjdk /opt/java/openjdk

# One layer: fontconfig and one font (Java2D needs them to draw the text of the PNG charts that `train` writes,
# headless); the forward-compatibility package out (see NVIDIA_REQUIRE_CUDA above; dpkg fails loudly should
# anything depend on it); a check that the base image's NCCL (libnccl2, which NVIDIA's runtime images carry and its
# base images do not) is there, since data-parallel batch norm across processes (NcclCollective) loads it; the
# unprivileged user and its working directory. The two packages' versions are not
# pinned (linter rule ER0012, hadolint's DL3008): Ubuntu's archive drops superseded versions, so a pin would
# break the build, and the pinned base image already fixes the Ubuntu release.
# linter ignore=ER0012
RUN apt-get update \
    && apt-get install -y --no-install-recommends fontconfig fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/* \
    && dpkg --purge cuda-compat-12-6 \
    && { ldconfig -p | grep -q 'libnccl\.so\.2 ' || { echo 'libnccl.so.2 (NCCL) missing from the base image' >&2; exit 1; }; } \
    && useradd --no-log-init --create-home --uid 10001 --user-group --shell /usr/sbin/nologin batchnorm4j \
    && install -d -o batchnorm4j -g batchnorm4j /work

COPY --from=build /build/target/batchnorm4j-cli.jar /opt/batchnorm4j/batchnorm4j-cli.jar
COPY --chmod=0755 src/main/docker/batchnorm4j /opt/batchnorm4j/bin/batchnorm4j

USER batchnorm4j
WORKDIR /work

# The launcher passes its arguments to the command line (`docker run IMAGE forward ...`); with none it prints
# `info` and then runs `check`, the image's self-test.
ENTRYPOINT ["/opt/batchnorm4j/bin/batchnorm4j"]
CMD []
