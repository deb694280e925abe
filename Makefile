# Two entry points: `make demo` (bundled equireg predict demo) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all install

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/equireg predict --config configs/predict/demo_mnist32.yaml

test: $(STAMP)
	$(VENV)/bin/ruff check equireg_lit callbacks datamodules tests benchmarks configs
	$(PY) -m pytest

test-all: $(STAMP)
	$(PY) -m pytest -m ""
