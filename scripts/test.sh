#!/usr/bin/env bash
# The single test command for Lotline:   bash scripts/test.sh [pytest args...]
#
# 1. creates .venv if missing and installs the project with its [test] extra;
# 2. starts a throw-away PostgreSQL cluster (temp dir, 127.0.0.1, free port),
#    installing the Debian `postgresql` package first if no server binaries exist
#    (and `chromium`, `chromium-driver` for the browser tests, and Pango for PDFs, likewise);
# 3. runs `ruff check .`, `mypy` and `pytest "$@"` -- all three, even if one fails;
# 4. always stops the cluster and deletes its temp dir on exit.
# Exits non-zero if any of the three failed (pytest exit 5, "no tests", is a failure).
#
# Environment:
#   LOTLINE_TEST_POSTGRES_URL  already set -> use that server, start no cluster.
#                              The URL's role needs CREATEDB (tests create a DB each).
#   LOTLINE_TEST_SKIP_LINT=1   skip ruff and mypy (quicker edit/test loop).
#   LOTLINE_PG_BINDIR          directory holding initdb/pg_ctl, if not the usual place.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VENV=$ROOT/.venv
VENV_PY=$VENV/bin/python
PYTEST_ARGS=("$@")

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run `apt-get update` at most once per invocation, then install the packages.
APT_UPDATED=0
apt_install() {
    [[ $(id -u) -eq 0 ]] || die "need root to apt-get install $*; install it yourself"
    command -v apt-get >/dev/null || die "no apt-get; install $* yourself"
    if [[ $APT_UPDATED -eq 0 ]]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --------------------------------------------------------------------------
# 1. Virtualenv + editable install
# --------------------------------------------------------------------------
pick_python() {
    local cand
    for cand in python3.11 python3.12 python3.13 python3; do
        if command -v "$cand" >/dev/null &&
            "$cand" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 14)))'; then
            echo "$cand"
            return 0
        fi
    done
    die "need Python 3.11-3.13 (pyproject requires-python)"
}

if [[ ! -x $VENV_PY ]]; then
    # Never delete a .venv we did not create; a broken one needs a human.
    [[ -e $VENV ]] && die ".venv exists but $VENV_PY is not runnable; remove .venv and rerun"
    PY=$(pick_python)
    if ! "$PY" -c 'import ensurepip' 2>/dev/null; then
        # Debian's python3.X ships without ensurepip; it lives in python3.X-venv.
        apt_install "python$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
    fi
    log "creating .venv with $PY"
    "$PY" -m venv "$VENV" || { rm -rf "$VENV"; die "$PY -m venv failed"; }
fi

# Reinstall only when the packaging metadata or interpreter changed, or when the
# installed `lotline` is not an editable install of *this* checkout. Editable
# installs pick up source edits by themselves, so this is safe to skip otherwise.
STAMP=$VENV/.lotline-install-stamp
stamp_files=(pyproject.toml)
for f in setup.cfg setup.py; do
    if [[ -f $f ]]; then stamp_files+=("$f"); fi
done
want_stamp=$({ cat "${stamp_files[@]}"; "$VENV_PY" -VV; } | sha256sum | cut -d' ' -f1)
installed_here() {
    # -I: keep the cwd off sys.path, or ./lotline.egg-info would shadow the venv.
    "$VENV_PY" -I - "$ROOT" <<'EOF' 2>/dev/null
import json, pathlib, sys
from importlib.metadata import distribution
d = json.loads(distribution("lotline").read_text("direct_url.json") or "{}")
here = pathlib.Path(sys.argv[1]).resolve().as_uri()
sys.exit(not (d.get("url") == here and d.get("dir_info", {}).get("editable")))
EOF
}
if [[ -f $STAMP && $(cat "$STAMP") == "$want_stamp" ]] && installed_here; then
    log "lotline already installed in .venv (pyproject unchanged)"
else
    log "pip install -e '.[test]'"
    rm -f "$STAMP"
    "$VENV_PY" -m pip install -q --disable-pip-version-check -e '.[test]'
    echo "$want_stamp" >"$STAMP"
fi

# Browser tests drive Debian's chromium through chromium-driver (Selenium), installed like PostgreSQL.
if ! command -v chromedriver >/dev/null || ! { command -v chromium >/dev/null || command -v chromium-browser >/dev/null; }; then
    log "no chromium/chromedriver; apt-get install chromium chromium-driver (browser tests)"
    apt_install chromium chromium-driver
fi

# WeasyPrint (the recall report's PDF) loads Pango at import; Debian splits it out.
if ! "$VENV_PY" -c 'import weasyprint' >/dev/null 2>&1; then
    log "WeasyPrint needs Pango; apt-get install libpango-1.0-0 libpangoft2-1.0-0"
    apt_install libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core
    "$VENV_PY" -c 'import weasyprint' >/dev/null || die "weasyprint still does not import"
fi

# --------------------------------------------------------------------------
# 2. Throw-away PostgreSQL cluster
# --------------------------------------------------------------------------
PGBIN=""
PGTMP=""       # temp dir holding data dir, socket, log; removed on exit
PGDATA=""
PG_OS_USER=""  # OS user that owns/runs the cluster (postgres refuses to run as root)

find_pg_bindir() {
    local d
    if [[ -n ${LOTLINE_PG_BINDIR:-} && -x ${LOTLINE_PG_BINDIR}/initdb ]]; then
        echo "$LOTLINE_PG_BINDIR"
        return 0
    fi
    # Debian/Ubuntu layout; take the newest major version if several.
    d=$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n1)
    if [[ -x $d ]]; then
        dirname "$d"
        return 0
    fi
    # Other systems (Homebrew, Fedora, ...) have initdb on PATH. Resolve
    # symlinks: we need the real bin dir, which also holds pg_ctl and createdb.
    if d=$(command -v initdb) && d=$(readlink -f "$d") && [[ -x $d ]]; then
        dirname "$d"
        return 0
    fi
    return 1
}

# Run a command as the cluster's OS user. cd first: postgres tools resolve
# their own path and may fail in a cwd that user cannot read (e.g. /root/...).
as_pg() {
    if [[ -n $PG_OS_USER ]]; then
        (cd "$PGTMP" && runuser -u "$PG_OS_USER" -- "$@")
    else
        "$@"
    fi
}

stop_cluster() {
    if [[ -n $PGDATA && -f $PGDATA/postmaster.pid ]]; then
        # -m immediate: the data is thrown away anyway, no need for a clean shutdown.
        if ! as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w -t 30 stop >/dev/null 2>&1; then
            local pid
            pid=$(head -n1 "$PGDATA/postmaster.pid" 2>/dev/null || true)
            [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    if [[ -n $PGTMP ]]; then
        rm -rf -- "$PGTMP"
    fi
}

on_exit() {
    local rc=$?
    trap - EXIT
    stop_cluster
    exit "$rc"
}
trap on_exit EXIT
# Turn signals into a normal exit so the EXIT trap cleans up.
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    "$VENV_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_cluster() {
    if ! PGBIN=$(find_pg_bindir); then
        log "no PostgreSQL server binaries found; apt-get install postgresql"
        # Note: the Debian package also creates and (if it can) starts its own
        # "main" cluster on port 5432. We do not use it; ours runs on a free port.
        apt_install postgresql
        PGBIN=$(find_pg_bindir) || die "postgresql installed but initdb still not found"
    fi

    if [[ $(id -u) -eq 0 ]]; then
        # initdb/postgres refuse to run as root: use the Debian `postgres` user,
        # or a dedicated system user if that does not exist.
        if id postgres >/dev/null 2>&1; then
            PG_OS_USER=postgres
        else
            PG_OS_USER=lotline-pg
            id "$PG_OS_USER" >/dev/null 2>&1 ||
                useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_OS_USER"
        fi
        # Under /tmp, not $TMPDIR: the cluster user must be able to reach it.
        PGTMP=$(mktemp -d /tmp/lotline-pg.XXXXXX)
        chown "$PG_OS_USER": "$PGTMP"
    else
        PGTMP=$(mktemp -d -t lotline-pg.XXXXXX)
    fi
    chmod 700 "$PGTMP"
    PGDATA=$PGTMP/data

    local pg_role=lotline pg_db=lotline_test pg_pass
    pg_pass=$("$VENV_PY" -c 'import secrets; print(secrets.token_hex(16))')  # URL-safe
    as_pg sh -c 'umask 077 && cat >"$1"' sh "$PGTMP/pwfile" <<<"$pg_pass"

    log "initdb ($PGBIN) in $PGDATA"
    # scram on TCP so the URL's password is really checked; trust on the
    # private unix socket only (it lives in our 0700 temp dir).
    as_pg "$PGBIN/initdb" -D "$PGDATA" -U "$pg_role" --pwfile="$PGTMP/pwfile" \
        --auth-host=scram-sha-256 --auth-local=trust \
        --no-locale --encoding=UTF8 --no-sync >"$PGTMP/initdb.log" 2>&1 ||
        { cat "$PGTMP/initdb.log" >&2; die "initdb failed"; }
    rm -f "$PGTMP/pwfile"

    as_pg sh -c 'cat >>"$1"' sh "$PGDATA/postgresql.conf" <<EOF

# --- lotline test cluster (scripts/test.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PGTMP'
max_connections = 200
# Throw-away data: durability is worthless here, speed is not.
# NEVER use these three settings on a server whose data you care about.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

    # Retry with another port in the unlikely case someone grabs ours in between.
    local attempt started=0
    for attempt in 1 2 3; do
        PGPORT=$(free_port)
        if as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGTMP/server.log" -o "-p $PGPORT" \
            -w -t 60 start >/dev/null; then
            started=1
            break
        fi
        log "postgres did not start on port $PGPORT (attempt $attempt)"
    done
    if [[ $started -ne 1 ]]; then
        tail -n 30 "$PGTMP/server.log" >&2 || true
        die "could not start PostgreSQL"
    fi

    # Create the DB over TCP with the password: proves the URL below works.
    PGPASSWORD=$pg_pass "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U "$pg_role" "$pg_db"

    export LOTLINE_TEST_POSTGRES_URL="postgresql://$pg_role:$pg_pass@127.0.0.1:$PGPORT/$pg_db"
    log "PostgreSQL $("$PGBIN/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$PGPORT"
}

if [[ -n ${LOTLINE_TEST_POSTGRES_URL:-} ]]; then
    log "using LOTLINE_TEST_POSTGRES_URL from the environment; not starting a cluster"
else
    start_cluster
fi

# --------------------------------------------------------------------------
# 3. Lint, type-check, test -- run all, report all, fail if any failed
# --------------------------------------------------------------------------
STATUS=0
SUMMARY=()
step() {
    local name=$1 rc=0
    shift
    log "$name"
    "$@" || rc=$?
    if [[ $rc -eq 0 ]]; then
        SUMMARY+=("  ok      $name")
    else
        SUMMARY+=("  FAILED  $name (exit $rc)")
        STATUS=1
    fi
}

if [[ ${LOTLINE_TEST_SKIP_LINT:-0} != 1 ]]; then
    step "ruff check ." "$VENV/bin/ruff" check .
    step "mypy" "$VENV/bin/mypy"
fi
# Any non-zero pytest exit fails the run, including 5 (no tests collected).
step "pytest${PYTEST_ARGS[*]:+ ${PYTEST_ARGS[*]}}" "$VENV/bin/pytest" "${PYTEST_ARGS[@]}"

printf '\nsummary:\n' >&2
printf '%s\n' "${SUMMARY[@]}" >&2
exit "$STATUS"
