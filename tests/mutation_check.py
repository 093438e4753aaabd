"""Mutation check: flip one line of the code, run the tests that should notice, report which fail.

A test suite that passes whatever the code does proves nothing. Each mutation below is a plausible bug in
one line; the check applies it in place, runs the named tests (a fresh Numba cache, so Numba code is
recompiled from the mutated source), reverts the file and lists the tests that failed. A mutation that
no test notices is a gap in the suite: the exit status is then 1.

    .venv/bin/python tests/mutation_check.py                      # the default mutations below
    .venv/bin/python tests/mutation_check.py --only adam-bias-correction
    .venv/bin/python tests/mutation_check.py --file fastnn/cli.py --old 'fit_kwargs["l1"] = args.l1' \
        --new 'pass' --tests tests/test_cli.py                     # any one-line mutation

The file is restored in a ``finally`` block (also on Ctrl-C / SIGTERM) and a copy is kept beside it as
``<file>.mutation-backup`` until then; a run that was killed outright leaves that copy, which the next run
puts back first. Cython sources (.pyx) would need a rebuild per mutation and are not accepted. Not part of
``make test`` (each mutation runs a few hundred tests: a minute or two); README's Tests section records
the result of the default run.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Mutation:
    name: str
    path: str  # relative to the repository root
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple  # pytest arguments: files or node ids


MUTATIONS = [
    Mutation("adam-bias-correction", "kernels/reference/optim.py",
             "_scalars(p, lr / (1 - beta1**step), np.sqrt(1 - beta2**step))",
             "_scalars(p, lr, np.sqrt(1 - beta2**step))",
             ("tests/test_optim.py", "tests/test_optim_classes.py", "tests/test_reference_training.py")),
    Mutation("softmax-max-shift", "kernels/reference/softmax.py",
             "    m = np.max(z, axis=1, keepdims=True)\n    dead = m == -np.inf",
             "    m = np.zeros_like(np.max(z, axis=1, keepdims=True))\n    dead = m == -np.inf",
             ("tests/test_softmax.py", "tests/test_losses.py", "tests/test_reference_training.py")),
    Mutation("l2-scale", "fastnn/losses.py",
             "    return l1 / n, l2 / n",
             "    return l1 / n, l2",
             ("tests/test_reference_training.py", "tests/test_fit_fused.py", "tests/test_training.py",
              "tests/test_network.py")),
]


def backup_path(path):
    return path + ".mutation-backup"


def restore_leftovers(paths):
    """Put back any file a killed run left mutated."""
    for path in paths:
        if os.path.exists(backup_path(path)):
            shutil.copyfile(backup_path(path), path)
            os.remove(backup_path(path))
            print(f"restored {os.path.relpath(path, ROOT)} from the backup a killed run left")


def run_tests(tests):
    """(failed test ids, summary line) of one pytest run."""
    env = dict(os.environ, NUMBA_CACHE_DIR=tempfile.mkdtemp(prefix="fastnn-mutation-numba-"), COLUMNS="400")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "--tb=no", "-rf", "-p", "no:cacheprovider",
                           *tests], cwd=ROOT, env=env, capture_output=True, text=True)
    shutil.rmtree(env["NUMBA_CACHE_DIR"], ignore_errors=True)
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, flags=re.M)
    lines = proc.stdout.strip().splitlines()
    return failed, lines[-1] if lines else proc.stderr.strip()[-300:]


def apply_and_run(mutation):
    path = os.path.join(ROOT, mutation.path)
    if mutation.path.endswith((".pyx", ".pxi", ".h")):
        raise SystemExit(f"{mutation.path}: compiled sources need a rebuild per mutation; mutate Python code")
    with open(path) as f:
        original = f.read()
    count = original.count(mutation.old)
    if count != 1:
        raise SystemExit(f"{mutation.name}: the line to mutate occurs {count} times in {mutation.path}, not once")
    shutil.copyfile(path, backup_path(path))
    try:
        with open(path, "w") as f:
            f.write(original.replace(mutation.old, mutation.new))
        start = time.perf_counter()
        failed, summary = run_tests(mutation.tests)
        return failed, summary, time.perf_counter() - start
    finally:
        with open(path, "w") as f:
            f.write(original)
        os.remove(backup_path(path))


def report(mutation, failed, summary, seconds):
    print(f"\n== {mutation.name}: {mutation.path}\n   - {mutation.old.strip()}\n   + {mutation.new.strip()}")
    print(f"   tests: {' '.join(mutation.tests)} ({seconds:.0f} s)\n   pytest: {summary}")
    by_file = {}
    for test in failed:
        by_file.setdefault(test.split("::")[0], []).append(test.split("::", 1)[-1])
    for file, names in sorted(by_file.items()):
        shown = ", ".join(names[:3]) + (f", ... ({len(names)} in all)" if len(names) > 3 else "")
        print(f"   failed in {file}: {shown}")
    print("   CAUGHT" if failed else "   SURVIVED: no test failed")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=[m.name for m in MUTATIONS],
                        help="run only this default mutation (repeatable)")
    parser.add_argument("--file", help="a custom mutation: the file (relative to the repository root)")
    parser.add_argument("--old", help="the custom mutation's text to replace (must occur once)")
    parser.add_argument("--new", help="the custom mutation's replacement")
    parser.add_argument("--tests", nargs="+", help="the custom mutation's tests (pytest arguments)")
    args = parser.parse_args(argv)
    if args.file:
        if not (args.old and args.new is not None and args.tests):
            parser.error("--file needs --old, --new and --tests")
        mutations = [Mutation("custom", args.file, args.old.replace("\\n", "\n"), args.new.replace("\\n", "\n"),
                              tuple(args.tests))]
    else:
        mutations = [m for m in MUTATIONS if not args.only or m.name in args.only]
    restore_leftovers({os.path.join(ROOT, m.path) for m in MUTATIONS + mutations})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # runs the finally blocks, which restore the file
    survived = []
    for mutation in mutations:
        failed, summary, seconds = apply_and_run(mutation)
        report(mutation, failed, summary, seconds)
        if not failed:
            survived.append(mutation.name)
    print(f"\n{len(mutations) - len(survived)} of {len(mutations)} mutations caught"
          + (f"; survived: {', '.join(survived)}" if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
