"""The report's machinery: the CPU description, the splice into BENCHMARKS.md, and one tiny run of
report.py with its child processes (the portable path; JAX when installed)."""
import report
import machine

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9R14 96-Core Processor
stepping\t: 1
flags\t\t: fpu sse avx avx2 fma avx512f avx512bw avx512vl hypervisor

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: something else
"""


def test_parse_cpuinfo_keeps_the_first_processor():
    fields = machine.parse_cpuinfo(CPUINFO)
    assert fields["processors"] == 2
    assert (fields["vendor_id"], fields["cpu family"], fields["model"], fields["stepping"]) == \
        ("AuthenticAMD", "25", "17", "1")
    assert fields["model name"] == "AMD EPYC 9R14 96-Core Processor"


def test_describe_cpu_names_model_and_code_path_flags():
    info = machine.cpu()
    text = machine.describe_cpu(info)
    assert info["model_name"] in text and info["vendor"] in text
    assert set(info["code_path_flags"]) <= set(info["flags"])
    assert set(info["code_path_flags"]).isdisjoint(info["missing_flags"])


def test_splice_replaces_only_the_generated_part(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# title\n\nintro\n")
    report.splice(str(path), "first")
    report.splice(str(path), "second")
    text = path.read_text()
    assert text.startswith("# title\n\nintro\n")
    assert "second" in text and "first" not in text
    assert text.count(report.BEGIN) == text.count(report.END) == 1
    path.write_text(text + "\nanalysis after\n")
    report.splice(str(path), "third")
    assert path.read_text().endswith("analysis after\n") and "third" in path.read_text()


def test_tiny_report_has_default_and_portable_rows(tmp_path, capsys):
    out = tmp_path / "results.json"
    report.main(["--quick", "--configs", "a", "--threads", "1", "--rows", "300", "--impls", "cython,jax",
                 "--skip", "ab,tta,recipe,memory,startup", "--json", str(out)])
    text = capsys.readouterr().out
    assert "| a 784-30-10 | float32 | default (cython) |" in text
    assert "| a 784-30-10 | float32 | portable (cython) |" in text
    assert "family" in text and "FMA peak" in text
    assert out.exists()
