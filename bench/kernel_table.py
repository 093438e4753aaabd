"""A markdown table of the kernel benchmarks from a saved pytest-benchmark run (``make bench`` saves one).

    .venv/bin/python bench/kernel_table.py                       # the newest file under .benchmarks/
    .venv/bin/python bench/kernel_table.py .benchmarks/Linux-CPython-3.11-64bit/0001_*.json

One row per group (kernel, shape, dtype): the median time of each backend in microseconds and the speed-up
of numba and cython over the NumPy reference (numpy's median / theirs; above 1 is faster).
"""
import glob
import json
import os
import sys


def newest():
    files = glob.glob(os.path.join(".benchmarks", "*", "*.json"))
    if not files:
        sys.exit("no saved run under .benchmarks/: run `make bench` first")
    return max(files, key=os.path.getmtime)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else newest()
    with open(path) as f:
        run = json.load(f)
    groups = {}
    for bench in run["benchmarks"]:
        backend = bench.get("extra_info", {}).get("backend")
        if backend is None:
            continue
        groups.setdefault(bench["group"], {})[backend] = bench["stats"]["median"] * 1e6
    print(f"Kernel medians in microseconds, from `{path}`.\n")
    print("| kernel-shape-dtype | numpy µs | numba µs | cython µs | numba speed-up | cython speed-up |")
    print("|---|---|---|---|---|---|")
    for group in sorted(groups):
        row = groups[group]
        cells = [f"{row[b]:.1f}" if b in row else "–" for b in ("numpy", "numba", "cython")]
        ups = [f"{row['numpy'] / row[b]:.2f}x" if "numpy" in row and b in row else "–" for b in ("numba", "cython")]
        print(f"| {group} | " + " | ".join(cells + ups) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
