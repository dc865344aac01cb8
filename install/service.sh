#!/usr/bin/env bash
# Run the ned_fx daemon (ned-fx serve) as a systemd user service. Idempotent.
set -euo pipefail

usage() {
    cat <<USAGE
usage: install/service.sh [--root DIR]... [--bind ENDPOINT] [--device DEV] [--engine ENGINE] [--no-start]
                          [--unit-dir DIR] [--dry-run]

  Writes ned-fx.service (from install/ned-fx.service) to ~/.config/systemd/user, running this checkout's
  .venv/bin/ned-fx serve, then enables and starts it with systemctl --user.

  --root DIR       a folder requests may read (repeatable; default \$HOME). Add the shows' storage and the
                   Nuke cache folder (\$NED_FX_NUKE_CACHE).
  --bind ENDPOINT  where to listen (default tcp://127.0.0.1:5557)
  --device DEV     auto, cpu, cuda, cuda:N (default auto)
  --engine ENGINE  ned_fx or identity (default ned_fx)
  --no-start       write the unit only (no systemctl)
  --unit-dir DIR   where the unit goes (default \${XDG_CONFIG_HOME:-~/.config}/systemd/user)
  --dry-run        change nothing: print the unit
  -h, --help       this help

  To keep it running while you are logged out: loginctl enable-linger \$USER
USAGE
}

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
template="$repo/install/ned-fx.service"
exe="$repo/.venv/bin/ned-fx"
roots=()
bind="tcp://127.0.0.1:5557"; device="auto"; engine="ned_fx"; start=1; dry=0
unit_dir="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"

while [ $# -gt 0 ]; do
    case "$1" in
        --root) roots+=("${2:?--root needs a folder}"); shift 2 ;;
        --bind) bind="${2:?--bind needs an endpoint}"; shift 2 ;;
        --device) device="${2:?--device needs a device}"; shift 2 ;;
        --engine) engine="${2:?--engine needs ned_fx or identity}"; shift 2 ;;
        --no-start) start=0; shift ;;
        --unit-dir) unit_dir="${2:?--unit-dir needs a folder}"; shift 2 ;;
        --dry-run) dry=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install/service.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$engine" in ned_fx|identity) ;; *) echo "install/service.sh: --engine $engine; valid: ned_fx, identity" >&2; exit 2 ;; esac
if [ ${#roots[@]} -eq 0 ]; then roots=("$HOME"); fi

quote() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
exec_line="$(quote "$exe") serve --bind $(quote "$bind") --device $(quote "$device") --engine $engine"
for r in "${roots[@]}"; do
    exec_line="$exec_line --root $(quote "$(cd "$r" 2>/dev/null && pwd || echo "$r")")"
done
unit="$(sed -e "s|@EXEC@|$(printf '%s' "$exec_line" | sed 's/[&|]/\\&/g')|" -e "s|@REPO@|$repo|g" "$template")"

if [ "$dry" = 1 ]; then
    echo "would write $unit_dir/ned-fx.service:"
    echo "$unit"
    if [ "$start" = 1 ]; then
        echo "would run: systemctl --user daemon-reload && systemctl --user enable --now ned-fx.service"
    fi
    exit 0
fi

if [ ! -x "$exe" ]; then
    echo "install/service.sh: $exe is missing: run install/setup.sh first" >&2
    exit 2
fi
mkdir -p "$unit_dir"
tmp="$(mktemp "$unit_dir/.ned-fx.service.XXXXXX")"
chmod 644 "$tmp"
echo "$unit" > "$tmp"
if [ -f "$unit_dir/ned-fx.service" ] && cmp -s "$tmp" "$unit_dir/ned-fx.service"; then
    rm -f "$tmp"
    echo "unchanged $unit_dir/ned-fx.service"
else
    mv "$tmp" "$unit_dir/ned-fx.service"
    echo "wrote $unit_dir/ned-fx.service"
fi
if [ "$start" = 1 ]; then
    systemctl --user daemon-reload
    systemctl --user enable --now ned-fx.service
    systemctl --user restart ned-fx.service
    echo "started: systemctl --user status ned-fx.service; logs: journalctl --user -u ned-fx.service"
fi
