# The whole set-up is `make demo` or `make test`; both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# torch is pinned to the CPU wheel in constraints.txt; an unpinned torch pulls a multi-GB CUDA build.
# Every install below runs with that pin as a constraint, so nothing can replace the CPU build.
# One pip run resolves torch and the project together (the venv's own pip does editable installs
# since 21.3, so it is not upgraded first); --no-compile skips byte-compiling every installed
# file (torch alone is thousands): Python compiles what is imported, when it is first imported.
# Measured on a fresh venv: 46 s of CPU instead of 71 s for the three runs before.
TORCH  := constraints.txt

.PHONY: demo test venv extras extras-named web browser clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile $(TORCH)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-compile -c $(TORCH) -r $(TORCH) -e '.[dev]'
	touch $(STAMP)

# Optional extras, keeping the CPU torch: make extras EXTRAS=torchvision,timm
# (the extras' names are in pyproject.toml; tests/test_extras.py dry-runs this very command).
extras: extras-named venv
	$(PY) -m pip install -c $(TORCH) -e '.[$(EXTRAS)]'

extras-named:  # checked before venv, so a bare `make extras` installs nothing
	@test -n "$(EXTRAS)" || { echo "make extras: name the extras, e.g. make extras EXTRAS=torchvision,timm"; exit 2; }

# The viewer's web assets, built into src/neurocarta/viewer/static/ (shipped in the wheel).
web:
	@if [ -f web/package.json ]; then cd web && npm ci --prefer-offline --no-audit --no-fund && npm run build; fi

# Debian's Chromium for the browser tests (Playwright drives it; no browser download).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "make browser: /usr/bin/chromium is missing; run: sudo apt-get install -y chromium"; exit 1; fi; \
	fi

demo: venv web
	$(VENV)/bin/neurocarta demo

# The stage rules first (pyproject.toml [tool.importlinter]), so pytest's summary stays the last line.
# Two workers, one test file each at a time (tests/conftest.py keeps each heavy fixture built once).
test: venv web browser
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(PY) -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) .pytest_cache
