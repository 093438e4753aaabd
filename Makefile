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

# Full Fashion-MNIST from Debian, when this machine can install it (tests that need it skip otherwise).
fashion-mnist:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
	  || echo "note: could not install dataset-fashion-mnist; Fashion-MNIST tests will skip"; \
	else echo "note: not root; Fashion-MNIST tests will skip"; fi

# PyTorch 2.13.0 CPU (a local file on these machines) lets the torch.optim / BatchNorm1d comparisons run;
# any other torch version would download a CUDA build, so only this one is tried, and only here.
torch: $(STAMP)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "torch==2.13.0" \
	  || echo "note: torch==2.13.0 not installed; the torch comparisons will skip"

test: build fashion-mnist torch
	NUMBA_CACHE_DIR=$(TEST_CACHE) $(BIN)/python -m pytest -q tests
	NUMBA_CACHE_DIR=$(TEST_CACHE) $(BIN)/python -m pytest -q bench
	rm -rf $(TEST_CACHE)

# The peers of the benchmarks (the optional `bench` extra: torch 2.13.0 CPU, scikit-learn, JAX on the CPU:
# ~620 MB), best effort.
bench-peers: torch
	@$(BIN)/python -c "import sklearn" 2>/dev/null || $(BIN)/python -m pip install -q "scikit-learn>=1.4" \
	  || echo "note: scikit-learn not installed; its benchmarks will skip"
	@$(BIN)/python -c "import jax" 2>/dev/null || $(BIN)/python -m pip install -q "jax>=0.4.30" "jaxlib>=0.4.30" \
	  || echo "note: jax not installed; its benchmarks will skip"

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
