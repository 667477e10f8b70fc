#!/usr/bin/env bash
# Run Lotline locally:   bash scripts/run.sh
#
# 1. creates .venv if missing and installs the project into it (again only when pyproject changes);
# 2. makes the store (or brings its schema up to date) and fills it with demo data if it holds no
#    events yet (`lotline demo` writes only into an empty store, so this is a no-op on later runs);
# 3. serves the API (exec, so Ctrl-C stops it) on http://$LOTLINE_HOST:$LOTLINE_PORT.
#
# Environment (every LOTLINE_ variable is in the README's Configuration table), e.g.:
#   LOTLINE_DATABASE_URL  the store (default sqlite:///lotline.db, in the repository root)
#   LOTLINE_HOST          address to bind (default 127.0.0.1)
#   LOTLINE_PORT          port (default 8000)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=$PWD/.venv

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

pick_python() {
    local cand
    for cand in python3.11 python3.12 python3.13 python3; do
        if command -v "$cand" >/dev/null &&
            "$cand" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 14)))'; then
            echo "$cand"
            return 0
        fi
    done
    die "need Python 3.11-3.13"
}

if [[ ! -x $VENV/bin/python ]]; then
    [[ -e $VENV ]] && die ".venv exists but .venv/bin/python is not runnable; remove .venv and rerun"
    PY=$(pick_python)
    if ! "$PY" -c 'import ensurepip' 2>/dev/null; then
        # Debian's python3.X comes without ensurepip; it is in the python3.X-venv package.
        venv_pkg="python$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
        [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null ||
            die "$PY cannot create a venv: install $venv_pkg and rerun"
        log "apt-get install $venv_pkg"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$venv_pkg" >/dev/null
    fi
    log "creating .venv with $PY"
    "$PY" -m venv "$VENV" || { rm -rf "$VENV"; die "$PY -m venv failed"; }
fi

STAMP=$VENV/.lotline-run-stamp
if [[ ! -x $VENV/bin/lotline || ! -f $STAMP || pyproject.toml -nt $STAMP ]]; then
    log "pip install -e ."
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e .
    touch "$STAMP"
fi

# WeasyPrint (the recall report's PDF) loads Pango at import; Debian splits it out.
if ! "$VENV/bin/python" -c 'import weasyprint' >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        log "apt-get install libpango-1.0-0 libpangoft2-1.0-0 (recall reports as PDF)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core >/dev/null
    else
        log "no Pango: recall reports as PDF will answer 503 (install libpango-1.0-0 libpangoft2-1.0-0)"
    fi
fi

"$VENV/bin/lotline" demo
log "console: http://${LOTLINE_HOST:-127.0.0.1}:${LOTLINE_PORT:-8000}/console (sign in with a demo user's name and password, printed above)"
exec "$VENV/bin/lotline" serve
