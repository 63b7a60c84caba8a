# Pruning recurrent text classifiers -- course commands.
#   make lab      set up (first time), copy the exercises into my-notebooks/ (only chapters
#                 not there yet: your work is never overwritten) and open JupyterLab there;
#                 make lab KIT=<folder> installs from a workshop kit, with no network
#   make lab-full JupyterLab on notebooks/: the full notebooks, every answer filled in
#   make warm     before a class: set up, run chapter 1, cache every model the chapters load
#                 (python -m course_utils warm does the caching on any platform)
#   make test     set up with dev tools, lint, unit tests, every notebook under nbval (twice:
#                 default threads, one thread), every student and self-paced copy run top to
#                 bottom (make copies), the workshop kit installed offline (make kit-check),
#                 browser tests
#   make run      execute every notebook headless into build/html/
#   make student  learner copies into build/student/, build/solutions/, build/self-paced/
#   make slides   reveal.js decks into build/slides/ (offline; npm ci of reveal.js the first time)
#   make book     the course website into build/book/: every chapter with its outputs, the
#                 instructor guide, the slides (Sphinx + MyST-NB, offline; npm ci as for slides)
#   make present  the decks live with RISE in JupyterLab (build/slides/)
#   make bench    the benchmark: build/bench/bench.json and bench.md (BENCH_ARGS="--workers 2"
#                 runs its grid as Ray tasks; installs the scale extra the first time)
#   make kit      the offline workshop kit in build/kit/ (KIT=<folder> for another): wheels
#                 for Linux, macOS and Windows, the warmed cache, the slides (tools/kit.py;
#                 KIT_ARGS, e.g. --platform linux-x86_64 --python 3.11, narrows it)

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
# A workshop kit (make kit) to set up from with no network: make lab KIT=<folder>.
KIT     ?=
export COURSE_CACHE ?= $(CURDIR)/.cache
export PYTHONHASHSEED := 0

NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
SLIDES_JS := slides/node_modules/.package-lock.json
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)

.PHONY: help setup setup-dev lab lab-full warm test lint format unit nbval copies browser run \
	notebooks student slides book present bench clean kit kit-setup kit-check

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

$(VENV)/.setup-book: pyproject.toml $(VENV)/.setup
	$(PIP) install --quiet -e '.[book]'
	touch $@

setup: $(if $(KIT),kit-setup,$(VENV)/.setup)
setup-dev: $(VENV)/.setup-dev

# The same set-up from a workshop kit (make kit), with no network: torch, then the course,
# from $(KIT)/wheels only; the kit's models fill an empty cache. Later runs of make without
# KIT find everything installed.
kit-setup:
	@test -d "$(KIT)/wheels" || { echo "KIT=$(KIT): no wheels/ there (make kit writes a kit)"; exit 1; }
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --no-index --find-links "$(KIT)/wheels" torch
	$(PIP) install --quiet --no-index --find-links "$(KIT)/wheels" -e '.[deploy]'
	touch $(VENV)/.torch $(VENV)/.setup
	@if [ -d "$(KIT)/cache" ] && [ -z "$$(ls -A "$(COURSE_CACHE)" 2>/dev/null)" ]; then \
	  mkdir -p "$(COURSE_CACHE)" && cp -R "$(KIT)/cache/." "$(COURSE_CACHE)/" && \
	  echo "The kit's models are in $(COURSE_CACHE)."; fi

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

# Slides and the website (built on the fly) in headless Chromium, JupyterLab driven by
# Playwright. Without Chromium they are reported as NOT RUN; COURSE_REQUIRE_BROWSER=1 (set
# by .ci/run) makes that an error.
browser: setup-dev
	@if command -v npm >/dev/null 2>&1; then $(MAKE) -s --no-print-directory $(SLIDES_JS) || true; fi
	$(BIN)/pytest tests/browser

# Every student and self-paced copy, top to bottom in fast mode, no exercise solved: no
# cell may fail, every check must say [NOT YET]. Then nbgrader autogrades chapter 1, solved
# and unsolved. After nbval, whose run cached the baseline.
# COURSE_COPIES=1 is what lets pytest collect tests/copies (plain `pytest tests` does not).
copies: setup-dev
	COURSE_COPIES=1 COURSE_FAST=1 COURSE_PROGRESS=0 $(BIN)/pytest tests/copies \
	  -p no:cacheprovider --durations=0

# The workshop kit for Linux x86-64 and this Python, built into a temporary folder and
# installed into a fresh venv with pip's network off; chapter 1 then runs from it in fast
# mode. After nbval, whose run cached chapter 1's models (they go into the kit).
# COURSE_KIT=1 is what lets tests/test_kit.py run (plain `pytest tests` skips it).
kit-check: setup-dev
	COURSE_KIT=1 $(BIN)/pytest tests/test_kit.py -p no:cacheprovider -s --durations=0

test: lint unit nbval copies kit-check browser

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

# The website: Sphinx + MyST-NB over the committed outputs (nothing is run), MathJax from
# slides/node_modules; tools/build_book.py says what goes in.
book: $(VENV)/.setup-book $(SLIDES_JS)
	$(PY) tools/build_book.py

present: slides
	$(BIN)/jupyter lab --notebook-dir=build/slides --port=$(PORT) $(ALLOW_ROOT)

bench: setup
	$(if $(findstring --workers,$(BENCH_ARGS)),$(PY) -c 'import ray' 2>/dev/null || \
	  $(PIP) install --quiet -e '.[scale]')
	$(PY) tools/bench/run.py $(BENCH_ARGS)

# The offline workshop kit. First the caching step of make warm, which trains only what
# is not cached yet (seconds when the cache is warm, about 5 minutes when it is empty).
kit: slides
	COURSE_PROGRESS=0 $(PY) -m course_utils warm
	$(PY) tools/kit.py --out "$(or $(KIT),build/kit)" --cache "$(COURSE_CACHE)" $(KIT_ARGS)

clean:
	rm -rf build .pytest_cache .ruff_cache
