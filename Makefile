# Two commands for a fresh machine (see README):
#   make book   — set up, run the smoke sweep + Grad-CAM if no records exist, build the site
#   make test   — set up, run the whole test suite (pytest + nbval)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The full CIFAR-10 folder beside the checkout, when there is one (this workplace); otherwise the
# project falls back to torchvision's download or, for smoke runs, the embedded sample.
SHARED_DATA := $(abspath ../shared/data/cifar10)
ifneq ($(wildcard $(SHARED_DATA)/train),)
export SE_RES2NET_DATA_DIR ?= $(SHARED_DATA)
endif
export OMP_NUM_THREADS ?= 2
export MPLBACKEND ?= Agg

.PHONY: setup test test-fast book complexity runs publish clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m ipykernel install --prefix $(VENV) --name python3 > /dev/null
	touch $@

setup: $(VENV)/.installed

test: setup
	bash scripts/run-tests.sh

complexity: setup
	$(VENV)/bin/se-res2net complexity --blocks

# Records exist → only build. No records → smoke sweep + Grad-CAM first.
runs: setup
	bash scripts/ensure-runs.sh

book: runs
	$(VENV)/bin/jupyter-book build book -W -n --keep-going

# Push the built site to the gh-pages branch of `origin` (ghp-import: -n adds .nojekyll so Sphinx's _static/
# is served, -p pushes, -f replaces the branch). Builds the site first when there is none. The workflow in
# .github/workflows/deploy-book.yml publishes on every push to main instead; this is the by-hand route.
publish: setup
	@test -f book/_build/html/index.html || $(MAKE) book
	$(VENV)/bin/ghp-import -n -p -f book/_build/html

clean:
	rm -rf book/_build .pytest_cache
