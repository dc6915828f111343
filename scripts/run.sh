#!/bin/sh
# run.sh -- `make run` and `make stop`.
#
#   sh scripts/run.sh        a private Redis, the collector and the aggregator, all in
#                            the foreground; Ctrl-C stops everything
#   sh scripts/run.sh stop   stops the one started from another terminal
#
# The configuration both programs use is written to var/fairstat.conf at each start,
# so that the report command printed at the end works as shown. Redis's data, the
# generated consent secret and the pid file (var/run.pid) live in var/ too.
# Environment: LISTEN (127.0.0.1:8080), REDIS_PORT (6390).
set -eu
cd "$(dirname "$0")/.."
LISTEN=${LISTEN:-127.0.0.1:8080}
REDIS_PORT=${REDIS_PORT:-6390}
CONF=var/fairstat.conf
PIDFILE=var/run.pid
GEO_DB=node_modules/@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb
REPORT="bin/fairstat-aggregator -c $CONF report --site localhost"

# The pid in var/run.pid is a run.sh still running (not a pid reused since).
running() {
    [ -s "$PIDFILE" ] && pid=$(cat "$PIDFILE") && kill -0 "$pid" 2>/dev/null &&
        grep -q scripts/run.sh "/proc/$pid/cmdline" 2>/dev/null
}

if [ "${1:-}" = stop ]; then
    if ! running; then
        rm -f "$PIDFILE"
        echo "run: nothing to stop"
        exit 0
    fi
    kill "$pid"     # its trap stops Redis, the collector and the aggregator
    i=0
    while kill -0 "$pid" 2>/dev/null; do
        i=$((i + 1)); [ $i -lt 100 ] || { echo "run: pid $pid still running after 10 s" >&2; exit 1; }
        sleep 0.1
    done
    echo "run: stopped"
    exit 0
fi

if running; then
    echo "run: already running (pid $pid); make stop stops it" >&2
    exit 1
fi
mkdir -p var/redis

# A random consent secret, made once and kept.
if [ ! -s var/secret ]; then
    umask 077
    head -c 48 /dev/urandom | base64 | tr -d '\n' > var/secret
    umask 022
    echo "run: generated var/secret (the consent cookie key)"
fi

geo=""
if [ -f "$GEO_DB" ]; then
    geo=$PWD/$GEO_DB
else
    echo "run: $GEO_DB is missing (make deps installs it): no countries"
fi
cat > "$CONF" <<EOF
; fairstat.conf -- written by make run (scripts/run.sh) at each start: edits here are
; lost at the next one. Keys not set here have the defaults config/fairstat.conf
; documents. The report of the demo site:
;     $REPORT

[collector]
listen = $LISTEN
; Peers on this machine may set X-Forwarded-For, so that a request can stand in for
; a visitor from a public address (see the README).
trusted_proxies = 127.0.0.1/32, ::1/128
; The snippet (/fs.js) and the demo site (/demo/).
static_dir = $PWD/js-snippet/dist

[redis]
url = redis://127.0.0.1:$REDIS_PORT/0

[consent]
secret = file:$PWD/var/secret
; Plain http on this machine: a Secure cookie would never be sent back.
secure = no

[geoip]
; ip-location-db's country database, from npm (see the README, GeoIP data):
; countries only, no regions.
database = $geo
country_path = country_code
region_path =

[aggregator]
purge_interval = 10m

[site localhost]
; The demo pages say data-domain="localhost".
origins = http://$LISTEN, http://localhost:${LISTEN##*:}
EOF
bin/fairstat-collector -t -c "$CONF" >/dev/null

echo $$ > "$PIDFILE"
# An AOF cut short by a crash inside a MULTI/EXEC (every batch the fold
# applies is one) is repaired to before that MULTI by redis-check-aof --fix,
# not by Redis's own aof-load-truncated (docs/operations.md).
AOF_MANIFEST="$PWD/var/redis/appendonlydir/appendonly.aof.manifest"
if [ -f "$AOF_MANIFEST" ] && ! redis-check-aof "$AOF_MANIFEST" >/dev/null 2>&1; then
    echo "run: the AOF ends in a cut write; redis-check-aof --fix cuts it back to its last whole transaction" >&2
    echo y | redis-check-aof --fix "$AOF_MANIFEST" >&2
fi
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$PWD/var/redis" \
    --appendonly yes --appendfsync everysec --aof-load-truncated no --save '' --daemonize no \
    --logfile "$PWD/var/redis.log" &
REDIS=$!
PIDS=""
# The programs first, so that they do not see Redis go away.
cleanup() {
    trap - INT TERM EXIT
    # shellcheck disable=SC2086
    [ -z "$PIDS" ] || { kill $PIDS 2>/dev/null; wait $PIDS 2>/dev/null; } || true
    kill "$REDIS" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -f "$PIDFILE"
    echo "run: stopped"
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT
i=0
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "run: redis-server did not start (var/redis.log)"; exit 1; }
    sleep 0.1
done

bin/fairstat-collector -c "$CONF" &
COLLECTOR=$!
PIDS=$COLLECTOR
bin/fairstat-aggregator -c "$CONF" run &
PIDS="$PIDS $!"
i=0
until curl -fs -o /dev/null "http://$LISTEN/healthz"; do
    kill -0 "$COLLECTOR" 2>/dev/null || { echo "run: the collector did not start"; exit 1; }
    i=$((i + 1)); [ $i -lt 100 ] || { echo "run: the collector is not healthy after 10 s"; exit 1; }
    sleep 0.1
done
echo "run: redis on 127.0.0.1:$REDIS_PORT, collector on http://$LISTEN, demo at http://$LISTEN/demo/"
echo "run: report with: $REPORT"
echo "run: Ctrl-C here or make stop in another terminal stops everything"
wait "$COLLECTOR" || { echo "run: the collector exited with status $?"; exit 1; }
