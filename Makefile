# Two set-up commands: `make demo` and `make test`. Each creates .venv and
# installs what it needs: torch pinned first (a CPU build), then the project.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[torch,dev,plot]'
	# Built-in real data ships inside these packages; their own heavy
	# dependencies (scikit-learn, tensorflow, numba) are not needed to read it.
	$(BIN)/python -m pip install -q --no-deps nilearn stardist
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m segdeploy.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info demo-output
