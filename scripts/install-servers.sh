#!/usr/bin/env bash
# Unpack the extra FTPS servers of the compatibility matrix (tests/integration/test_compat.py)
# beside the system's ProFTPD:
#
#     bash scripts/install-servers.sh            # idempotent: does nothing when all is there
#     FORCE=1 bash scripts/install-servers.sh    # unpack again
#
# * vsftpd 3.0.3 and pure-ftpd 1.0.50 (Debian's). Their packages conflict with proftpd-core,
#   so they are fetched with `apt-get download` and unpacked with `dpkg -x` into
#   .servers/<name>/ in the repository (ASYNCMIRROR_SERVERS_DIR overrides the place).
#   Nothing there is tracked by git: the directory carries its own .gitignore.
# * Their runtime libraries, which conflict with nothing, are installed with apt-get:
#   libwrap0 (vsftpd), libsodium23 (pure-ftpd), libcap2, libpam-modules (pam_unix for the
#   vsftpd test user), passwd (useradd/chpasswd).
#
# The test fixtures (tests/servers/vsftpd.py, tests/servers/pureftpd.py) look there first,
# then on PATH. They create the vsftpd test user and its PAM service file themselves.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export DEBIAN_FRONTEND=noninteractive
DEST=${ASYNCMIRROR_SERVERS_DIR:-$PWD/.servers}
RUNTIME_PACKAGES=(libwrap0 libsodium23 libcap2 libpam-modules passwd)
# name in .servers/ : Debian package : file that proves it is unpacked
SERVERS=(
    "vsftpd:vsftpd:usr/sbin/vsftpd"
    "pure-ftpd:pure-ftpd:usr/sbin/pure-ftpd"
)

say() { printf '==> %s\n' "$*" >&2; }

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

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then
    echo "install-servers.sh needs apt-get and dpkg (Debian/Ubuntu)" >&2
    exit 1
fi

runtime_missing() {
    local pkg
    for pkg in "${RUNTIME_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            return 0
    done
    return 1
}

servers_missing() {
    local entry name check
    for entry in "${SERVERS[@]}"; do
        IFS=: read -r name _ check <<<"$entry"
        [ -x "$DEST/$name/$check" ] || return 0
    done
    return 1
}

if [ -z "${FORCE:-}" ] && ! runtime_missing && ! servers_missing; then
    say "extra FTPS servers already unpacked in $DEST"
    exit 0
fi

updated=false
apt_update() {
    if [ "$updated" = false ]; then
        say "apt-get update"
        as_root apt-get update -qq
        updated=true
    fi
}

if runtime_missing; then
    apt_update
    say "installing runtime libraries: ${RUNTIME_PACKAGES[*]}"
    as_root apt-get install -y -qq --no-install-recommends "${RUNTIME_PACKAGES[@]}" >/dev/null
fi

mkdir -p "$DEST"
printf '*\n' >"$DEST/.gitignore"
download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
chmod 755 "$download"

for entry in "${SERVERS[@]}"; do
    IFS=: read -r name package check <<<"$entry"
    if [ -z "${FORCE:-}" ] && [ -x "$DEST/$name/$check" ]; then
        continue
    fi
    apt_update
    say "unpacking $package into $DEST/$name"
    # -o APT::Sandbox::User=root: the temporary directory is not readable by _apt.
    (cd "$download" && apt-get -qq -o APT::Sandbox::User=root download "$package")
    rm -rf "${DEST:?}/$name"
    mkdir -p "$DEST/$name"
    dpkg -x "$download/${package}"_*.deb "$DEST/$name"
    dpkg-deb -f "$download/${package}"_*.deb Version >"$DEST/$name/VERSION"
    rm -f "$download"/*.deb
    [ -x "$DEST/$name/$check" ] || {
        echo "$package did not contain $check" >&2
        exit 1
    }
done

say "extra FTPS servers ready in $DEST: $(cd "$DEST" && for d in */; do printf '%s%s ' "$d" "$(cat "$d/VERSION" 2>/dev/null)"; done)"
