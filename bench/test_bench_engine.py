"""The cost of each option of fit in the compiled epoch (bench/engine_options.py's variants): groups
``engine-<network>-batch<b>``, one member per optimizer, clipping, loss and a progress callback. Every member
must train in the compiled epoch. With timing disabled (the normal ``pytest bench``), each runs one epoch on
300 rows; ``bench/engine_options.py`` prints the ratios of one measured run."""
import numpy as np
import pytest

import e2e
import engine_options

SMOKE_ROWS = 300


@pytest.mark.parametrize("variant", list(engine_options.VARIANTS))
@pytest.mark.parametrize("batch", engine_options.BATCHES)
@pytest.mark.parametrize("network", list(engine_options.NETWORKS))
def test_engine_option(benchmark, network, batch, variant):
    (X, y), _, _ = e2e.load_data("float32")
    if benchmark.disabled:
        X, y = np.ascontiguousarray(X[:SMOKE_ROWS]), y[:SMOKE_ROWS]
    run = engine_options.Run(engine_options.NETWORKS[network], batch, variant, X, y)
    run.epoch()  # compiles; asserts the compiled epoch ran
    benchmark.group = f"engine-{network}-batch{batch}"
    benchmark.pedantic(run.epoch, rounds=1 if benchmark.disabled else 3, iterations=1)
    assert np.isfinite(run.best)
