#!/usr/bin/env python3
"""Peer benchmark: PyTorch's CPU batch norm against batchnorm4j's CPU backend on the same inputs.

Run through bench/peer-torch.sh (it builds the Java side, preloads jemalloc for this process and starts it). This
process times torch itself and drives the Java side (io.github.batchnorm4j.cpu.PeerBenchMain, a child process) over
a pipe, one command at a time, so the two never run at once. For every shape and layout:

1. Both sides get the same inputs (x, dy, gamma, beta, running statistics written once as raw float32), and every
   output of one call of each op is compared (batchnorm4j against torch, relative to the output's largest value).
2. Each op is warmed up on each side (by time), then timed in ROUNDS alternating rounds: in each round torch runs
   CALLS calls, then batchnorm4j runs CALLS calls, each call timed alone; a side's figure is the median of all its
   calls. Alternating spreads any background load over both sides alike.

torch's ops are the ATen operators under the nn.functional layer, without autograd (inference mode):
native_batch_norm (training: statistics, y, save_mean/save_invstd, running statistics updated in place; eval: y from
the running statistics) and native_batch_norm_backward (dx, dgamma, dbeta from save_mean/save_invstd).
batchnorm4j's are forwardTraining, forwardInference and backwardTraining of the host API on preallocated outputs.

Ratio = torch time / batchnorm4j time: above 1, batchnorm4j is faster.
"""
import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

OPS = ("forward-train", "forward-eval", "backward")
EPS = 1e-5
MOMENTUM = 0.1
DEFAULT_SHAPES = [
    # the shapes
    ("32,64,56,56", "nchw"), ("32,64,56,56", "nhwc"),
    ("64,128,56,56", "nchw"), ("64,128,56,56", "nhwc"),
    ("256,1024", "nc"),
    # small C, small spatial size, odd sizes
    ("256,3,32,32", "nchw"), ("256,3,32,32", "nhwc"),
    ("128,512,7,7", "nchw"), ("128,512,7,7", "nhwc"),
    ("33,17,15,15", "nchw"), ("33,17,15,15", "nhwc"),
    ("1000,37", "nc"), ("8192,3", "nc"), ("100,1000", "nc"),
]


def load_average():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


class JavaSide:
    def __init__(self, cmd):
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)   # jemalloc is for torch; the JVM keeps glibc's allocator
        env.pop("MALLOC_CONF", None)
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                  bufsize=1)
        self.hello = self._reply()

    def _reply(self):
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("the Java side exited (exit code %s)" % self.p.wait())
        line = line.strip()
        if not line.startswith("ok"):
            raise RuntimeError("Java side: " + line)
        return line[2:].strip()

    def ask(self, *words):
        self.p.stdin.write(" ".join(str(w) for w in words) + "\n")
        self.p.stdin.flush()
        return self._reply()

    def close(self):
        try:
            self.ask("quit")
        finally:
            self.p.wait(timeout=30)


def to_memory_order(t, layout):
    """The tensor's values in the layout's memory order (NHWC for channels-last), as numpy."""
    if layout == "nhwc":
        return t.permute(0, 2, 3, 1).contiguous().numpy()
    return t.contiguous().numpy()


def from_memory_order(a, dims, layout):
    if layout == "nhwc":
        n, c, h, w = dims
        return torch.from_numpy(a.reshape(n, h, w, c)).permute(0, 3, 1, 2)
    return torch.from_numpy(a.reshape(dims))


class TorchSide:
    def __init__(self, dims, layout, x, dy, gamma, beta, rm, rv):
        fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
        self.x = x.contiguous(memory_format=fmt)
        self.dy = dy.contiguous(memory_format=fmt)
        self.gamma, self.beta, self.rm0, self.rv0 = gamma, beta, rm, rv
        self.rm, self.rv = rm.clone(), rv.clone()
        _, self.save_mean, self.save_invstd = torch.ops.aten.native_batch_norm(
            self.x, gamma, beta, rm.clone(), rv.clone(), True, MOMENTUM, EPS)

    def forward_train(self):
        return torch.ops.aten.native_batch_norm(self.x, self.gamma, self.beta, self.rm, self.rv, True, MOMENTUM, EPS)

    def forward_eval(self):
        return torch.ops.aten.native_batch_norm(self.x, self.gamma, self.beta, self.rm0, self.rv0, False, MOMENTUM,
                                                EPS)[0]

    def backward(self):
        return torch.ops.aten.native_batch_norm_backward(self.dy, self.x, self.gamma, self.rm0, self.rv0,
                                                         self.save_mean, self.save_invstd, True, EPS,
                                                         [True, True, True])

    def op(self, name):
        return {"forward-train": self.forward_train, "forward-eval": self.forward_eval,
                "backward": self.backward}[name]


def rel_err(ours, ref):
    ours = np.asarray(ours, dtype=np.float64).ravel()
    ref = np.asarray(ref, dtype=np.float64).ravel()
    if not np.all(np.isfinite(ours)):
        return float("inf")
    scale = max(np.max(np.abs(ref)), 1e-30)
    return float(np.max(np.abs(ours - ref)) / scale)


def check(java, ts, dims, layout, workdir):
    """Max error of every output of batchnorm4j against torch's, relative to the largest value of torch's."""
    java.ask("check", workdir)
    c = dims[1]

    def ours(name, n=None):
        a = np.fromfile(os.path.join(workdir, name), dtype="<f4")
        return a if n is not None else from_memory_order(a, dims, layout)

    rm, rv = ts.rm0.clone(), ts.rv0.clone()
    y, sm, si = torch.ops.aten.native_batch_norm(ts.x, ts.gamma, ts.beta, rm, rv, True, MOMENTUM, EPS)
    dx, dg, db = ts.backward()
    errors = {
        "y": rel_err(ours("y"), y), "save_mean": rel_err(ours("save_mean", c), sm),
        "save_invstd": rel_err(ours("save_invstd", c), si), "running_mean": rel_err(ours("running_mean", c), rm),
        "running_var": rel_err(ours("running_var", c), rv), "y_eval": rel_err(ours("y_eval"), ts.forward_eval()),
        "dx": rel_err(ours("dx"), dx), "dgamma": rel_err(ours("dgamma", c), dg), "dbeta": rel_err(ours("dbeta", c), db),
    }
    return errors


def time_torch(fn, calls, warmup_s):
    start = time.perf_counter()
    i = 0
    while i < 2 or time.perf_counter() - start < warmup_s:
        fn()
        i += 1
    out = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - t0)
    return out


def copy_reference(java, floats, rounds, calls, warmup):
    """Copy bandwidth (bytes read + written per second, median) of torch's Tensor.copy_ (its threads), numpy's copyto
    (one thread: memcpy) and Java's System.arraycopy (1 thread, and split across the threads), alternating rounds."""
    src = torch.arange(floats, dtype=torch.float32)
    dst = torch.empty_like(src)
    a, b = src.numpy(), dst.numpy()
    times = {"torch copy_": [], "numpy copyto": [], "Java arraycopy, 1 thread": [], "Java arraycopy, threads": []}
    for r in range(rounds):
        w = warmup if r == 0 else 0.05
        times["torch copy_"] += time_torch(lambda: dst.copy_(src), calls, w)
        times["numpy copyto"] += time_torch(lambda: np.copyto(b, a), calls, w)
        one, many = java.ask("copy", floats, calls, w).split("|")
        times["Java arraycopy, 1 thread"] += [int(v) for v in one.split()[1:]]
        times["Java arraycopy, threads"] += [int(v) for v in many.split()[1:]]
    return {k: 8.0 * floats / statistics.median(v) for k, v in times.items()}  # bytes / ns = GB/s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--java", required=True, help="command line that starts PeerBenchMain (split on spaces)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--round-seconds", type=float, default=0.3,
                    help="time per side, op and round that sets CALLS (default 0.3; CALLS at least 5)")
    ap.add_argument("--warmup", type=float, default=2.0,
                    help="seconds of warm-up per side and op before round 1 (default 2; the Java side also makes at "
                         "least 30 calls when this is 1 s or more: C2 must have compiled the vector loops)")
    ap.add_argument("--round-warmup", type=float, default=0.05,
                    help="seconds of warm-up per side and op before each later round (caches, spinning threads)")
    ap.add_argument("--shapes", default=None,
                    help="semicolon-separated DIMS:LAYOUT (logical N,C,H,W; layout nchw, nhwc or nc); "
                         "default: the issue's shapes plus small-C, small-spatial and odd shapes")
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--copy", default="6422528,25690112",
                    help="float counts for the copy reference (default: S of 32,64,56,56 and 64,128,56,56; '' skips)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    shapes = DEFAULT_SHAPES if args.shapes is None else [
        (s.split(":")[0], s.split(":")[1].lower()) for s in args.shapes.split(";") if s]
    ops = args.ops.split(",")
    for o in ops:
        if o not in OPS:
            sys.exit("--ops: unknown op '%s' (expected %s)" % (o, ", ".join(OPS)))

    java = JavaSide(args.java.split())
    print("peer benchmark: torch %s (%d threads, %s; LD_PRELOAD=%s MALLOC_CONF=%s) against batchnorm4j (%s)"
          % (torch.__version__, torch.get_num_threads(), torch.__config__.parallel_info().splitlines()[-1].strip(),
             os.environ.get("LD_PRELOAD", "-"), os.environ.get("MALLOC_CONF", "-"), java.hello))
    print("cpu: %s, %d processors; load average at start: %s" % (cpu_model(), os.cpu_count(), load_average()))
    print("JVM options: %s" % " ".join(a for a in args.java.split() if a.startswith("-X")))
    print("rounds %d (alternating), calls per round ~%.2f s per side (at least 5), warm-up %.2f s then %.2f s "
          "per round; times are medians of all calls, ms" % (args.rounds, args.round_seconds, args.warmup,
                                                            args.round_warmup))
    for floats in [int(f) for f in args.copy.split(",") if f]:
        bw = copy_reference(java, floats, args.rounds, 10, args.warmup)
        print("copy of %.1f MB (GB/s, read + written): %s" % (4e-6 * floats, ", ".join(
            "%s %.1f" % (k, v) for k, v in bw.items())), flush=True)
    rows = []
    workdir = tempfile.mkdtemp(prefix="peer-torch-")
    try:
        with torch.inference_mode():
            for dims_text, layout in shapes:
                dims = [int(d) for d in dims_text.split(",")]
                if layout == "nhwc" and len(dims) != 4:
                    sys.exit("layout nhwc needs 4 dims, got " + dims_text)
                c = dims[1]
                g = torch.Generator().manual_seed(args.seed)
                x = torch.randn(dims, generator=g) * 2.0 + 0.5
                dy = torch.randn(dims, generator=g)
                gamma = torch.rand(c, generator=g) + 0.5
                beta = torch.randn(c, generator=g)
                rm = torch.randn(c, generator=g) * 0.1 + 0.5
                rv = torch.rand(c, generator=g) + 3.5
                to_memory_order(x, layout).astype("<f4").tofile(os.path.join(workdir, "x.in"))
                to_memory_order(dy, layout).astype("<f4").tofile(os.path.join(workdir, "dy.in"))
                np.concatenate([gamma.numpy(), beta.numpy(), rm.numpy(), rv.numpy()]).astype("<f4").tofile(
                    os.path.join(workdir, "params.in"))
                java_dims = dims if layout != "nhwc" else [dims[0], dims[2], dims[3], dims[1]]
                java.ask("load", layout, ",".join(str(d) for d in java_dims), os.path.join(workdir, "x.in"),
                         os.path.join(workdir, "dy.in"), os.path.join(workdir, "params.in"))
                ts = TorchSide(dims, layout, x, dy, gamma, beta, rm, rv)
                errors = check(java, ts, dims, layout, workdir)
                worst = max(errors, key=errors.get)
                if not errors[worst] <= 1e-4:
                    sys.exit("%s %s: batchnorm4j's %s differs from torch's by %.3g (relative to its largest value)"
                             % (dims_text, layout, worst, errors[worst]))
                for o in ops:
                    fn = ts.op(o)
                    t0 = time.perf_counter()
                    fn()
                    est = time.perf_counter() - t0
                    calls = max(5, min(2000, int(args.round_seconds / max(est, 1e-6))))
                    tt, tj = [], []
                    for r in range(args.rounds):
                        w = args.warmup if r == 0 else args.round_warmup
                        tt += time_torch(fn, calls, w)
                        tj += [int(v) for v in java.ask("time", o, calls, w).split()]
                    mt = statistics.median(tt) / 1e6
                    mj = statistics.median(tj) / 1e6
                    rows.append((dims_text, layout, o, mt, mj, mt / mj, errors[worst], worst))
                    print("  %-14s %-5s %-14s torch %9.3f ms  batchnorm4j %9.3f ms  ratio %5.2f" %
                          (dims_text, layout, o, mt, mj, mt / mj), flush=True)
    finally:
        java.close()
        shutil.rmtree(workdir, ignore_errors=True)

    print("load average at end: %s" % load_average())
    print()
    print("Ratio = torch time / batchnorm4j time (above 1: batchnorm4j is faster); max err = largest difference of "
          "any output from torch's, relative to that output's largest value.")
    print()
    print("| shape | layout | " + " | ".join(ops) + " | max err |")
    print("| --- | --- | " + " | ".join("---" for _ in ops) + " | --- |")
    by_case = {}
    for r in rows:
        by_case.setdefault((r[0], r[1]), {})[r[2]] = r
    for (dims_text, layout), cells in by_case.items():
        err = max(c[6] for c in cells.values())
        print("| %s | %s | %s | %.1e |" % (dims_text, layout.upper(), " | ".join(
            "%.2f" % cells[o][5] if o in cells else "-" for o in ops), err))
    print()
    print("| shape | layout | op | torch ms | batchnorm4j ms | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print("| %s | %s | %s | %.3f | %.3f | %.2f |" % (r[0], r[1].upper(), r[2], r[3], r[4], r[5]))


if __name__ == "__main__":
    main()
