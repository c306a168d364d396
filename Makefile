# The series' commands. Each creates .venv on first use and reinstalls it when
# requirements.txt or pyproject.toml changes.
#   make run           run notebooks 01-04 headless at the article's settings
#   make run QUICK=1   the same in quick mode (a few minutes on a laptop)
#   make test          unit tests + nbval over the notebooks (quick mode, temp folder)
#   make lab           open the series in JupyterLab with this environment's kernel

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

ifdef QUICK
export CIFAR10_QUICK := $(QUICK)
endif

.PHONY: install data run test lab notebooks clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# Reads the local copy named by CIFAR10_PATH, or downloads CIFAR-10 once into
# Keras' cache (~/.keras/datasets) so that nothing later needs the network.
data: $(STAMP)
	$(BIN)/python -m helpers.data

run: data
	$(BIN)/python scripts/run_notebooks.py

test: data
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=900 tests notebooks

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

# Maintainers: refresh the outputs stored in notebooks/ with a full run.
notebooks: data
	$(BIN)/python scripts/run_notebooks.py --inplace

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
