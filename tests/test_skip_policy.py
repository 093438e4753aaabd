"""The skip policy (skip_policy.py): a skip fails the run unless tests/allowed_skips.txt allows it."""
import os
import subprocess
import sys

import pytest

import skip_policy

TESTS = os.path.dirname(os.path.abspath(__file__))


def test_allow_list_entries_match_only_their_skips():
    assert len(skip_policy.ALLOWED) <= 6, "the allow-list is meant to stay short"
    assert skip_policy.allowed("tests/test_threads.py::test_use_num_threads_restores_the_previous_counts",
                               "needs 2 cores for OpenBLAS to run 2 threads")
    assert skip_policy.allowed("tests/test_small_gemm.py::test_small_matches_numpy[NN-0.0-f32]",
                               "this CPU has no AVX-512F")
    # the same reasons elsewhere, and other reasons in those files, are not allowed
    assert not skip_policy.allowed("tests/test_optim.py::test_x", "needs 2 cores for OpenBLAS to run 2 threads")
    assert not skip_policy.allowed("tests/test_small_gemm.py::test_x", "fastnn._kernels.cython.small_gemm_export is "
                                   "not built")
    assert not skip_policy.allowed("tests/test_optim.py::test_matches_torch_optim[SGD-no_decay-f32-numpy]",
                                   "could not import 'torch': No module named 'torch'")


def test_malformed_lines_are_refused(tmp_path):
    path = tmp_path / "allowed.txt"
    path.write_text("# comment\n\n^tests/x\\.py::.*: why not -- a reason\n")
    assert [why for _, why in skip_policy.read_allow_list(str(path))] == ["a reason"]
    path.write_text("^tests/x\\.py::.*: no reason given\n")
    with pytest.raises(ValueError, match="allowed.txt:1: expected"):
        skip_policy.read_allow_list(str(path))


def test_a_skip_outside_the_list_fails_the_run(tmp_path):
    """A pytest run with the hooks: a test that skips (in its body, by a mark, by importorskip) and a module
    that skips at collection each fail, named with their reasons; the exit status is not 0."""
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {TESTS!r})\n"
        "from skip_policy import pytest_make_collect_report, pytest_runtest_makereport\n")
    (tmp_path / "test_demo.py").write_text(
        "import pytest\n"
        "def test_body():\n    pytest.skip('no reason here')\n"
        "@pytest.mark.skipif(True, reason='a mark')\ndef test_mark():\n    pass\n"
        "def test_import():\n    pytest.importorskip('no_such_module_for_fastnn')\n"
        "def test_passes():\n    pass\n")
    (tmp_path / "test_module.py").write_text("import pytest\npytest.importorskip('no_such_module_either')\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA",
                           "--continue-on-collection-errors", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, COLUMNS="300"))
    out = proc.stdout
    assert proc.returncode != 0, out
    assert "FAILED test_demo.py::test_body - SKIPPED outside the allow-list: no reason here" in out
    assert "test_demo.py::test_mark - SKIPPED outside the allow-list: a mark" in out
    assert "FAILED test_demo.py::test_import - SKIPPED outside the allow-list: could not import" in out
    assert "ERROR test_module.py - SKIPPED outside the allow-list: could not import" in out
    assert " skipped" not in out.splitlines()[-1], out.splitlines()[-1]


def test_the_mutation_checks_lines_are_still_in_the_code():
    """tests/mutation_check.py flips lines by their text; a refactor that moves one must update it."""
    import mutation_check

    for mutation in mutation_check.MUTATIONS:
        with open(os.path.join(mutation_check.ROOT, mutation.path)) as f:
            assert f.read().count(mutation.old) == 1, f"{mutation.name}: {mutation.old!r} not once in {mutation.path}"
        for test in mutation.tests:
            assert os.path.exists(os.path.join(mutation_check.ROOT, test.split("::")[0])), test
