"""Where each thread's time goes in Cython's compiled epoch, phase by phase (µs a batch, per thread).

A development tool: the worker needs counters that the product does not keep.

    git apply bench/phase_counters.patch && make build
    .venv/bin/python bench/phase_counters.py --config c --batch 200 --threads 2
    git apply -R bench/phase_counters.patch && make build

The patch adds to kernels/cython/fused.pyx one read of the x86 time-stamp counter at each phase boundary of
every batch (a few ns each), summed per thread (up to 64), and ``phases()``/``tsc()`` to read them. This
script trains bench/e2e.py's configuration on full Fashion-MNIST (float32) and prints the phases' means.
The counter's rate is measured against ``time.perf_counter`` first. "gather" runs from the end of the
previous update; "forward barriers" is the waiting after each layer's forward pass.
"""
import argparse
import dataclasses
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def ticks_per_us(fused):
    t0, c0 = time.perf_counter(), fused.tsc()
    time.sleep(0.2)
    return (fused.tsc() - c0) / ((time.perf_counter() - t0) * 1e6)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="c")
    parser.add_argument("--batch", type=int, default=None, help="the configuration's own when not given")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)

    import e2e
    from fastnn._kernels.cython import fused

    if not hasattr(fused, "phases"):
        sys.exit("kernels/cython/fused.pyx has no counters: git apply bench/phase_counters.patch && make build")
    (X, y), _, _ = e2e.load_data("float32")
    e2e.set_threads(args.threads)
    config = e2e.CONFIGS[args.config]
    if args.batch:
        config = dataclasses.replace(config, batch=args.batch)
    e2e.warm_up("cython", config, "float32")
    trainer = e2e.make_trainer("cython", config, X, y)
    trainer.epoch()
    fused.phases(args.threads)  # (zeroes them)
    seconds = [trainer.epoch()[1] for _ in range(args.epochs)]
    ticks = np.array(fused.phases(args.threads), dtype=float)
    rate = ticks_per_us(fused)
    print(f"{args.config}, batch {config.batch}, {args.threads} thread(s): {min(seconds):.4f} s an epoch "
          f"(best of {args.epochs}); µs a batch, the counter at {rate:.0f} ticks/µs\n")
    print("| thread | " + " | ".join(fused.PHASES) + " | total |")
    print("|---|" + "---|" * (len(fused.PHASES) + 1))
    for t, row in enumerate(ticks):
        us = row[:len(fused.PHASES)] / max(row[-1], 1) / rate
        print(f"| {t} | " + " | ".join(f"{v:.1f}" for v in us) + f" | {us.sum():.1f} |")


if __name__ == "__main__":
    main()
