# Set-up and checks. `make demo` and `make test` work on a fresh machine (Python 3.10+, gcc, PyPI).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Numba's on-disk cache goes stale across modules (numba #8926): tests use a fresh one each run.
TEST_CACHE := $(shell mktemp -d -u /tmp/fastnn-numba-cache.XXXXXX)

.PHONY: all install build demo test bench bench-peers bench-report fashion-mnist torch clean

all: build

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml setup.py
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "setuptools>=77" wheel "Cython>=3.0" "numpy>=2.0" "scipy>=1.11"
	$(BIN)/python -m pip install -q --no-build-isolation -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Recompile changed .pyx files in place (editable installs do not rebuild by themselves).
build: $(STAMP)
	$(BIN)/python setup.py -q build_ext --inplace -j 2

demo: build
	$(BIN)/python -m fastnn demo

# Full Fashion-MNIST from Debian. As root (CI) a failed install stops `make test`; otherwise the one test
# that reads it skips, as tests/allowed_skips.txt allows.
fashion-mnist:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
	  || { echo "error: could not install Debian's dataset-fashion-mnist" >&2; exit 1; }; \
	else echo "note: not root, so dataset-fashion-mnist is not installed; its test skips (allow-listed)"; fi

# PyTorch 2.13.0 CPU (a local file on these machines): the torch.optim / BatchNorm1d comparisons and the
# whole-run references of the tests need it, so a failed install stops `make test`. Any other torch version
# would download a CUDA build, so only this one is tried, and only here.
torch: $(STAMP)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "torch==2.13.0" \
	  || { echo "error: torch==2.13.0 could not be installed; the tests that compare with torch need it" >&2; exit 1; }

# Run a second time with FASTNN_PORTABLE=1: BLAS instead of the AVX-512 products and the SSE2 baseline of the
# element-wise loops, the paths of CPUs without AVX-512 (test_cpu_dispatch.py checks which path ran).
PORTABLE_TESTS := $(addprefix tests/test_,cpu_dispatch.py activations.py softmax.py losses.py dense.py optim.py \
	norm.py dropout.py nan_propagation.py small_gemm.py fused.py fit_fused.py fused_threads.py network.py \
	reference_training.py)

# A skip fails the run unless tests/allowed_skips.txt allows it (tests/skip_policy.py).
test: build fashion-mnist torch
	NUMBA_CACHE_DIR=$(TEST_CACHE) $(BIN)/python -m pytest -q tests
	NUMBA_CACHE_DIR=$(TEST_CACHE) FASTNN_PORTABLE=1 $(BIN)/python -m pytest -q $(PORTABLE_TESTS)
	NUMBA_CACHE_DIR=$(TEST_CACHE) $(BIN)/python -m pytest -q bench
	rm -rf $(TEST_CACHE)

# The peers of the benchmarks (the optional `bench` extra: torch 2.13.0 CPU, scikit-learn, JAX on the CPU:
# ~620 MB). The `test` extra has scikit-learn and JAX too: `make test` runs every benchmark body once.
bench-peers: torch
	@$(BIN)/python -c "import sklearn" 2>/dev/null || $(BIN)/python -m pip install -q "scikit-learn>=1.4"
	@$(BIN)/python -c "import jax" 2>/dev/null || $(BIN)/python -m pip install -q "jax>=0.4.30" "jaxlib>=0.4.30"

# Measures every benchmark and saves JSON under .benchmarks/ (needs a quiet machine; takes minutes).
bench: build bench-peers
	$(BIN)/python -m pytest bench --benchmark-enable --benchmark-only --benchmark-autosave \
	  --benchmark-columns=min,median,mean,stddev,rounds --benchmark-sort=name

# The end-to-end report, written into BENCHMARKS.md's generated part (~20 minutes on 2 cores; needs a
# quiet machine, and Fashion-MNIST for real data). `bench/report.py --quick` checks the machinery in < 2 min.
bench-report: build bench-peers fashion-mnist
	$(BIN)/python bench/report.py --json bench/results.json --plot bench/ratios.png --markdown BENCHMARKS.md

clean:
	rm -rf build *.egg-info kernels/cython/*.c kernels/cython/*.so .benchmarks
