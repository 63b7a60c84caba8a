# Pruning recurrent text classifiers -- course commands.
#   make lab     set up (first time) and open JupyterLab on notebooks/
#   make test    set up with dev tools, lint, unit tests, every notebook under nbval
#   make run     execute every notebook headless into build/html/
#   make student learner copies (solutions removed) into build/student/
#   make slides  reveal.js decks into build/slides/ (offline)
#   make bench   the benchmark: build/bench/bench.json and bench.md

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PY      := $(BIN)/python
PIP     := $(PY) -m pip
# CPU wheels of torch are ~200 MB; the default Linux wheel pulls several GB of CUDA.
# Set TORCH_INDEX= (empty) to let pip choose, or TORCH_SPEC to a version or a wheel file.
TORCH_SPEC  ?= torch>=2.4
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PORT    ?= 8888
export COURSE_CACHE ?= $(CURDIR)/.cache
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg

NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))

.PHONY: help setup setup-dev lab test lint format unit nbval run notebooks student slides bench clean

help:
	@sed -n '2,8p' Makefile

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.torch: | $(PY)
	$(PY) -c 'import torch' 2>/dev/null || \
	  $(PIP) install "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple) || \
	  $(PIP) install "$(TORCH_SPEC)"
	touch $@

$(VENV)/.setup: pyproject.toml $(VENV)/.torch
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.setup-dev: pyproject.toml $(VENV)/.setup
	$(PIP) install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.setup
setup-dev: $(VENV)/.setup-dev

lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks --port=$(PORT) $(if $(filter 0,$(shell id -u)),--allow-root)

lint: setup-dev
	$(BIN)/ruff check course_utils tests notebooks tools
	$(BIN)/ruff format --check course_utils tests notebooks tools

format: setup-dev
	$(BIN)/ruff format course_utils tests notebooks tools
	$(BIN)/ruff check --fix course_utils tests notebooks tools

unit: setup-dev
	$(BIN)/pytest tests

nbval: setup-dev
	COURSE_FAST=1 $(BIN)/pytest --nbval-lax --nbval-sanitize-with tests/sanitize.cfg -p no:cacheprovider $(NOTEBOOKS)

test: lint unit nbval

run: setup
	mkdir -p build/html
	COURSE_PROGRESS=0 $(BIN)/jupyter nbconvert --to html --execute \
	  --ExecutePreprocessor.timeout=1200 --output-dir build/html $(NOTEBOOKS)

# Maintainers: re-run every notebook top to bottom, in place, before committing.
notebooks: setup
	for nb in $(NOTEBOOKS); do \
	  COURSE_PROGRESS=0 $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.store_widget_state=False \
	    --ExecutePreprocessor.timeout=1200 $$nb || exit 1; done

student: setup
	$(PY) -m course_utils.notebook_tools student notebooks build/student

slides: setup
	$(PY) tools/build_slides.py

bench: setup
	$(PY) tools/bench.py $(BENCH_ARGS)

clean:
	rm -rf build .pytest_cache .ruff_cache
