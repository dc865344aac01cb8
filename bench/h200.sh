#!/usr/bin/env bash
# The GPU checks in one prepared call of a lent machine (the workplace's `device` tool: one H200, its image's
# python3 with CUDA torch, nothing reachable from it). Two halves:
#
#   bench/h200.sh prepare     # here: fills .dev/ (git-ignored): the converted tracker weights, the shared
#                             # clips the benches read (never committed), wheels of what the image lacks
#   bench/h200.sh run         # there, from the repo root, with .dev carried: the CUDA tests, bench/gpu.py,
#                             # bench/batching.py --device cuda; logs and results JSON go to $OUT
#   STEPS='tests batching' TESTS=tests/test_runners.py bench/h200.sh run    # some of them
#
# `run` gives each step its own time limit, so one that hangs or fails leaves the others' numbers.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

prepare() {
    set -e
    home=${NED_FX_HOME:-$HOME/.cache/ned_fx}
    [ -d "$home/weights" ] || { echo "no tracker weights in $home: run .venv/bin/ned-fx weights install" >&2; exit 1; }
    rm -rf .dev && mkdir -p .dev/footage .dev/whl
    cp -r "$home/weights" .dev/weights
    footage=${NED_FX_FOOTAGE:-$here/../shared/footage}
    cp "$footage/d12.mp4" "$footage/WDA_AlexandriaOcasioCortez_000.mp4" "$footage/d3.mp4" \
        "$footage/people_0.png" .dev/footage/
    # the image has Python 3.12, torch, numpy, OpenCV, onnx(runtime), msgpack, scipy; not PyAV or pyzmq
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .dev/whl av pyzmq
    git rev-parse HEAD > .dev/commit
    du -sh .dev
}

step() {  # step NAME SECONDS COMMAND...: run with a limit, log to $OUT/NAME.log, never stop the script
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s) $(date -u +%T)"
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "=== $name rc=$rc $(date -u +%T)"
    tail -n 40 "$OUT/$name.log"
}

run() {
    : "${OUT:?run on the device machine: \$OUT is where results go}"
    export PYTHONUNBUFFERED=1
    touch /tmp/h200.start
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .dev/whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$here
    export NED_FX_HOME=/tmp/ned_fx_home NED_FX_FOOTAGE=$here/.dev/footage NED_FX_COMMIT=$(cat .dev/commit)
    mkdir -p "$NED_FX_HOME" && cp -r .dev/weights "$NED_FX_HOME/weights"
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.used,temperature.gpu --format=csv \
        | tee "$OUT/nvidia-smi.txt"
    python3 -c "import torch, av, zmq; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0), 'av', av.__version__, 'zmq', zmq.__version__)"
    # STEPS picks and orders the steps (default: all); TESTS the test files of the first
    for s in ${STEPS:-tests gpu batching compile}; do
        case $s in
            tests) step tests 90 python3 -m pytest -q -p no:cacheprovider -o addopts="" -rs \
                ${TESTS:-tests/test_runners.py tests/test_fastpath.py} ;;
            gpu) step gpu 220 python3 bench/gpu.py --device cuda --sizes 1080 2160 512 \
                --backends torch-cuda torch-cuda-graphs --frames 32 --repeat 3 --budget 170 ;;
            # every run_hosts waits 8 s for its hosts to start: 14 runs at --repeats 2, so ~4 minutes
            batching) step batching 230 python3 bench/batching.py --device cuda --frames 16 --repeats 2 ;;
            compile) step compile 90 python3 bench/gpu.py --device cuda --sizes 1080 --backends torch-cuda \
                torch-compile --boxes shot --batches 8 --frames 32 --repeat 3 --no-track --no-engines --budget 60 ;;
        esac
    done
    find bench/results -name '*.json' -newer /tmp/h200.start -exec cp {} "$OUT/" \;   # this run's results only
    ls "$OUT"
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: bench/h200.sh prepare|run" >&2; exit 2 ;;
esac
