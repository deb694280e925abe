# Two entry points: `make demo` (bundled equireg predict demo) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all install devsite

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
	$(PY) -m pytest -n auto

test-all: $(STAMP)
	$(PY) -m pytest -n auto -m ""

# The pure-Python packages a lent GPU machine's image lacks (deepinv, diffusers without its
# pipelines, jsonargparse, mlxtend, ...), packed to travel with `benchmarks/gpu_session.sh`.
devsite: $(STAMP)
	rm -rf build/devsite build/wheels && mkdir -p build
	$(VENV)/bin/python -m pip download -q --no-deps --only-binary=:all: -d build/wheels -c constraints.txt \
	    deepinv diffusers jsonargparse docstring_parser mlxtend natsort
	$(VENV)/bin/python -m pip install -q --no-deps --no-compile --target build/devsite build/wheels/*.whl
	cd build/devsite && rm -rf bin docs examples deepinv/tests diffusers/pipelines/* diffusers/modular_pipelines/* \
	    && touch diffusers/pipelines/__init__.py diffusers/modular_pipelines/__init__.py
	tar -cJf devsite.tar.xz -C build/devsite .
