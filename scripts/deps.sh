#!/bin/sh
# deps.sh -- installs what Fairstat needs and the machine lacks, and nothing else.
# Debian packages via apt-get (update first, once); npm packages via `npm ci`
# from the committed package-lock.json. BENCH=1 adds the benchmark tools.
set -eu
cd "$(dirname "$0")/.."

need=""
want() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' || need="$need $1"; }

command -v cc >/dev/null 2>&1 || want gcc
command -v make >/dev/null 2>&1 || want make
command -v pkg-config >/dev/null 2>&1 || want pkg-config
for p in libc6-dev libevent-dev libhiredis-dev libmaxminddb-dev libinih-dev libjansson-dev \
         libssl-dev libhttp-parser-dev libpcre2-dev libyajl-dev libcmocka-dev redis-server; do
    want "$p"
done
# A node of 18 or newer from anywhere will do; otherwise Debian's.
node_ok=0
if command -v node >/dev/null 2>&1; then
    major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    [ "$major" -ge 18 ] && node_ok=1
fi
[ $node_ok = 1 ] || want nodejs
command -v npm >/dev/null 2>&1 || want npm
[ -x /usr/bin/chromium ] || want chromium
if [ "${BENCH:-}" = 1 ]; then
    command -v wrk >/dev/null 2>&1 || want wrk
    command -v nginx >/dev/null 2>&1 || want nginx-light
fi

if [ -n "$need" ]; then
    echo "deps: installing:$need"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $need
fi

# npm packages, pinned in package-lock.json; reinstalled only when the lock changed.
if [ -f package-lock.json ]; then
    if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        npm ci --no-audit --no-fund --loglevel=error
    fi
fi
