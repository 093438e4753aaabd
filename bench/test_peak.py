"""The FMA peak of peak.py: measured with the widest vector registers the CPU has, and the loop it times
really ran (its result is checked against the closed form inside ``peak.measure``)."""
import math
import os

import pytest

import machine
import peak


@pytest.mark.skipif(not (peak.X86 and os.path.exists("/proc/cpuinfo")), reason="x86 Linux only (CPU flags)")
def test_fma_loop_uses_the_widest_vector_registers():
    rows = peak.run(threads=(1, 2), seconds=0.005, repeats=1)
    flags = machine.cpu()["flags"]  # the kernel's view of the CPU, not LLVM's
    want = 512 if "avx512f" in flags else 256 if "avx" in flags else 128
    assert {(r["dtype"], r["threads"]) for r in rows} == {(d, t) for d in ("float32", "float64") for t in (1, 2)}
    for r in rows:
        assert r["register_bits"] == want, r
        assert all(name.startswith("vfmadd") for name in r["instructions"]), r
        assert r["lanes"] == want // 8 // (4 if r["dtype"] == "float32" else 8)
        assert r["gflops"] > 0


def test_expected_result_is_the_loop_in_closed_form():
    acc, a, b = 1.0, 0.999, 0.001
    for _ in range(1000):
        acc = acc * a + b
    assert math.isclose(peak.expected_result(3, 1000, a, b, 1.0), 3 * acc, rel_tol=1e-12)
