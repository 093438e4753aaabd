"""Where a compiled epoch's time goes: `perf record` over the epochs only, samples grouped by what they run.

    .venv/bin/python bench/profile_epoch.py                       # configurations a-d, cython, 2 threads
    .venv/bin/python bench/profile_epoch.py --configs c --backend numba --epochs 20

Linux only, with `perf` installed and allowed (root, or kernel.perf_event_paranoid <= 1). The training
process (bench/e2e.py's fastnn trainer, float32, full Fashion-MNIST) loads the data and warms up with
perf's events off, turns them on for ``--epochs`` epochs through perf's control FIFO, and off again; so
the shares below are of the epochs alone. Every symbol falls in the first group whose pattern it
contains (``GROUPS``); the report lists the groups and the largest symbols.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

GROUPS = (  # (group, substrings of symbol names), the first match wins
    ("hand-written products", ("fnn_small", "fastnn_small")),
    ("BLAS products", ("gemm", "_copy_", "itcopy", "oncopy", "otcopy", "incopy", "gemv")),
    ("optimizer update", ("step_block", "update", "write_back", "fnn_sgd_", "fnn_momentum_", "fnn_adam_",
                          "fnn_adagrad_", "fnn_rmsprop_", "fnn_adadelta_")),
    ("element-wise blocks", ("act_block", "act_backward", "output_block", "column_sums", "bn_", "dropout",
                             "mask_block", "maxout", "prelu", "same_block", "softmax", "log_softmax")),
    ("waiting (barrier, yield, idle BLAS threads)", ("barrier", "sched_yield", "__schedule", "pause",
                                                     "blas_thread_server", "do_syscall", "syscall")),
    ("worker body (gather, prefetch, loss)", ("train_epoch_worker", "gather", "_worker")),
)
LINE = re.compile(r"^\s*([0-9.]+)%\s+\[(.)\]\s+(.+?)\s*$")


def group(symbol):
    for name, patterns in GROUPS:
        if any(p in symbol for p in patterns):
            return name
    return "other"


def profile(key, backend, epochs, threads):
    with tempfile.TemporaryDirectory() as tmp:
        ctl, ack, data = (os.path.join(tmp, name) for name in ("ctl", "ack", "perf.data"))
        os.mkfifo(ctl)
        os.mkfifo(ack)
        cmd = ["perf", "record", "-q", "-F", "2999", "-D", "-1", f"--control=fifo:{ctl},{ack}", "-o", data, "--",
               sys.executable, os.path.abspath(__file__), "--child", key, backend, str(epochs), ctl, ack, str(threads)]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"perf record failed:\n{run.stderr[-2000:]}")
        seconds = float(run.stdout.strip().splitlines()[-1])
        report = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "symbol", "--stdio",
                                 "-g", "none"], capture_output=True, text=True, check=True).stdout
    symbols = [(float(m.group(1)), m.group(3)) for m in map(LINE.match, report.splitlines()) if m]
    total = sum(share for share, _ in symbols) or 1.0
    groups = {}
    for share, symbol in symbols:
        groups[group(symbol)] = groups.get(group(symbol), 0.0) + share / total
    return seconds, groups, [(share / total, symbol) for share, symbol in symbols[:8]]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="abcd")
    parser.add_argument("--backend", default="cython", choices=("cython", "numba"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        key, backend, epochs, ctl, ack, threads = args.child
        return child(key, backend, int(epochs), ctl, ack, int(threads))
    names = [name for name, _ in GROUPS] + ["other"]
    print(f"{args.backend}, float32, {args.threads} thread(s), {args.epochs} epochs each; shares of the samples\n")
    print("| config | s / epoch | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    tops = []
    for key in args.configs:
        seconds, groups, top = profile(key, args.backend, args.epochs, args.threads)
        print(f"| {key} | {seconds:.3f} | " + " | ".join(f"{groups.get(n, 0):.0%}" for n in names) + " |")
        tops.append((key, top))
    for key, top in tops:
        print(f"\n({key}) largest symbols: " + "; ".join(f"{s:.0%} {name[:60]}" for s, name in top))


def child(key, backend, epochs, ctl, ack, threads):
    """The profiled process: warm up with perf's events off, then ``epochs`` epochs with them on; prints the
    seconds per epoch."""
    import gc

    import e2e

    (X, y), _, _ = e2e.load_data("float32")
    e2e.set_threads(threads)
    config = e2e.CONFIGS[key]
    e2e.warm_up(backend, config, "float32")
    trainer = e2e.make_trainer(backend, config, X, y)
    trainer.epoch()
    gc.collect()
    gc.disable()  # no collection inside the profile

    def command(word):
        with open(ctl, "w") as f:
            f.write(word + "\n")
        with open(ack) as f:
            f.read(5)
    command("enable")
    start = time.perf_counter()
    for _ in range(epochs):
        trainer.epoch()
    seconds = (time.perf_counter() - start) / epochs
    command("disable")
    print(f"{seconds:.4f}")


if __name__ == "__main__":
    main()
