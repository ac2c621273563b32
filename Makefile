# The two commands of the README:
#   make demo   set up, then run the demo search (built-in task, host device, SQLite in runs/)
#   make test   set up, then run the whole test suite (.ci/run calls exactly this)
# Setup is idempotent: a venv in .venv with autocomp installed, and Debian's dataset-fashion-mnist.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FASHION := /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz

.PHONY: setup demo test dataset postgres chromium llvm emulator clean

setup: $(VENV)/.installed dataset

# pip -qq: errors only (pip warns about every index folder a machine's pip.conf names but lacks);
# PYTHONWARNINGS: setuptools' editable-install notice is not the user's business.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install -qq -e '.[test]'
	touch $@

dataset:
	@if [ ! -f $(FASHION) ] && [ -z "$$AUTOCOMP_FASHION_DIR" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	  else \
	    echo "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist' (or set AUTOCOMP_FASHION_DIR)"; exit 1; \
	  fi; \
	fi

# A real PostgreSQL server for the multi-worker tests (they start their own cluster on 127.0.0.1).
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else \
	    echo "PostgreSQL is missing: run 'sudo apt-get install postgresql' (its tests are skipped without it)"; \
	  fi; \
	fi

# Headless Chromium: tests/reports/test_html.py opens the HTML report in it.
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "Chromium is missing: run 'sudo apt-get install chromium' (the report test needs it)"; exit 1; \
	  fi; \
	fi

# LLVM 19's llvm-mca (Cortex-A72 / Neoverse-N1 scheduling models): scripts/bench_arm_static.py and
# tests/measure/test_mca.py estimate the ARM kernels' cycles with it.
llvm:
	@if ! command -v llvm-mca-19 >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq llvm-19 >/dev/null; \
	  else \
	    echo "llvm-mca-19 is missing: run 'sudo apt-get install llvm-19' (the ARM cycle estimates need it)"; exit 1; \
	  fi; \
	fi

demo: setup
	$(BIN)/autocomp search --device host --trials 24 --max-accuracy-drop 0.01

# -n auto: one pytest process per physical core (pytest-xdist counts them with psutil); most tests are
# single-threaded compiles, so two cores run the suite in ~0.8x the time of one process.
test: setup emulator postgres chromium llvm
	$(BIN)/python -m pytest -q -n auto --dist worksteal --durations=30

clean:
	rm -rf $(VENV) runs .pytest_cache

# The emulated aarch64 device (qemu user mode + aarch64 TVM runtime) and the aarch64 cross compiler.
EMU_DIR ?= $(HOME)/.cache/autocomp/emulated-aarch64
emulator: $(EMU_DIR)/.ready

$(EMU_DIR)/.ready: scripts/emulated_aarch64/setup.sh scripts/emulated_aarch64/start_server.py $(VENV)/.installed
	bash scripts/emulated_aarch64/setup.sh $(EMU_DIR) $(BIN)/pip
	cp scripts/emulated_aarch64/start_server.py $(EMU_DIR)/
	touch $@
