"""`import fastnn` gives every submodule as an attribute, importing it (and numba, onnx, matplotlib) only
when first used (PEP 562)."""
import json
import subprocess
import sys

import fastnn

HEAVY = ("numba", "onnx", "onnxruntime", "matplotlib", "sklearn", "scipy.linalg")
LAZY = ("augment", "callbacks", "cli", "datasets", "functional", "onnx", "plot")


def run(code):
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_import_fastnn_imports_no_heavy_or_lazy_module():
    loaded = run(f"""
import json, sys
import fastnn
print(json.dumps([m for m in {HEAVY + tuple('fastnn.' + m for m in LAZY)!r} if m in sys.modules]))
""")
    assert loaded == []


def test_submodules_are_attributes_loaded_on_first_use():
    state = run("""
import json, sys
import fastnn
(X, y), _ = fastnn.datasets.load_mnist()                 # no `import fastnn.datasets` needed
after_datasets = "numba" in sys.modules
fastnn.functional.softmax([[1.0, 2.0]])                 # the default backend (cython when built)
fastnn.callbacks, fastnn.plot, fastnn.onnx, fastnn.augment, fastnn.cli
optional = [m for m in ("onnx", "matplotlib") if m in sys.modules]  # the modules alone import neither
print(json.dumps({"rows": len(X), "numba_after_datasets": after_datasets, "optional": optional,
                  "export_onnx": fastnn.export_onnx is fastnn.onnx.export_onnx,
                  "all": sorted(fastnn.__all__), "dir": sorted(set(fastnn.__all__) - set(dir(fastnn)))}))
""")
    assert state["rows"] == 8000
    assert state["numba_after_datasets"] is False
    assert state["optional"] == []
    assert state["export_onnx"] is True
    assert set(LAZY) | {"export_onnx", "datasets"} <= set(state["all"])
    assert state["dir"] == []  # dir(fastnn) lists the lazy names too


def test_plotting_needs_no_pyplot():
    """learning_curves draws on a bare Figure: no pyplot state, no GUI backend chosen."""
    state = run("""
import json, sys
import fastnn
from fastnn.training import History
h = History()
h.append(0, {"loss": 1.0})
h.append(1, {"loss": 0.5})
h.plot()
print(json.dumps(["matplotlib" in sys.modules, "matplotlib.pyplot" in sys.modules]))
""")
    assert state == [True, False]


def test_unknown_attribute_is_an_attribute_error():
    try:
        fastnn.no_such_module
    except AttributeError as exc:
        assert str(exc) == "module 'fastnn' has no attribute 'no_such_module'"
    else:
        raise AssertionError("fastnn.no_such_module did not raise")
