"""The end-to-end comparison of issue 4, run directly (not through pytest), printed as markdown.

Run from the repository root (a full run takes about 10 minutes on 2 cores):

    .venv/bin/python bench/report.py                        # everything, BLAS/torch threads 1 and 2
    .venv/bin/python bench/report.py --configs a,c --dtypes float32 --threads 2 --skip tta,memory,startup
    .venv/bin/python bench/report.py --json bench/results.json --plot bench/ratios.png

Sections: the machine, the BLAS libraries that ran (threadpoolctl, after loading SciPy's OpenBLAS) and the
thread counts; NumPy's matrix-multiply rate (2048^2); seconds per epoch of the four configurations (see
e2e.py) for every implementation at each thread count, with ratios and GFLOP/s shares; the targets of
issue 4; time to 0.88 test accuracy on Fashion-MNIST (configuration (c)); peak resident memory during
``fit``; import and first-fit time with a cold and a warm Numba cache. Seconds per epoch are the best of
``--repeats`` epochs after a warm-up on 200 rows. For fastnn it is the epoch time ``fit`` records in its
History (what every epoch of a multi-epoch fit costs); the wall time of a one-epoch ``fit`` call, which
adds the per-call input checks, is shown beside it.
"""
import argparse
import gc
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import e2e  # noqa: E402

TARGETS = {  # issue 4: fastnn / torch speed-up, fastnn / NumPy reference, share of the matmul rate
    "a": {"torch": 25.0, "numpy": 3.0},
    "b": {"torch": 10.0},
    "c": {"torch": 3.0},
    "d": {"torch": 1.4, "share": 0.80},
}
TTA_TARGET = 0.88


def fmt_s(x):
    if x is None or x != x:
        return "–"
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


# -- end-to-end -----------------------------------------------------------------------------------------


def run_e2e(args, threads, rates, log):
    """{(key, dtype): {impl: {"epoch": s, "wall": s, "fused": bool}}} at ``threads`` BLAS/torch threads."""
    e2e.set_threads(threads)
    results = {}
    for dtype in args.dtypes:
        data = e2e.load_data(dtype)
        if args.rows:
            data = e2e.subset(data, args.rows)
        (X, y), _, _ = data
        for key in args.configs:
            config = e2e.CONFIGS[key]
            row = results.setdefault((key, dtype), {})
            for impl in args.impls:
                reason = e2e.available(impl)
                if reason:
                    log(f"skip {impl}: {reason}")
                    continue
                e2e.warm_up(impl, config, dtype)
                trainer = e2e.make_trainer(impl, config, X, y)
                walls, epochs = e2e.time_epochs(trainer, args.repeats)
                row[impl] = {"epoch": min(epochs), "wall": min(walls), "fused": trainer.fused,
                             "all": [round(v, 4) for v in epochs], "load": os.getloadavg()[0]}
                log(f"threads {threads} {config.label} {dtype} {impl}: {min(epochs):.3f} s "
                    f"(all {row[impl]['all']}, wall {min(walls):.3f})")
                del trainer
                gc.collect()
    return results


def best_fastnn(row):
    """(name, seconds) of the faster compiled backend in a result row, or (None, None)."""
    found = [(row[b]["epoch"], b) for b in ("numba", "cython") if b in row]
    if not found:
        return None, None
    seconds, name = min(found)
    return name, seconds


def e2e_tables(results, rates, threads, n_rows):
    lines = [f"#### {threads} thread{'s' if threads > 1 else ''} (BLAS and torch)", ""]
    impls = [i for i in e2e.IMPLS if any(i in row for row in results.values())]
    head = "| config | dtype | " + " | ".join(impls) + " | load |"
    lines += ["Seconds per epoch (best of the repeats; fastnn: epoch inside fit, [wall of fit(epochs=1)]; load = the "
              "highest 1-minute load average seen after a cell of the row):", "",
              head, "|" + "---|" * (len(impls) + 3)]
    for (key, dtype), row in results.items():
        cells = []
        for impl in impls:
            r = row.get(impl)
            if r is None:
                cells.append("–")
            elif impl in e2e.FASTNN:
                cells.append(f"{fmt_s(r['epoch'])} [{fmt_s(r['wall'])}]")
            else:
                cells.append(fmt_s(r["epoch"]))
        load = max((r.get("load", 0.0) for r in row.values()), default=0.0)
        lines.append(f"| {key} {e2e.CONFIGS[key].name} | {dtype} | " + " | ".join(cells) + f" | {load:.1f} |")
    lines += ["", "Ratios (other's seconds / fastnn's; fastnn = its faster compiled backend) and achieved GFLOP/s "
              "(6 n sum of layer products per epoch) as a share of the matmul rate at this thread count:", "",
              "| config | dtype | fastnn | vs torch | vs numpy ref | vs numpy loop | vs sklearn | fastnn GFLOP/s (share) "
              "| torch GFLOP/s (share) |", "|---|---|---|---|---|---|---|---|---|"]
    for (key, dtype), row in results.items():
        name, ours = best_fastnn(row)
        if ours is None:
            continue
        rate = rates.get((dtype, threads))
        flops = e2e.CONFIGS[key].flops_per_epoch(n_rows)

        def ratio(other):
            return f"{row[other]['epoch'] / ours:.1f}x" if other in row else "–"

        def share(seconds):
            g = flops / seconds / 1e9
            return f"{g:.1f} ({g / rate:.0%})" if rate else f"{g:.1f}"

        torch_share = share(row["torch"]["epoch"]) if "torch" in row else "–"
        lines.append(f"| {key} | {dtype} | {name} {fmt_s(ours)} s | {ratio('torch')} | {ratio('numpy')} | "
                     f"{ratio('numpy-loop')} | {ratio('sklearn')} | {share(ours)} | {torch_share} |")
    return lines


def targets_table(results, rates, threads, n_rows):
    """Issue 4's targets against this run (at ``threads``)."""
    lines = ["| config | target | achieved (dtype) | status |", "|---|---|---|---|"]
    for key, goals in TARGETS.items():
        for dtype in ("float32", "float64"):
            row = results.get((key, dtype))
            if not row:
                continue
            name, ours = best_fastnn(row)
            if ours is None:
                continue
            for what, goal in goals.items():
                if what == "share":
                    rate = rates.get((dtype, threads))
                    if not rate:
                        continue
                    got = e2e.CONFIGS[key].flops_per_epoch(n_rows) / ours / 1e9 / rate
                    status = "met" if got >= goal else f"missed by {1 - got / goal:.0%}"
                    lines.append(f"| {key} | >= {goal:.0%} of matmul rate | {got:.0%} ({dtype}, {name}) | {status} |")
                    continue
                if what not in row:
                    continue
                got = row[what]["epoch"] / ours
                need = row[what]["epoch"] / goal
                status = "met" if got >= goal else (f"missed by {1 - got / goal:.0%} (needs {need:.3f} s/epoch, "
                                                    f"has {ours:.3f})")
                label = "torch" if what == "torch" else "NumPy reference"
                lines.append(f"| {key} | >= {goal:g}x {label} | {got:.1f}x ({dtype}, {name}) | {status} |")
    return lines


# -- one against two threads, paired -----------------------------------------------------------------


def run_threads_ab(args, log, pairs=4):
    """Alternate 1-thread and 2-thread epochs of one trainer, so both see the same machine load.

    Returns {(key, dtype, impl): {1: [seconds...], 2: [seconds...]}} for fastnn's cython backend and torch.
    """
    out = {}
    for key in [k for k in ("a", "c", "d") if k in args.configs]:
        dtype = "float32"
        config = e2e.CONFIGS[key]
        (X, y), _, _ = e2e.subset(e2e.load_data(dtype), args.rows) if args.rows else e2e.load_data(dtype)
        for impl in ("cython", "torch"):
            if impl not in args.impls or e2e.available(impl):
                continue
            e2e.warm_up(impl, config, dtype)
            trainer = e2e.make_trainer(impl, config, X, y)
            times = {1: [], 2: []}
            for _ in range(pairs):
                for threads in (1, 2):
                    e2e.set_threads(threads)
                    times[threads].append(trainer.epoch()[1])
            out[(key, dtype, impl)] = times
            log(f"threads A/B {key} {impl}: {times}")
    return out


def threads_ab_table(ab):
    lines = ["| config | impl | 1 thread: median (worst) s | 2 threads: median (worst) s | 2 threads faster in |",
             "|---|---|---|---|---|"]
    for (key, dtype, impl), times in ab.items():
        one, two = times[1], times[2]
        wins = sum(b < a for a, b in zip(one, two))
        lines.append(f"| {key} {e2e.CONFIGS[key].name} {dtype} | {impl} | {np.median(one):.3f} ({max(one):.3f}) | "
                     f"{np.median(two):.3f} ({max(two):.3f}) | {wins} of {len(one)} pairs |")
    return lines


# -- time to accuracy ---------------------------------------------------------------------------------


def run_tta(args, log):
    """Seconds of training (evaluation excluded) until test accuracy >= 0.88, configuration (c), float32."""
    config = e2e.CONFIGS["c"]
    (X, y), (Xt, yt), source = e2e.load_data("float32")
    if args.rows:
        X, y = X[:args.rows], y[:args.rows]
    out = {}
    for impl in ("cython", "numba", "numpy", "torch", "sklearn"):
        if impl not in args.impls or e2e.available(impl):
            continue
        e2e.warm_up(impl, config, "float32")
        trainer = e2e.make_trainer(impl, config, X, y)
        total, acc, epochs = 0.0, 0.0, 0
        for epochs in range(1, args.tta_max_epochs + 1):
            total += trainer.epoch()[0]
            acc = trainer.accuracy(Xt, yt)
            if acc >= TTA_TARGET:
                break
        out[impl] = {"seconds": total, "epochs": epochs, "accuracy": acc, "reached": acc >= TTA_TARGET}
        log(f"time to accuracy {impl}: {out[impl]}")
    return out, source


# -- memory and start-up (child processes) ------------------------------------------------------------


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def child_memory(key, dtype, impl):
    """In a fresh process: RSS after imports + warm-up, after loading the data, and the peak during fit."""
    import resource

    config = e2e.CONFIGS[key]
    e2e.warm_up(impl, config, dtype)
    gc.collect()
    base_kb = _status_kb("VmRSS")
    (X, y), _, _ = e2e.load_data(dtype)
    e2e._DATA.clear()  # keep the training set only: the test images are not part of what fit needs
    trainer = e2e.make_trainer(impl, config, X, y)
    gc.collect()
    before_kb = _status_kb("VmRSS")
    try:  # reset the high-water mark (VmHWM) to the current RSS: Linux >= 4.0
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    trainer.epoch()
    itemsize = np.dtype(dtype).itemsize
    params = config.param_count()
    state_rows = {"sgd": 0, "momentum": 1, "adam": 2}[config.optimizer]
    acts = config.batch * sum(config.sizes) * 2  # z and a of every layer, one batch
    print(json.dumps({
        "base_mb": base_kb / 1024, "before_fit_mb": before_kb / 1024, "peak_fit_mb": _status_kb("VmHWM") / 1024,
        "hwm_reset": reset, "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "data_mb": (X.nbytes + y.nbytes) / 2**20, "params_mb": params * itemsize / 2**20,
        "state_mb": state_rows * params * itemsize / 2**20, "acts_mb": acts * itemsize / 2**20,
        "fused": trainer.fused,
    }))


STARTUP_CODE = r"""
import json, sys, time
t0 = time.perf_counter()
import fastnn
t_import = time.perf_counter() - t0
t0 = time.perf_counter()
fastnn.set_backend(sys.argv[1])
t_backend = time.perf_counter() - t0
sys.path.insert(0, sys.argv[2])
import numpy as np
import e2e
rng = np.random.default_rng(0)
X = rng.random((1000, 784)).astype(np.float32)
y = rng.integers(0, 10, 1000)
times = []
for _ in range(2):
    trainer = e2e.FastnnTrainer(sys.argv[1], e2e.CONFIGS["a"], X, y)
    t0 = time.perf_counter()
    trainer.epoch()
    trainer.model.predict(X[:10])
    times.append(time.perf_counter() - t0)
print(json.dumps({"import_s": t_import, "backend_s": t_backend, "first_fit_s": times[0], "second_fit_s": times[1]}))
"""


def run_startup_child(impl, env):
    """A fresh interpreter: import time of fastnn (with NumPy), backend load, first and second fit of
    (a) 784-30-10 on 1,000 rows plus a predict."""
    out = subprocess.run([sys.executable, "-c", STARTUP_CODE, impl, HERE], capture_output=True, text=True,
                         env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"start-up child {impl} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_child(argv, env=None):
    # Through `sh -c '...; exit'` so that sh forks the child: a process started straight from this one
    # (vfork + exec) inherits this process's peak RSS as its own ru_maxrss.
    command = [sys.executable, os.path.abspath(__file__)] + argv
    out = subprocess.run(["sh", "-c", '"$@"; exit $?', "sh"] + command, capture_output=True, text=True,
                         env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child {argv} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_memory(args, log):
    rows = []
    plan = [("a", "float32", "cython"), ("c", "float32", "cython"), ("d", "float32", "cython"),
            ("d", "float64", "cython"), ("d", "float32", "numba"), ("d", "float32", "torch")]
    for key, dtype, impl in plan:
        if impl not in args.impls or e2e.available(impl):
            continue
        r = run_child(["--child", "memory", key, dtype, impl])
        r.update(key=key, dtype=dtype, impl=impl)
        rows.append(r)
        log(f"memory {key} {dtype} {impl}: {r}")
    return rows


def run_startup(args, log):
    rows = []
    cache = tempfile.mkdtemp(prefix="fastnn-report-numba-")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    for label, impl in (("numba, cold cache", "numba"), ("numba, warm cache", "numba"), ("cython", "cython"),
                        ("numpy", "numpy")):
        r = run_startup_child(impl, env)
        r["label"] = label
        rows.append(r)
        log(f"startup {label}: {r}")
    return rows


# -- the report -----------------------------------------------------------------------------------------


def versions():
    out = {"python": sys.version.split()[0], "numpy": np.__version__}
    for name in ("scipy", "numba", "torch", "sklearn", "threadpoolctl", "fastnn"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = "not installed"
    return out


def plot_ratios(all_results, path, log):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed: no plot")
        return False
    fig, ax = plt.subplots(figsize=(8, 4))
    labels, width = None, 0.8 / max(1, len(all_results))
    for i, (threads, results) in enumerate(sorted(all_results.items())):
        keys = [k for k in results if best_fastnn(results[k])[1] and "torch" in results[k]]
        labels = [f"{k}\n{d}" for k, d in keys]
        values = [results[k]["torch"]["epoch"] / best_fastnn(results[k])[1] for k in keys]
        ax.bar(np.arange(len(keys)) + i * width, values, width, label=f"{threads} thread(s)")
        goals = [TARGETS[k]["torch"] for k, _ in keys]
    if labels:
        centres = np.arange(len(labels)) + width * (len(all_results) - 1) / 2
        ax.hlines(goals, centres - 0.45, centres + 0.45, colors="black", linestyles="dashed", label="issue 4 target")
        ax.set_xticks(centres, labels)
    ax.set_yscale("log")
    ax.set_ylabel("torch seconds / fastnn seconds per epoch")
    ax.set_title("fastnn speed-up over PyTorch CPU (higher is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="a,b,c,d")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--impls", default=",".join(e2e.IMPLS))
    parser.add_argument("--threads", default="1,2", help="BLAS/torch thread counts to run, e.g. 1,2")
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs per cell (default 2)")
    parser.add_argument("--rows", type=int, default=0, help="train on the first ROWS rows only (quick checks)")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: e2e,ab,tta,memory,startup")
    parser.add_argument("--tta-max-epochs", type=int, default=30)
    parser.add_argument("--json", default="", help="also write the raw results here")
    parser.add_argument("--plot", default="", help="also plot the torch ratios to this PNG (needs matplotlib)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_memory(*args.child[1:])
        return 0
    args.configs = args.configs.split(",")
    args.dtypes = args.dtypes.split(",")
    args.impls = args.impls.split(",")
    skip = set(filter(None, args.skip.split(",")))
    thread_counts = [int(t) for t in args.threads.split(",")]

    def log(msg):
        print(f"# {msg}", file=sys.stderr, flush=True)

    import fastnn.threads  # noqa: F401  (fails early with a clear message if threadpoolctl is missing)

    started = time.time()
    load_start = os.getloadavg()
    info = e2e.machine()
    (_, _), _, source = e2e.load_data(args.dtypes[0])
    n_rows = args.rows or e2e.N_TRAIN
    rates = {}

    def measure_rates():
        # Best of the measurements so far: the rate the hardware gives, not a moment when another job held a core.
        for threads in thread_counts:
            e2e.set_threads(threads)
            for dtype in ("float32", "float64"):
                rate = e2e.matmul_gflops(dtype)
                rates[(dtype, threads)] = max(rate, rates.get((dtype, threads), 0.0))
                log(f"matmul {dtype} {threads} threads: {rate:.1f} GFLOP/s")

    measure_rates()
    blas = e2e.blas_info()
    all_results = {}
    if "e2e" not in skip:
        for threads in thread_counts:
            all_results[threads] = run_e2e(args, threads, rates, log)
    ab = run_threads_ab(args, log) if "ab" not in skip else {}
    tta, tta_source = {}, None
    if "tta" not in skip:
        for threads in thread_counts:
            e2e.set_threads(threads)
            tta[threads], tta_source = run_tta(args, log)
    measure_rates()
    default_threads = max(thread_counts)
    e2e.set_threads(default_threads)
    memory = run_memory(args, log) if "memory" not in skip else []
    startup = run_startup(args, log) if "startup" not in skip else []
    load_end = os.getloadavg()
    minutes = (time.time() - started) / 60

    v = versions()
    torch_threads = "–"
    if v["torch"] != "not installed":
        import torch

        torch_threads = f"{torch.get_num_threads()} intra-op (set per run)"
    L = ["## Machine and libraries", "",
         f"- CPU: {info['cpu']}, {info['cores']} cores; load average {load_start[0]:.2f} at the start, "
         f"{load_end[0]:.2f} at the end (other jobs shared the machine)",
         "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
         "- BLAS (threadpoolctl, after `import scipy.linalg.cython_blas`): " + "; ".join(blas),
         "  - numba's `np.dot` and the cython kernels call SciPy's OpenBLAS; the numpy backend, the NumPy loop and "
         "the matmul rate use NumPy's.",
         f"- Threads: BLAS and torch set to each of {thread_counts} in turn (`fastnn.set_num_threads`, "
         f"`torch.set_num_threads`); torch {torch_threads}",
         f"- Data: {source}, {n_rows} training rows; {args.repeats} timed epochs per cell, best reported",
         f"- Command: `{' '.join(shlex.quote(a) for a in [os.path.relpath(sys.executable)] + sys.argv)}` "
         f"({minutes:.1f} min)", ""]
    L += ["## Matrix-multiply rate (NumPy `a @ b`, 2048 x 2048; best of 10 products, measured before and after "
          "the epochs, the better kept)", "",
          "| threads | float32 GFLOP/s | float64 GFLOP/s |", "|---|---|---|"]
    for threads in thread_counts:
        L.append(f"| {threads} | {rates[('float32', threads)]:.1f} | {rates[('float64', threads)]:.1f} |")
    L.append("")
    if all_results:
        L += ["## Seconds per epoch", ""]
        for c in args.configs:
            L.append(f"- {e2e.CONFIGS[c].label}")
        L.append("")
        for threads, results in all_results.items():
            L += e2e_tables(results, rates, threads, n_rows) + [""]
        for threads, results in all_results.items():
            L += [f"## Targets of issue 4 at {threads} thread{'s' if threads > 1 else ''}", ""]
            L += targets_table(results, rates, threads, n_rows) + [""]
        if len(all_results) > 1:
            best = {}
            for results in all_results.values():
                for kd, row in results.items():
                    merged = best.setdefault(kd, {})
                    for impl, r in row.items():
                        if impl not in merged or r["epoch"] < merged[impl]["epoch"]:
                            merged[impl] = r
            L += ["## Targets of issue 4, each side at its better thread count (conservative)", "",
                  "Every implementation's best seconds per epoch over the thread counts above; the matmul share "
                  f"uses the {max(thread_counts)}-thread rate.", ""]
            L += targets_table(best, rates, max(thread_counts), n_rows) + [""]
            L += ["## One against two threads (fastnn's faster compiled backend; seconds per epoch)", "",
                  "| config | dtype | " + " | ".join(f"{t} thr" for t in all_results) + " | torch " +
                  " | torch ".join(f"{t} thr" for t in all_results) + " |",
                  "|---|---|" + "---|" * (2 * len(all_results))]
            for key_dtype in next(iter(all_results.values())):
                ours = [best_fastnn(all_results[t].get(key_dtype, {})) for t in all_results]
                theirs = [all_results[t].get(key_dtype, {}).get("torch", {}).get("epoch") for t in all_results]
                L.append(f"| {key_dtype[0]} | {key_dtype[1]} | " + " | ".join(f"{fmt_s(s)} ({n})" for n, s in ours) +
                         " | " + " | ".join(fmt_s(s) for s in theirs) + " |")
            L.append("")
    if ab:
        L += ["## One against two threads, paired (float32; each pair: a 1-thread epoch, then a 2-thread epoch of "
              "the same trainer, so both see the same load)", ""] + threads_ab_table(ab) + [""]
    if tta:
        L += [f"## Time to {TTA_TARGET} test accuracy ({e2e.CONFIGS['c'].label}, float32)",
              "", f"Data: {tta_source}. Training seconds only (wall time of each one-epoch `fit` / loop; the test set "
              "is evaluated after each epoch, untimed); each library's default initialisation "
              f"(at most {args.tta_max_epochs} epochs).", "",
              "| threads | implementation | seconds | epochs | test accuracy |", "|---|---|---|---|---|"]
        for threads, rows in tta.items():
            for impl, r in rows.items():
                mark = "" if r["reached"] else " (not reached)"
                L.append(f"| {threads} | {impl} | {fmt_s(r['seconds'])}{mark} | {r['epochs']} | {r['accuracy']:.4f} |")
        L.append("")
    if memory:
        L += ["## Peak resident memory during one epoch of `fit`", "",
              "base = RSS after imports and a warm-up fit (interpreter + libraries + compiled code); "
              "need = data + parameters + optimizer state + one batch of activations (z and a); "
              "peak = VmHWM during the epoch (reset just before it via /proc/self/clear_refs); "
              "ru_maxrss = getrusage's whole-process peak (includes loading the data).", "",
              "| config | dtype | impl | base MB | need MB | before fit MB | peak MB | (peak - base) / need | ru_maxrss MB |",
              "|---|---|---|---|---|---|---|---|---|"]
        for r in memory:
            need = r["data_mb"] + r["params_mb"] + r["state_mb"] + r["acts_mb"]
            L.append(f"| {r['key']} | {r['dtype']} | {r['impl']} | {r['base_mb']:.0f} | {need:.0f} | "
                     f"{r['before_fit_mb']:.0f} | {r['peak_fit_mb']:.0f} | {(r['peak_fit_mb'] - r['base_mb']) / need:.2f} | {r['ru_maxrss_mb']:.0f} |")
        L.append("")
    if startup:
        L += ["## Import and first fit (fresh processes; (a) 784-30-10 on 1,000 rows, float32, then predict)", "",
              "| backend | import fastnn s | load backend s | first fit s | second fit s | first-fit overhead s |",
              "|---|---|---|---|---|---|"]
        for r in startup:
            L.append(f"| {r['label']} | {r['import_s']:.2f} | {r['backend_s']:.2f} | {r['first_fit_s']:.2f} | "
                     f"{r['second_fit_s']:.2f} | {r['first_fit_s'] - r['second_fit_s']:.2f} |")
        L.append("")
    if args.plot and all_results and plot_ratios(all_results, args.plot, log):
        L += [f"Plot of the torch ratios: `{args.plot}`", ""]
    print("\n".join(L))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "load": [load_start, load_end], "versions": v, "blas": blas,
                       "rates": {f"{d}/{t}": r for (d, t), r in rates.items()},
                       "e2e": {str(t): {f"{k}/{d}": row for (k, d), row in res.items()} for t, res in all_results.items()},
                       "tta": {str(t): r for t, r in tta.items()}, "memory": memory, "startup": startup, "argv": sys.argv}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
