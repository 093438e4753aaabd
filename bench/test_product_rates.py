"""product_rates.py: the products it times are the epoch's (their arithmetic is the configuration's), and
what it times computes them."""
import numpy as np
import pytest

import e2e
import product_rates


@pytest.mark.parametrize("key", "abcd")
def test_one_thread_products_are_the_epochs_arithmetic(key):
    config = e2e.CONFIGS[key]
    flops = sum(2 * m * n * k for _, m, n, k, _ in product_rates.products(config, 1))
    assert flops * e2e.N_TRAIN / config.batch == config.flops_per_epoch()


def test_thread_shares_cover_every_unit():
    config = e2e.CONFIGS["d"]
    two = {name: n for name, _, n, _, _ in product_rates.products(config, 2)}
    assert two["L0 forward"] >= 256 and two["L0 forward"] < 512  # the larger of two shares of 512 units


@pytest.mark.parametrize("kind", ["rows", "rows_t", "nn", "tn", "nt"])
def test_each_kind_is_timed_and_checked(kind):
    from fastnn._kernels.numba import _small_gemm as S
    rng = np.random.default_rng(0)
    X = rng.random((200, 40), dtype=np.float32)
    m, n, k = (40, 19, 24) if kind == "rows_t" else (24, 19, 40)
    times = product_rates.time_product(m, n, k, kind, np.float32, X, rng)
    assert times["blas"] > 0
    hand = S.AVAILABLE and S.cpu_has_avx512() and kind != "nt"
    assert (times["hand"] is not None) == hand
    assert (times["fresh"] is not None) == (hand and kind == "rows")
    assert (times["burst"] is not None) == (hand and kind == "rows")
