"""The seeds' experiments in examples/: the slow-learning neuron, and the activation plot."""
import importlib.util
import os

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_slow_neuron_quadratic_vs_cross_entropy():
    slow = example("slow_neuron")
    runs = {(w, loss): slow.run(w, w if w == 2.0 else 0.9, loss, eta=0.15, epochs=300)
            for w in (0.6, 2.0) for loss in ("quadratic", "cross_entropy")}
    # First outputs: sigmoid(0.6 + 0.9) = 0.82 and sigmoid(2 + 2) = 0.98.
    assert runs[0.6, "quadratic"][1][0] == pytest.approx(0.8175744761936437)
    assert runs[2.0, "quadratic"][1][0] == pytest.approx(0.9820137900379085)
    # The costs at the start: quadratic a^2/2, cross-entropy -ln(1 - a).
    assert runs[2.0, "quadratic"][0][0] == pytest.approx(0.9820137900379085**2 / 2)
    assert runs[2.0, "cross_entropy"][0][0] == pytest.approx(-np.log(1 - 0.9820137900379085))
    # From the saturated start the quadratic cost barely moves at first; cross-entropy does not stall.
    _, quad = runs[2.0, "quadratic"]
    _, xent = runs[2.0, "cross_entropy"]
    assert quad[0] - quad[50] < 0.01
    assert xent[0] - xent[50] > 0.8
    k_xent = slow.first_epoch_below(xent, 0.1)
    k_quad = slow.first_epoch_below(quad, 0.1)
    assert k_xent is not None and k_xent <= 60  # measured: 50
    assert k_quad is None or k_quad > 4 * k_xent  # measured: not within 300 epochs (0.20 at epoch 300)
    assert quad[300] == pytest.approx(0.20, abs=0.02)  # the seeds' figure: 0.20 after 300 epochs
    # Every output decreases monotonically towards the target 0.
    for _, outputs in runs.values():
        assert np.all(np.diff(outputs) < 0)


def test_plot_activations_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="plot_activations needs matplotlib (pip install matplotlib)")
    out = tmp_path / "activations.png"
    assert example("plot_activations").main(["--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "sigmoid" in text and "relu" in text and "|f'| < 0.01 on [-6.00, 0.00]" in text


def test_dask_search_runs_on_a_local_cluster(capsys):
    assert example("dask_search").main(["--data", "mnist", "--rows", "600", "--epochs", "2", "--cv", "2",
                                         "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "cluster  2 workers, fastnn threads per worker: [1, 1]" in out
    assert "search   8 settings x 2 folds + refit" in out
    accuracy = float(out.split("test accuracy ")[1].split()[0])
    assert accuracy > 0.5  # 600 digits, 2 epochs
