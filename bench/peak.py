"""The machine's floating-point peak: independent fused multiply-adds on 1 and 2 threads, float32 and float64.

    .venv/bin/python bench/peak.py                    # a table
    .venv/bin/python bench/peak.py --threads 1,2 --json   # one JSON line (what report.py reads)

Each thread runs a compiled loop (Numba) that updates ``ACCUMULATORS`` independent vector registers with
``acc = acc * a + b``: enough independent chains to cover the FMA latency on every port (2 ports x 4-5
cycles), few enough to stay in registers (32 with AVX-512, 16 with AVX2). All threads start together
(a barrier); the rate is the threads' total flops (2 per FMA lane) over the wall time from the first start
to the last end, best of ``--repeats``. The result is checked against the closed form, so the loop cannot
have been shortened.

The loop is compiled in a child process with LLVM's tuning flag ``prefer-256-bit`` turned off: LLVM
prefers 256-bit vectors on Intel's AVX-512 CPUs (a frequency heuristic), which would halve the measured
peak there. The generated assembly is read back, and the report names the FMA instruction and register
width it found (``zmm`` = 512-bit, ``ymm`` = 256-bit).
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections import Counter

X86 = platform.machine().lower() in ("x86_64", "amd64")
REGISTER_BITS = {"zmm": 512, "ymm": 256, "xmm": 128}


def _host_features():
    """LLVM's feature string for this CPU (what Numba compiles for)."""
    import llvmlite.binding as llvm

    return os.environ.get("NUMBA_CPU_FEATURES") or llvm.get_host_cpu_features().flatten()


def vector_bits():
    """The widest vector registers the CPU has, per LLVM's features: 512, 256 or 128."""
    features = set(_host_features().split(","))
    return 512 if "+avx512f" in features else 256 if "+avx" in features else 128


def accumulators():
    """Independent accumulators: 16 of AVX-512's 32 registers, 12 of AVX2's 16 (2 hold a and b)."""
    return 16 if vector_bits() == 512 else 12


def _kernel(n_values):
    """A compiled loop of n_values independent ``acc = acc * a + b`` per iteration (contracted to FMAs)."""
    import numpy as np
    from numba import njit

    @njit(fastmath={"contract"}, nogil=True, cache=False)
    def fma_loop(iterations, a, b, x0):
        acc = np.full(n_values, x0)
        for _ in range(iterations):
            for j in range(n_values):  # a constant trip count: unrolled, vectorized, kept in registers
                acc[j] = acc[j] * a + b
        return acc.sum()

    return fma_loop


def fma_instructions(kernel):
    """Counter of (mnemonic, register kind) of the FMA instructions in ``kernel``'s compiled code."""
    asm = kernel.inspect_asm(kernel.signatures[0])
    return Counter((m.group(1), m.group(2)) for m in re.finditer(r"\b(vfn?m(?:add|sub)\w*)\s+%?([xyz]mm)", asm))


def expected_result(n_values, iterations, a, b, x0):
    """The loop's return value in closed form: n_values * (x0 a^k + b (1 - a^k) / (1 - a))."""
    ak = a**iterations
    return n_values * (x0 * ak + b * (1 - ak) / (1 - a))


def measure(dtype, threads, seconds=0.1, repeats=5):
    """GFLOP/s of the FMA loop on ``threads`` threads at once (this process must not have compiled with
    LLVM's 256-bit preference: run through :func:`run`). Returns a dict with the rate and the FMA
    instructions found."""
    import numpy as np

    dtype = np.dtype(dtype)
    lanes = vector_bits() // 8 // dtype.itemsize
    n_values = accumulators() * lanes
    kernel = _kernel(n_values)
    a, b, x0 = dtype.type(0.999), dtype.type(0.001), dtype.type(1.0)
    kernel(16, a, b, x0)
    t0 = time.perf_counter()
    kernel(100000, a, b, x0)
    iterations = max(1000, int(100000 * seconds / (time.perf_counter() - t0)))
    best = 0.0
    for _ in range(repeats):
        barrier, spans, results = threading.Barrier(threads), [], []

        def work():
            barrier.wait()
            start = time.perf_counter()
            results.append(kernel(iterations, a, b, x0))
            spans.append((start, time.perf_counter()))

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wall = max(end for _, end in spans) - min(start for start, _ in spans)
        best = max(best, 2 * n_values * iterations * threads / wall / 1e9)
    want = expected_result(n_values, iterations, float(a), float(b), float(x0))
    if not all(abs(r - want) <= 1e-3 * abs(want) for r in results):
        raise RuntimeError(f"FMA loop returned {results}, expected {want}: the loop did not run as written")
    found = fma_instructions(kernel)
    return {"dtype": dtype.name, "threads": threads, "gflops": best, "accumulators": accumulators(),
            "lanes": lanes, "instructions": {f"{m} {r}": c for (m, r), c in sorted(found.items())},
            "register_bits": max((REGISTER_BITS[r] for _, r in found), default=None)}


def child_env():
    """The environment of the measuring child: Numba compiles for this CPU without LLVM's preference for
    256-bit vectors (x86 only; other CPUs keep their defaults)."""
    env = dict(os.environ)
    if X86:
        env["NUMBA_CPU_FEATURES"] = _host_features() + ",-prefer-256-bit"
    return env


def run(threads=(1, 2), dtypes=("float32", "float64"), seconds=0.1, repeats=5):
    """Measure in a child process (see :func:`child_env`); a list of :func:`measure` dicts."""
    argv = [sys.executable, os.path.abspath(__file__), "--json", "--threads", ",".join(map(str, threads)),
            "--dtypes", ",".join(dtypes), "--seconds", str(seconds), "--repeats", str(repeats)]
    out = subprocess.run(argv, capture_output=True, text=True, env=child_env(), check=False)
    if out.returncode != 0:
        raise RuntimeError(f"peak measurement failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows):
    """Markdown rows: threads, dtype, GFLOP/s, the instruction found."""
    lines = ["| threads | dtype | GFLOP/s | FMA instructions in the compiled loop |", "|---|---|---|---|"]
    for r in rows:
        found = ", ".join(f"{c} x `{name}`" for name, c in r["instructions"].items()) or "none found"
        lines.append(f"| {r['threads']} | {r['dtype']} | {r['gflops']:.1f} | {found} ({r['register_bits']}-bit) |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--seconds", type=float, default=0.1, help="length of one timed run (default 0.1)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs, the best kept (default 5)")
    parser.add_argument("--json", action="store_true", help="measure in this process, print one JSON line")
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    dtypes = args.dtypes.split(",")
    if args.json:
        rows = [measure(d, t, args.seconds, args.repeats) for t in threads for d in dtypes]
        print(json.dumps(rows))
    else:
        print("\n".join(table(run(threads, dtypes, args.seconds, args.repeats))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
