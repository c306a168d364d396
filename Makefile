# The series' commands. Each creates .venv on first use and reinstalls it when
# requirements.txt or pyproject.toml changes.
#   make run           run notebooks 01-04 headless at the article's settings
#   make run CLASS=1   the same in class mode (one epoch: a live lesson)
#   make run QUICK=1   the same in quick mode (a few minutes on a laptop)
#   make run-further   run the optional notebook 05 (QUICK=1 and CLASS=1 work too)
#   make solutions     run the worked solutions to the exercises
#   make test          ruff, then unit tests + nbval over the notebooks and solutions (quick mode,
#                      temp folder), with the branch coverage of helpers/
#   make mutants       the mutation check: deliberate bugs in helpers/, notebooks and solutions
#   make test-browser  the notebooks in JupyterLab in headless Chromium (needs apt chromium)
#   make lab           open the series in JupyterLab with this environment's kernel
#   make bench         measure the series on this machine (prints a table)
#   make test-hub      a class on JupyterHub: 3 students (HUB_STUDENTS=N) run 01-04 at once through their own servers (needs npm; HUB_MODE=quick to try)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

ifdef QUICK
export CIFAR10_QUICK := $(QUICK)
endif
ifdef CLASS
export CIFAR10_CLASS := $(CLASS)
endif

.PHONY: install data run run-further solutions test test-browser lab notebooks bench mutants clean test-hub

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name cifar10-cnn --display-name "CIFAR-10 CNN (.venv)"
	@touch $(STAMP)

# Reads the local copy named by CIFAR10_PATH, or downloads CIFAR-10 once into
# Keras' cache (~/.keras/datasets) so that nothing later needs the network.
data: $(STAMP)
	@$(BIN)/python scripts/check_data.py

run: data
	$(BIN)/python scripts/run_notebooks.py

run-further: data
	$(BIN)/python scripts/run_notebooks.py notebooks/05_going_further.ipynb

solutions: data
	$(BIN)/python scripts/run_notebooks.py notebooks/solutions/*.ipynb

# Coverage is measured over tests/ only: under pytest-cov, nbval would also start coverage in
# every notebook kernel, which times out here and errs every cell.
test: data
	$(BIN)/ruff check
	$(BIN)/python -m pytest --cov --cov-report=term-missing:skip-covered tests
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=900 notebooks

# JupyterLab in headless Chromium runs every notebook (quick mode). Needs Debian's
# chromium package (/usr/bin/chromium); installs Playwright into .venv.
test-browser: data $(VENV)/.browser
	$(BIN)/python -m pytest -m browser tests/browser

$(VENV)/.browser: $(STAMP)
	$(BIN)/python -m pip install --quiet "playwright~=1.65.2"
	@touch $@

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

# Maintainers: refresh the outputs stored in notebooks/ with a full run.
notebooks: data
	$(BIN)/python scripts/run_notebooks.py --inplace
	$(BIN)/python scripts/run_notebooks.py --inplace notebooks/05_going_further.ipynb

# Measure load, conversion, training, prediction and the quick series on this machine.
bench: data
	$(BIN)/python scripts/bench.py

# Deliberate bugs in helpers/, the notebooks and the solutions, each in a scratch copy; every
# one must make the test named for it fail.
mutants: data
	$(BIN)/python scripts/mutants.py

test-hub: data
	@command -v npm >/dev/null || { echo "make test-hub needs npm (with node 18 or later) for JupyterHub's proxy, configurable-http-proxy: install it (Debian: apt-get install npm) and retry." >&2; exit 1; }
	$(BIN)/python -m pip install --quiet -r classroom/requirements-hub.txt
	@test -x classroom/.proxy/node_modules/.bin/configurable-http-proxy || npm install --prefix classroom/.proxy --no-fund --no-audit --loglevel=error configurable-http-proxy@5.3.0
	HUB_TEST=1 $(BIN)/python -m pytest --noconftest -p no:cacheprovider -s -v tests/hub

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
