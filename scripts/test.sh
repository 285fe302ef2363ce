#!/usr/bin/env bash
# The test command. On a fresh Debian/Ubuntu machine:
#
#     bash scripts/test.sh [pytest arguments...]
#
# 1. installs ProFTPD with mod_tls, lftp and Apache (apt-get, with sudo when not root) unless
#    they are already there; under CI=true it always makes sure they are installed;
# 2. installs this package with its test extras (into .venv when the system Python is
#    "externally managed", as on Debian 12 / Ubuntu 24.04);
# 3. runs ruff check, ruff format --check, mypy and pytest. All of them run; the exit code
#    is the first failing step's.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export DEBIAN_FRONTEND=noninteractive
in_ci=false
if [ "${CI:-}" = "true" ]; then
    in_ci=true
fi

say() { printf '\n==> %s\n' "$*" >&2; }

# --- system packages: ProFTPD (+ mod_tls) and lftp ---------------------------------------

proftpd_bin() {
    command -v proftpd 2>/dev/null && return 0
    local candidate
    for candidate in /usr/sbin/proftpd /usr/local/sbin/proftpd; do
        if [ -x "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

have_servers() {
    local bin modules moddir
    bin=$(proftpd_bin) || return 1
    command -v lftp >/dev/null 2>&1 || return 1
    [ -x /usr/sbin/apache2 ] || command -v apache2 >/dev/null 2>&1 || return 1
    # Capture first: with pipefail, `proftpd -l | grep -q` can fail on SIGPIPE.
    modules=$("$bin" -l 2>/dev/null || true)
    case "$modules" in *mod_tls.c*) return 0 ;; esac
    moddir=$("$bin" -V 2>/dev/null | sed -n 's/.*Shared Module Directory: *//p' || true)
    [ -f "${moddir:-/usr/lib/proftpd}/mod_tls.so" ]
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "need root (or sudo) for: $*" >&2
        return 1
    fi
}

install_servers() {
    local packages=(proftpd-core proftpd-mod-crypto lftp apache2)
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # Before Debian 12 / Ubuntu 23.04 mod_tls was part of proftpd-core itself.
    if ! apt-cache show proftpd-mod-crypto >/dev/null 2>&1; then
        packages=(proftpd-core lftp apache2)
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${packages[@]}"
}

stop_system_proftpd() {
    # The package may start a system-wide daemon on port 21. The tests start their own
    # servers on free ports and never use it: stop it (only when we just installed it).
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        as_root systemctl disable --now proftpd.service >/dev/null 2>&1 || true
        as_root systemctl disable --now apache2.service >/dev/null 2>&1 || true
    fi
    if [ -f /run/proftpd.pid ]; then
        as_root kill "$(cat /run/proftpd.pid)" >/dev/null 2>&1 || true
    fi
}

had_servers=true
have_servers || had_servers=false
if [ "$in_ci" = true ] || [ "$had_servers" = false ]; then
    if command -v apt-get >/dev/null 2>&1; then
        say "installing ProFTPD (mod_tls), lftp and Apache"
        if install_servers; then
            if [ "$had_servers" = false ]; then
                stop_system_proftpd
            fi
        elif [ "$in_ci" = true ]; then
            echo "could not install ProFTPD, lftp and Apache" >&2
            exit 1
        else
            echo "warning: could not install ProFTPD; real-server tests will be skipped" >&2
        fi
    elif [ "$in_ci" = true ]; then
        echo "CI needs ProFTPD with mod_tls and lftp, and apt-get is not available" >&2
        exit 1
    else
        echo "warning: no apt-get: install ProFTPD with mod_tls and lftp yourself;" \
            "real-server tests will be skipped" >&2
    fi
fi
if [ "$in_ci" = true ] && ! have_servers; then
    echo "ProFTPD with mod_tls, lftp or Apache are still missing" >&2
    exit 1
fi

# The compatibility matrix also runs vsftpd and pure-ftpd, unpacked beside ProFTPD
# (their packages conflict with proftpd-core's).
if command -v apt-get >/dev/null 2>&1; then
    say "unpacking vsftpd and pure-ftpd for the compatibility tests"
    if ! as_root bash scripts/install-servers.sh; then
        if [ "$in_ci" = true ]; then
            echo "could not unpack vsftpd and pure-ftpd" >&2
            exit 1
        fi
        echo "warning: vsftpd/pure-ftpd unavailable; their compatibility tests will be skipped" >&2
    fi
fi

# --- Python environment ------------------------------------------------------------------

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "asyncmirror needs Python >= 3.11; $PY is $("$PY" --version 2>&1)" >&2
    exit 1
fi

externally_managed() {
    "$PY" - <<'EOF'
import os, sys, sysconfig
in_venv = sys.prefix != sys.base_prefix
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
sys.exit(0 if not in_venv and os.path.exists(marker) else 1)
EOF
}

if externally_managed; then
    if [ ! -x .venv/bin/python ]; then
        say "creating .venv (the system Python is externally managed)"
        if ! "$PY" -m venv .venv; then
            rm -rf .venv
            if command -v apt-get >/dev/null 2>&1; then
                pyver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
                as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                    "python${pyver}-venv" || as_root env DEBIAN_FRONTEND=noninteractive \
                    apt-get install -y -qq python3-venv
            fi
            "$PY" -m venv .venv
        fi
    fi
    PY=.venv/bin/python
fi

say "installing asyncmirror with its test extras"
"$PY" -m pip install -q --disable-pip-version-check -e ".[test]"

# --- checks: all run, the first failure's exit code wins ---------------------------------

status=0
step() {
    say "$*"
    local rc=0
    "$@" || rc=$?
    if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then
        status=$rc
    fi
}

step "$PY" -m ruff check .
step "$PY" -m ruff format --check .
step "$PY" -m mypy
step "$PY" -m pytest "$@"

if [ "$status" -ne 0 ]; then
    say "FAILED (exit code $status)"
fi
exit "$status"
