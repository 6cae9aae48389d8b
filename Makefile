# Quick start targets. Each one does all the set-up it needs: it creates the
# virtual environment in .venv if it is missing and installs rvoslib into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.rvoslib-installed

.PHONY: setup lab demo test test-unit test-notebooks notebooks clean

$(STAMP): pyproject.toml notebooks/lab/overrides.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[notebooks,dev]"
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp notebooks/lab/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install rvoslib with the notebook and dev extras

lab: $(STAMP)  ## open the notebook series in JupyterLab
	$(BIN)/jupyter lab notebooks/

demo: $(STAMP)  ## headless: segment a bundled clip with the shipped tiny model; GIF with one labelled panel per sentence
	$(BIN)/rvoslib segment data_samples/synthetic/valid/JPEGImages/valid_00000 "the small triangle" "the red shape that moves up" --checkpoint data_samples/tiny_rvos/rvos-tiny-synthetic.pt --panels --fps 4 --out runs/demo/valid_00000.gif

test: $(STAMP)  ## every test: unit tests and the notebooks (fast mode, CPU)
	$(BIN)/python -m pytest tests $(wildcard notebooks/*.ipynb) --nbval -p no:cacheprovider

test-unit: $(STAMP)  ## unit tests only
	$(BIN)/python -m pytest tests -p no:cacheprovider

test-notebooks: $(STAMP)  ## the notebooks only (fast mode)
	$(BIN)/python -m pytest $(wildcard notebooks/*.ipynb) --nbval -p no:cacheprovider

notebooks: $(STAMP)  ## make each notebooks/NN_*.ipynb from its source notebooks/src/NN_*.py (or the other way, whichever is newer)
	$(BIN)/jupytext --sync notebooks/src/[0-9]*.py

clean:
	rm -rf $(VENV) runs .pytest_cache
