# Quick start targets. Each one does all the set-up it needs: it creates the
# virtual environment in .venv if it is missing and installs rvoslib into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.rvoslib-installed

.PHONY: setup lab demo test test-unit test-notebooks clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[notebooks,dev]"
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install rvoslib with the notebook and dev extras

lab: $(STAMP)  ## open the notebook series in JupyterLab
	$(BIN)/jupyter lab notebooks/

demo: $(STAMP)  ## headless: segment a bundled real clip and write an overlay video
	$(BIN)/rvoslib segment data_samples/davis/blackswan "a black feathered swan" --out runs/demo/blackswan_overlay.mp4

test: $(STAMP)  ## every test: unit tests and the notebooks (fast mode, CPU)
	$(BIN)/python -m pytest tests $(wildcard notebooks/*.ipynb) --nbval -p no:cacheprovider

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests -p no:cacheprovider

clean:
	rm -rf $(VENV) runs .pytest_cache
