#!/usr/bin/env bash
# Install the ned_fx Resolve script into DaVinci Resolve's Scripts/Utility folder (Workspace > Scripts > Utility)
# with a settings file beside it. Idempotent; an existing settings file is kept unless --force.
set -euo pipefail

usage() {
    cat <<USAGE
usage: install/resolve.sh [--os linux|macos|windows] [--system] [--dest DIR] [--endpoint EP] [--python PATH]
                          [--force] [--dry-run]

  Copies host_bridges/resolve/ned_fx_emotion.py to Resolve's Fusion/Scripts/Utility folder and writes
  ned_fx_emotion.json beside it (where ned_fx is, the Python that runs the edits, the daemon, default edit).
  Resolve's scripting Python must be 3.7+ (the edits themselves run in --python, which needs no Resolve);
  DaVinci Resolve (free) 19.1+ has no script dialog: the pass then reads ned_fx_emotion.json.

  Folders (per user; --system for all users where Resolve has one):
    linux    ~/.local/share/DaVinciResolve/Fusion/Scripts/Utility   (--system: /opt/resolve/Fusion/Scripts/Utility)
    macos    ~/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts/Utility
             (--system: /Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts/Utility)
    windows  %APPDATA%\\Blackmagic Design\\DaVinci Resolve\\Support\\Fusion\\Scripts\\Utility
             (--system: %PROGRAMDATA%\\Blackmagic Design\\DaVinci Resolve\\Fusion\\Scripts\\Utility)

  --os NAME      the OS layout to use (default: this machine's)
  --system       the all-users folder (needs write access there)
  --dest DIR     install into DIR instead
  --endpoint EP  the daemon (default tcp://127.0.0.1:5557)
  --python PATH  the Python that runs the edits (default: this checkout's .venv/bin/python)
  --force        overwrite an existing ned_fx_emotion.json
  --dry-run      change nothing: print what would be written
  -h, --help     this help
USAGE
}

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
script="$repo/host_bridges/resolve/ned_fx_emotion.py"
case "$(uname -s)" in
    Darwin) os="macos" ;;
    MINGW*|MSYS*|CYGWIN*) os="windows" ;;
    *) os="linux" ;;
esac
system=0; dest=""; endpoint="tcp://127.0.0.1:5557"; python="$repo/.venv/bin/python"; force=0; dry=0

while [ $# -gt 0 ]; do
    case "$1" in
        --os) os="${2:?--os needs linux, macos or windows}"; shift 2 ;;
        --system) system=1; shift ;;
        --dest) dest="${2:?--dest needs a folder}"; shift 2 ;;
        --endpoint) endpoint="${2:?--endpoint needs an endpoint}"; shift 2 ;;
        --python) python="${2:?--python needs a path}"; shift 2 ;;
        --force) force=1; shift ;;
        --dry-run) dry=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install/resolve.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [ -z "$dest" ]; then
    case "$os:$system" in
        linux:0) dest="$HOME/.local/share/DaVinciResolve/Fusion/Scripts/Utility" ;;
        linux:1) dest="/opt/resolve/Fusion/Scripts/Utility" ;;
        macos:0) dest="$HOME/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts/Utility" ;;
        macos:1) dest="/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts/Utility" ;;
        windows:0) dest="${APPDATA:?APPDATA is not set}/Blackmagic Design/DaVinci Resolve/Support/Fusion/Scripts/Utility" ;;
        windows:1) dest="${PROGRAMDATA:?PROGRAMDATA is not set}/Blackmagic Design/DaVinci Resolve/Fusion/Scripts/Utility" ;;
        *) echo "install/resolve.sh: --os $os; valid: linux, macos, windows" >&2; exit 2 ;;
    esac
fi
if [ ! -f "$script" ]; then
    echo "install/resolve.sh: $script is missing: run this from a ned_fx checkout" >&2
    exit 2
fi

config="$dest/ned_fx_emotion.json"
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
config_text="{
  \"ned_fx_root\": $(json_str "$repo"),
  \"python\": $(json_str "$python"),
  \"endpoint\": $(json_str "$endpoint"),
  \"emotion\": \"happy\",
  \"intensity\": 1.0,
  \"consent\": \"\",
  \"select\": \"selection\",
  \"clip_color\": \"Orange\"
}"

if [ "$dry" = 1 ]; then
    echo "would copy $script -> $dest/ned_fx_emotion.py"
    if [ -f "$config" ] && [ "$force" = 0 ]; then
        echo "would keep $config"
    else
        echo "would write $config:"
        echo "$config_text"
    fi
    exit 0
fi

mkdir -p "$dest"
tmp="$(mktemp "$dest/.ned_fx_emotion.py.XXXXXX")"
chmod 644 "$tmp"
cp "$script" "$tmp"
mv "$tmp" "$dest/ned_fx_emotion.py"
echo "installed $dest/ned_fx_emotion.py"
if [ -f "$config" ] && [ "$force" = 0 ]; then
    echo "kept $config (--force to rewrite it)"
else
    tmp="$(mktemp "$dest/.ned_fx_emotion.json.XXXXXX")"
    chmod 644 "$tmp"
    echo "$config_text" > "$tmp"
    mv "$tmp" "$config"
    echo "wrote $config"
fi
if [ ! -x "$python" ]; then
    echo "note: $python does not exist yet: run install/setup.sh, or pass --python" >&2
fi
echo "done: in Resolve, Workspace > Scripts > Utility > ned_fx_emotion (select the clips — Resolve 21.0.4+ — or put a timeline marker on each)."
echo "DaVinci Resolve (free) 19.1+ shows no dialog: edit $config to choose the edit; progress is in Workspace > Console. Running from a shell needs Resolve Studio."
