#!/usr/bin/env bash
# `make test-serving`: the Triton tests against a REAL tritonserver.
#
# 1. the serving venv ($SERVING, default .venv-serving) from Debian's python3.11
#    ($SERVING_PYTHON): nvidia-pytriton (tritonserver 2.51 + Python backend), tritonclient[all],
#    pytest and the project's runtime (pip install -e .: numpy, onnxruntime, Pillow, click, rich).
#    Without python3.11 or its venv module (and no way to apt-get them) this skips: exit 0.
# 2. the artifacts it serves, made with torch in the main venv ($MAIN_PYTHON): FP32, INT8 and
#    in-graph ONNX of a small brain U-Net, and real MRI slices (cached in build/serving).
# 3. pytest tests/serving in the serving venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
SERVING_PYTHON=${SERVING_PYTHON:-/usr/bin/python3.11}
SERVING=${SERVING:-.venv-serving}
MAIN_PYTHON=${MAIN_PYTHON:-.venv/bin/python}
ARTIFACTS=${SEGDEPLOY_SERVING_ARTIFACTS:-build/serving}
STAMP=$SERVING/.installed

have_python() {
  [ -x "$SERVING_PYTHON" ] && "$SERVING_PYTHON" -c "import venv, ensurepip" 2>/dev/null &&
    { ! command -v ldconfig >/dev/null || ldconfig -p | grep -q 'libpython3\.11\.so'; }
}

if ! have_python; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test-serving: installing python3.11-venv and libpython3.11 (apt-get)"
    apt-get update -qq && apt-get install -y -qq python3.11-venv libpython3.11 >/dev/null ||
      echo "test-serving: apt-get could not install python3.11-venv libpython3.11"
  fi
  if ! have_python; then
    echo "test-serving: SKIPPED: $SERVING_PYTHON with its venv module and libpython3.11 is" \
         "needed (the nvidia-pytriton wheel's Python-backend stub links it), and apt-get" \
         "could not provide them here"
    exit 0
  fi
fi

if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ "$0" -nt "$STAMP" ]; then
  rm -rf "$SERVING"
  "$SERVING_PYTHON" -m venv "$SERVING"
  "$SERVING/bin/python" -m pip install -q --upgrade pip
  "$SERVING/bin/python" -m pip install -q nvidia-pytriton 'tritonclient[all]' 'pytest>=8' \
    'pytest-timeout>=2'
  "$SERVING/bin/python" -m pip install -q -e .
  touch "$STAMP"
fi

"$MAIN_PYTHON" -m tests.serving.make_artifacts "$ARTIFACTS"
SEGDEPLOY_SERVING_ARTIFACTS="$ARTIFACTS" "$SERVING/bin/python" -m pytest -q -p no:cacheprovider \
  --timeout 600 tests/serving "$@"
