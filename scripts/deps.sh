#!/bin/sh
# deps.sh -- installs what Fairstat needs and the machine lacks, and nothing else.
#
#   sh scripts/deps.sh run     build and run: compiler, libraries, redis-server, node
#                              + npm, curl, and the npm "dependencies" (esbuild for the
#                              snippet, the demo's GeoIP database)       (make deps, make run)
#   sh scripts/deps.sh test    run + cmocka, Chromium, clang with its libFuzzer runtime (the
#                              fuzz corpora replay) and the npm "devDependencies"
#                              (playwright-core, the UA and crawler data) (make deps-test, make test)
#   sh scripts/deps.sh bench   run + wrk, nginx-light, iproute2            (make bench)
#
# Debian packages via apt-get (update first, once); npm packages via `npm ci` from the
# committed package-lock.json, only when an installed one is missing or at another version.
set -eu
cd "$(dirname "$0")/.."
part=${1:-run}
case "$part" in run|test|bench) ;; *) echo "usage: sh scripts/deps.sh [run|test|bench]" >&2; exit 2 ;; esac

need=""
want() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' || need="$need $1"; }

command -v cc >/dev/null 2>&1 || want gcc
command -v make >/dev/null 2>&1 || want make
command -v pkg-config >/dev/null 2>&1 || want pkg-config
for p in libc6-dev libevent-dev libhiredis-dev libmaxminddb-dev libinih-dev libjansson-dev \
         libssl-dev libpcre2-dev libyajl-dev redis-server; do
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
# The README's demo requests (and the bench's probes) are curl commands.
command -v curl >/dev/null 2>&1 || want curl
case "$part" in
test)
    want libcmocka-dev
    [ -x /usr/bin/chromium ] || want chromium
    # libFuzzer (tests/fuzz): Debian 12's clang is 14; its fuzzer runtime is a package apart.
    command -v clang >/dev/null 2>&1 || want clang
    want libclang-rt-14-dev
    ;;
bench)
    command -v wrk >/dev/null 2>&1 || want wrk
    command -v nginx >/dev/null 2>&1 || want nginx-light
    command -v ss >/dev/null 2>&1 || want iproute2
    ;;
esac

if [ -n "$need" ]; then
    echo "deps: installing:$need"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $need
fi

# npm packages, pinned in package-lock.json; npm-check.mjs says whether to run npm ci,
# and with which option.
if ! omit=$(node scripts/npm-check.mjs "$part"); then
    # shellcheck disable=SC2086 # $omit is empty or one option
    npm ci $omit --no-audit --no-fund --loglevel=error
fi
