# Pruning recurrent text classifiers -- course commands.
#   make lab      set up (first time), copy the exercises into my-notebooks/ (only chapters
#                 not there yet: your work is never overwritten) and open JupyterLab there
#   make lab-full JupyterLab on notebooks/: the full notebooks, every answer filled in
#   make warm     before a class: set up, run chapter 1, cache every model the chapters load
#                 (python -m course_utils warm does the caching on any platform)
#   make test     set up with dev tools, lint, unit tests, every notebook under nbval (twice:
#                 default threads, one thread), every student and self-paced copy run top to
#                 bottom (make copies), browser tests
#   make run      execute every notebook headless into build/html/
#   make student  learner copies into build/student/, build/solutions/, build/self-paced/
#   make slides   reveal.js decks into build/slides/ (offline; npm ci of reveal.js the first time)
#   make present  the decks live with RISE in JupyterLab (build/slides/)
#   make bench    the benchmark: build/bench/bench.json and bench.md

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PY      := $(BIN)/python
PIP     := $(PY) -m pip
# CPU wheels of torch are ~200 MB; the default Linux wheel pulls several GB of CUDA.
# TORCH_INDEX is added as an *extra* index, so the index you configured (PIP_INDEX_URL,
# pip.conf, a mirror) stays in use, and only when it answers within 5 s
# (tools/torch_index.py). Set TORCH_INDEX= (empty) to let pip choose, or TORCH_SPEC to a
# version or a wheel file.
TORCH_SPEC  ?= torch>=2.4
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PORT    ?= 8888
# Where `make lab` keeps the learner's own copies of the chapters (gitignored).
LEARNER ?= my-notebooks
export COURSE_CACHE ?= $(CURDIR)/.cache
export PYTHONHASHSEED := 0

NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
SLIDES_JS := slides/node_modules/.package-lock.json
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)

.PHONY: help setup setup-dev lab lab-full warm test lint format unit nbval copies browser run \
	notebooks student slides present bench clean

# Prints the comment block at the top, however long it grows (up to its first blank line).
help:
	@sed -n '2,/^$$/{/^#/p;}' Makefile

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.torch: | $(PY)
	$(PY) -c 'import torch' 2>/dev/null || \
	  $(PIP) install "$(TORCH_SPEC)" $$($(PY) tools/torch_index.py "$(TORCH_INDEX)") || \
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

# The learner's copies: self-paced (exercises to fill in, a collapsed solution under each).
# Chapters already in $(LEARNER)/ are kept as they are; only missing ones are added.
lab: setup
	$(PY) tools/notebook_tools.py learner notebooks $(LEARNER)
	$(BIN)/jupyter lab --notebook-dir=$(LEARNER) --port=$(PORT) $(ALLOW_ROOT)

# Instructors and maintainers: the committed notebooks, answers and outputs included.
lab-full: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks --port=$(PORT) $(ALLOW_ROOT)

warm: setup
	COURSE_PROGRESS=0 $(BIN)/jupyter nbconvert --to notebook --execute \
	  --ExecutePreprocessor.timeout=1200 --output-dir build/warm notebooks/01_baseline_rnn.ipynb
	COURSE_PROGRESS=0 $(PY) -m course_utils warm
	@echo "Chapter 1 ran; every model the chapters load is cached in $(COURSE_CACHE)."

lint: setup-dev
	$(BIN)/ruff check course_utils tests notebooks tools
	$(BIN)/ruff format --check course_utils tests notebooks tools

format: setup-dev
	$(BIN)/ruff format course_utils tests notebooks tools
	$(BIN)/ruff check --fix course_utils tests notebooks tools

unit: setup-dev
	MPLBACKEND=Agg $(BIN)/pytest tests --ignore=tests/browser

NBVAL := COURSE_FAST=1 $(BIN)/pytest --nbval-lax --nbval-sanitize-with tests/sanitize.cfg \
	-p no:cacheprovider $(NOTEBOOKS)

# Twice: at the default thread count, then with one thread. One thread sums in another
# order, as another CPU does, so a checked output that prints rounding noise fails here
# and not only on a learner's machine.
nbval: setup-dev
	$(NBVAL)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(NBVAL)

# Slides in headless Chromium, JupyterLab driven by Playwright. Without Chromium they are
# reported as NOT RUN; COURSE_REQUIRE_BROWSER=1 (set by .ci/run) makes that an error.
browser: setup-dev
	@if command -v npm >/dev/null 2>&1; then $(MAKE) -s --no-print-directory $(SLIDES_JS) || true; fi
	$(BIN)/pytest tests/browser

# Every student and self-paced copy, top to bottom in fast mode, no exercise solved: no
# cell may fail, every check must say [NOT YET]. After nbval, whose run cached the baseline.
# COURSE_COPIES=1 is what lets pytest collect tests/copies (plain `pytest tests` does not).
copies: setup-dev
	COURSE_COPIES=1 COURSE_FAST=1 COURSE_PROGRESS=0 $(BIN)/pytest tests/copies \
	  -p no:cacheprovider --durations=0

test: lint unit nbval copies browser

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
	$(PY) tools/notebook_tools.py student notebooks build/student \
	  --solutions build/solutions --self-paced build/self-paced

$(SLIDES_JS): slides/package.json slides/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "reveal.js and MathJax come from npm: install Node.js 18+"; exit 1; }
	npm ci --prefix slides --no-audit --no-fund

slides: setup $(SLIDES_JS)
	$(PY) tools/build_slides.py

present: slides
	$(BIN)/jupyter lab --notebook-dir=build/slides --port=$(PORT) $(ALLOW_ROOT)

bench: setup
	$(PY) tools/bench/run.py $(BENCH_ARGS)

clean:
	rm -rf build .pytest_cache .ruff_cache
