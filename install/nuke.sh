#!/usr/bin/env bash
# Install the ned_fx Nuke bridge: put host_bridges/nuke on Nuke's plugin path and give Nuke's Python what the
# bridge needs (pyzmq, msgpack, numpy). Idempotent: running it again changes nothing.
set -euo pipefail

usage() {
    cat <<USAGE
usage: install/nuke.sh [--nuke-python PATH] [--endpoint ENDPOINT] [--cache DIR] [--nuke-dir DIR] [--print] [--dry-run]

  Adds one line to ~/.nuke/init.py that puts host_bridges/nuke on Nuke's plugin path, and writes
  ~/.nuke/ned_fx.json (where the ned_fx package is, which daemon to use). Nuke then shows
  Nodes > ned_fx > Emotion Director.

  --nuke-python PATH  Nuke's own Python (e.g. /usr/local/Nuke15.1v3/python3); installs pyzmq, msgpack and
                      numpy into it with "PATH -m pip install --user"
  --endpoint EP       the daemon nodes use when their endpoint knob is empty and NED_FX_ENDPOINT is not set
                      (default tcp://127.0.0.1:5557)
  --cache DIR         the nodes' cache folder when NED_FX_NUKE_CACHE is not set: put it on storage the farm
                      sees (and under a --root of the daemon), so blades use the artist's edited frames
                      (default: the local temp folder, which blades cannot see)
  --nuke-dir DIR      Nuke's user folder (default \$NUKE_USER_DIR or ~/.nuke)
  --print             change nothing: print the exports a farm blade needs instead (NUKE_PATH, NED_FX_ROOT,
                      NED_FX_ENDPOINT, NED_FX_NUKE_CACHE)
  --dry-run           change nothing: print what would be written and run
  -h, --help          this help

  Farm blades: set NED_FX_ENDPOINT to a daemon they can reach, or NED_FX_PYTHON to the Python of a ned_fx
  install on the blade (a render then starts a private daemon), and NED_FX_NUKE_CACHE to the shared cache.
USAGE
}

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bridge="$repo/host_bridges/nuke"
nuke_dir="${NUKE_USER_DIR:-$HOME/.nuke}"
nuke_python=""
endpoint="tcp://127.0.0.1:5557"
cache=""
mode="install"

while [ $# -gt 0 ]; do
    case "$1" in
        --nuke-python) nuke_python="${2:?--nuke-python needs a path}"; shift 2 ;;
        --endpoint) endpoint="${2:?--endpoint needs an endpoint}"; shift 2 ;;
        --cache) cache="${2:?--cache needs a folder}"; shift 2 ;;
        --nuke-dir) nuke_dir="${2:?--nuke-dir needs a folder}"; shift 2 ;;
        --print) mode="print"; shift ;;
        --dry-run) mode="dry-run"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install/nuke.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [ ! -f "$bridge/init.py" ] || [ ! -f "$repo/ned_fx/__init__.py" ]; then
    echo "install/nuke.sh: $bridge/init.py or $repo/ned_fx is missing: run this from a ned_fx checkout" >&2
    exit 2
fi
if [ -n "$nuke_python" ] && [ ! -x "$nuke_python" ]; then
    echo "install/nuke.sh: --nuke-python $nuke_python is not an executable file" >&2
    exit 2
fi

marker="# ned_fx (install/nuke.sh)"
line="import nuke; nuke.pluginAddPath(r'$bridge')  $marker"
init="$nuke_dir/init.py"
config="$nuke_dir/ned_fx.json"
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
config_text="{\"root\": $(json_str "$repo"), \"endpoint\": $(json_str "$endpoint")}"
if [ -n "$cache" ]; then
    config_text="{\"root\": $(json_str "$repo"), \"endpoint\": $(json_str "$endpoint"), \"cache\": $(json_str "$cache")}"
fi
pip_cmd=("$nuke_python" -m pip install --user "pyzmq>=25" "msgpack>=1.0" "numpy>=1.24")

if [ "$mode" = "print" ]; then
    echo "export NUKE_PATH=\"$bridge\${NUKE_PATH:+:\$NUKE_PATH}\""
    echo "export NED_FX_ROOT=\"$repo\""
    echo "export NED_FX_ENDPOINT=\"$endpoint\""
    if [ -n "$cache" ]; then
        echo "export NED_FX_NUKE_CACHE=\"$cache\""
    else
        echo "# export NED_FX_NUKE_CACHE=/shared/storage/ned_fx_nuke   (the artists' cache, on storage the farm sees)"
    fi
    exit 0
fi

if [ "$mode" = "dry-run" ]; then
    if [ -f "$init" ] && grep -qF "$line" "$init"; then
        echo "unchanged $init"
    else
        echo "would write $init: $line"
    fi
    echo "would write $config: $config_text"
    if [ -n "$nuke_python" ]; then echo "would run: ${pip_cmd[*]}"; fi
    exit 0
fi

mkdir -p "$nuke_dir"
if [ -f "$init" ] && grep -qF "$line" "$init"; then
    echo "unchanged $init"
else
    tmp="$(mktemp "$nuke_dir/.init.py.XXXXXX")"
    chmod 644 "$tmp"
    if [ -f "$init" ]; then grep -vF "$marker" "$init" > "$tmp" || true; fi
    echo "$line" >> "$tmp"
    mv "$tmp" "$init"
    echo "wrote $init"
fi
tmp="$(mktemp "$nuke_dir/.ned_fx.json.XXXXXX")"
chmod 644 "$tmp"
echo "$config_text" > "$tmp"
mv "$tmp" "$config"
echo "wrote $config"
if [ -n "$nuke_python" ]; then
    "${pip_cmd[@]}"
    "$nuke_python" -c "import zmq, msgpack, numpy; print('Nuke Python has pyzmq', zmq.__version__, 'msgpack', msgpack.version, 'numpy', numpy.__version__)"
else
    echo "note: Nuke's Python needs pyzmq, msgpack and numpy: rerun with --nuke-python /path/to/Nuke/python3"
fi
echo "done: restart Nuke; Nodes > ned_fx > Emotion Director. Start the daemon with install/service.sh or ned-fx serve."
