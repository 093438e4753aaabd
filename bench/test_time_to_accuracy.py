"""examples/time_to_accuracy.py: the recipe trains in every library, and the peers follow fastnn's schedule.

On the embedded MNIST digits (always there), two epochs on 2,000 of them: each library's test accuracy
is well above chance and the three agree, since they train the same network the same way.
"""
import os
import sys

import numpy as np
import pytest

import e2e

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
import time_to_accuracy as tta  # noqa: E402

from fastnn import datasets, optim  # noqa: E402


def test_cosine_schedule_is_fastnns():
    schedule = optim.CosineAnnealingLR(T_max=tta.EPOCHS)
    schedule.base_lr = tta.LR
    for epoch in range(tta.EPOCHS + 1):
        assert np.isclose(tta.cosine_lr(epoch), schedule.lr_at(epoch), rtol=1e-12)


@pytest.fixture(scope="module")
def digits():
    (X, y), (Xt, yt) = datasets.load_mnist()
    return X[:2000], y[:2000], Xt, yt


@pytest.fixture(scope="module")
def fastnn_result(digits):
    return tta.race(tta.FastnnRun(0), *digits, target=1.1, epochs=2)


def test_fastnn_trains_the_recipe(fastnn_result):
    assert fastnn_result["epochs"] == 2 and not fastnn_result["reached"]
    assert fastnn_result["accuracy"] > 0.8
    assert fastnn_result["seconds"] > 0 and fastnn_result["compile_seconds"] is None


@pytest.mark.parametrize("peer", ["torch", "jax"])
def test_peer_trains_the_recipe_like_fastnn(peer, digits, fastnn_result):
    reason = e2e.available(peer)
    if reason:
        pytest.skip(reason)
    result = tta.race(tta.RUNS[peer](0), *digits, target=1.1, epochs=2)
    assert result["epochs"] == 2
    assert abs(result["accuracy"] - fastnn_result["accuracy"]) < 0.05
    if peer == "jax":
        assert result["compile_seconds"] > 0
