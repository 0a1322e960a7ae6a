# Two set-up commands: `make demo` and `make test`. Each creates .venv and
# installs what it needs: torch pinned first (a CPU build), then the project.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-zoo zoo-venv test-serving test-scale scale-venv lint venv clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[torch,dev,plot]'
	# Built-in real data ships inside these packages; their own heavy
	# dependencies (scikit-learn, tensorflow, numba) are not needed to read it.
	$(BIN)/python -m pip install -q --no-deps nilearn stardist
	# The dense CRF's C++ engine (the crf extra) builds from its sdist (~2.5 min, g++ and
	# the Python headers) so that tests/runtime/test_crf.py compares it with the numpy
	# fallback; without a compiler the install goes on and those tests skip saying why.
	$(BIN)/python -m pip install -q -e '.[crf]' || echo "warning: pydensecrf2 did not build (needs g++ and the Python headers): the CRF agreement tests will skip"
	# Real TensorRT binding wheels (~1.3 MB each, not importable without the GPU
	# libraries) for tests/test_tensorrt_api_contract.py, which reads their names.
	# A failed download is not fatal: the test retries, then skips saying why.
	for w in tensorrt-cu12-bindings==10.3.0 tensorrt-cu12-bindings==10.16.1.11 \
	         tensorrt-cu12-bindings==11.0.0.114 tensorrt-cu13-bindings==11.4.0.106; do \
	  $(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
	    --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
	    -d $(VENV)/trt-wheels $$w || echo "warning: could not download $$w"; \
	done
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m segdeploy.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# mypy checks all of segdeploy but the torch training code (read for its signatures only)
UNTYPED := 'segdeploy/(training|data|reference_models)/'

# Third-party zoos (segmentation_models_pytorch, torchvision) in their own venv:
# torchvision does not import with the 2.13 CPU build, so this one pins 2.14.1.
ZOO := .venv-zoo
ZOO_STAMP := $(ZOO)/.installed

$(ZOO_STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(ZOO)
	$(ZOO)/bin/python -m pip install -q --upgrade pip
	$(ZOO)/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(ZOO)/bin/python -m pip install -q segmentation-models-pytorch==0.6.0
	$(ZOO)/bin/python -m pip install -q -e '.[torch,dev]' torch==2.14.1
	touch $(ZOO_STAMP)

zoo-venv: $(ZOO_STAMP)

test-zoo: $(ZOO_STAMP)
	$(ZOO)/bin/python -m pytest -q tests/zoo

# Triton serving against a REAL tritonserver (nvidia-pytriton wheel) in .venv-serving, made
# from Debian's python3.11 (skips, saying why, where that is impossible); the artifacts it
# serves are made with torch in .venv first. See tests/serving/run.sh.
test-serving: $(STAMP)
	MAIN_PYTHON=$(BIN)/python bash tests/serving/run.sh

# Ray Data (segdeploy.scale) in its own venv: the project runtime (no torch), ray[data] pinned
# to the version tested, pytest. The tests' ONNX model is made by the main venv (torch).
SCALE := .venv-scale
SCALE_STAMP := $(SCALE)/.installed
RAY_VERSION := 2.60.0

$(SCALE_STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(SCALE)
	$(SCALE)/bin/python -m pip install -q --upgrade pip
	$(SCALE)/bin/python -m pip install -q 'ray[data]==$(RAY_VERSION)' pytest pytest-timeout -e .
	touch $(SCALE_STAMP)

scale-venv: $(SCALE_STAMP)

test-scale: $(SCALE_STAMP) $(STAMP)
	rm -rf .scale-model && $(BIN)/python -m tests.scale.make_model .scale-model
	SEGDEPLOY_SCALE_MODEL=$(CURDIR)/.scale-model/model.onnx $(SCALE)/bin/python -m pytest -q tests/scale

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy segdeploy --exclude $(UNTYPED)

clean:
	rm -rf $(VENV) $(ZOO) $(SCALE) .venv-serving .scale-model build *.egg-info demo-output
