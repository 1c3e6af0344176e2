#!/usr/bin/python3
"""CPU backend GEMM throughput against NumPy/OpenBLAS at SD-like shapes.

Runs BenchmarkSDShapes of ./cpu (GOMAXPROCS 1 and 2) and NumPy's float32
matmul at the same shapes (OPENBLAS_NUM_THREADS 1 and 2, each in its own
process), interleaving the two engines over several rounds so that load
from other processes affects both alike, and prints the median GMAC/s of
each and their ratio. NumPy's conv is timed as the GEMM alone
(W[Cout, Cin·k·k] @ cols[Cin·k·k, H·H], the im2col not timed); ours
includes the patch gathering. Run from the repository root:

    /usr/bin/python3 cpu/bench/compare.py [--rounds 3] [--threads 1,2]

Python is used only here, never by the product.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

NUMPY_CHILD = r'''
import sys, time
import numpy as np
rng = np.random.default_rng(1)
for s in sys.argv[1:]:
    p = [int(v) for v in s.split("_")[1:]]
    if s.startswith("mm_"):
        M, K, N = p
        a = rng.standard_normal((M, K), dtype=np.float32)
        w = rng.standard_normal((N, K), dtype=np.float32)
        b = rng.standard_normal(N, dtype=np.float32)
        f = lambda: a @ w.T + b
        macs = M * K * N
    else:
        Cin, Cout, H, k = p
        K = Cin * k * k
        w = rng.standard_normal((Cout, K), dtype=np.float32)
        cols = rng.standard_normal((K, H * H), dtype=np.float32)
        b = rng.standard_normal((Cout, 1), dtype=np.float32)
        f = lambda: w @ cols + b
        macs = Cout * K * H * H
    f()
    n, t = 0, 0.0
    best = []
    while t < 0.4 or n < 3:
        t0 = time.perf_counter(); f(); dt = time.perf_counter() - t0
        best.append(dt); t += dt; n += 1
    print(s, macs / sorted(best)[len(best) // 2] / 1e9)
'''


def shapes(root):
    src = open(os.path.join(root, "cpu", "bench_test.go")).read()
    block = src[src.index("var sdShapes"):]
    block = block[:block.index("}")]
    return re.findall(r'"((?:mm|conv)_[0-9_]+)"', block)


def run_go(root, threads, tags=None):
    cmd = ["go", "test", "./cpu", "-run", "^$", "-bench", "^BenchmarkSDShapes$",
           "-benchtime", "0.4s", "-cpu", str(threads)]
    if tags:
        cmd += ["-tags", tags]
    out = subprocess.run(
        cmd,
        cwd=root, capture_output=True, text=True, check=True).stdout
    res = {}
    for line in out.splitlines():
        m = re.match(r"BenchmarkSDShapes/(\S+?)(?:-\d+)?\s+\d+\s+\S+ ns/op\s+(\S+) GMAC/s", line)
        if m:
            res[m.group(1)] = float(m.group(2))
    return res


def run_numpy(names, threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    out = subprocess.run(["/usr/bin/python3", "-c", NUMPY_CHILD] + names,
                         env=env, capture_output=True, text=True, check=True).stdout
    return {l.split()[0]: float(l.split()[1]) for l in out.splitlines()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--portable", action="store_true",
                    help="also measure the portable float64 path (-tags purego), the backend before the GEMM")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    names = shapes(root)
    threads = [int(t) for t in args.threads.split(",")]
    ours = {t: {n: [] for n in names} for t in threads}
    theirs = {t: {n: [] for n in names} for t in threads}
    portable = {t: {n: [] for n in names} for t in threads}
    for r in range(args.rounds):
        for t in threads:
            for n, v in run_go(root, t).items():
                ours[t][n].append(v)
            for n, v in run_numpy(names, t).items():
                theirs[t][n].append(v)
            if args.portable:
                for n, v in run_go(root, t, "purego").items():
                    portable[t][n].append(v)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    import numpy
    print(f"NumPy {numpy.__version__}; medians of {args.rounds} interleaved rounds; GMAC/s (higher is better)")
    print()
    extra = " portable (float64) GMAC/s |" if args.portable else ""
    print("| shape | threads | ours GMAC/s | NumPy GMAC/s | NumPy/ours |" + extra)
    print("|---|---|---|---|---|" + ("---|" if args.portable else ""))
    for t in threads:
        for n in names:
            o, p = statistics.median(ours[t][n]), statistics.median(theirs[t][n])
            row = f"| {n} | {t} | {o:.1f} | {p:.1f} | {p / o:.2f} |"
            if args.portable:
                row += f" {statistics.median(portable[t][n]):.1f} |"
            print(row)


if __name__ == "__main__":
    main()
