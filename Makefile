# The whole set-up is `make demo` or `make test`; both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# torch is pinned to the CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
TORCH  := torch==2.13.0

.PHONY: demo test venv web clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The viewer's web assets are built here once web/ exists (a later issue).
web:
	@if [ -f web/package.json ]; then cd web && npm ci && npm run build; fi

demo: venv web
	$(VENV)/bin/neurocarta demo

test: venv
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
