"""A skipped test fails the run unless tests/allowed_skips.txt allows it (used by tests/ and bench/).

A skip hides untested code: a missing package (torch, matplotlib, scikit-learn), a backend that did not
build, a data set that is not installed. ``make test`` installs everything the tests need, so on CI a skip
means a broken set-up, and the run must fail and say which test skipped and why. Only the few skips
that no set-up can avoid on some machine (fewer than 2 cores, a CPU without AVX-512F) are allowed, each
listed with its reason in ``allowed_skips.txt`` beside this file.

Both conftest.py files import the two hooks below, which pytest then calls: skips of tests (in setup or
call, e.g. ``pytest.skip``, ``importorskip``, a ``skipif`` mark) and of whole modules at collection.
"""
import os
import re

import pytest

ALLOW_LIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "allowed_skips.txt")


def read_allow_list(path=ALLOW_LIST):
    """[(compiled pattern, why)] from the file: one ``<regex> -- <why it is allowed>`` per line, the regex
    searched in ``"<test id>: <skip reason>"``; blank lines and lines starting with # are ignored."""
    entries = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            pattern, sep, why = line.partition(" -- ")
            if not sep or not why.strip():
                raise ValueError(f"{path}:{number}: expected '<regex> -- <why this skip is allowed>', got {line!r}")
            entries.append((re.compile(pattern.strip()), why.strip()))
    return entries


ALLOWED = read_allow_list()


def skip_reason(report):
    """The reason pytest recorded for a skip ("Skipped: " removed)."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text[len("Skipped: "):] if text.startswith("Skipped: ") else text


def allowed(nodeid, reason, entries=ALLOWED):
    subject = f"{nodeid}: {reason}"
    return any(pattern.search(subject) for pattern, _ in entries)


def _fail_unless_allowed(report, nodeid):
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = skip_reason(report)
    if allowed(nodeid, reason):
        return
    report.outcome = "failed"
    report.longrepr = (f"SKIPPED outside the allow-list: {reason}\n"
                       f"A skip hides untested code. Install what this test needs (`make test` does), or, if no "
                       f"set-up can avoid it, add a line with the reason to {os.path.relpath(ALLOW_LIST)}.")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_unless_allowed(outcome.get_result(), item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_unless_allowed(outcome.get_result(), collector.nodeid)
