"""bench/phase_counters.patch, the counters bench/phase_counters.py reads, still applies to the worker."""
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_phase_counters_patch_applies_to_the_worker():
    proc = subprocess.run(["git", "apply", "--check", "bench/phase_counters.patch"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
