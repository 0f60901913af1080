# Barri: `make test` and `make demo` work on a fresh clone with only Python >= 3.11 and make.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: test demo bench bench-micro lint typecheck clean
PROFILE ?= ci
SCALE   ?= 1
FAULTS  ?=

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Barri needs Python >= 3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/barri demo

bench: $(STAMP)
	$(PY) -m benchmarks.citysim --profile $(PROFILE) --scale $(SCALE) $(FAULTS)

bench-micro: $(STAMP)
	$(PY) benchmarks/run_micro.py

lint: $(STAMP)
	$(VENV)/bin/ruff check activitypub federation schemas tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
