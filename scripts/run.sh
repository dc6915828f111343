#!/bin/sh
# run.sh -- `make run`: a private Redis, the collector on 127.0.0.1:8080 and the
# aggregator, all in the foreground; Ctrl-C stops everything. Data, the
# generated consent secret and the logs live under var/.
set -eu
cd "$(dirname "$0")/.."
mkdir -p var/redis var/spool
REDIS_PORT=${REDIS_PORT:-6390}
LISTEN=${LISTEN:-127.0.0.1:8080}

# A random consent secret, made once and kept.
if [ ! -s var/secret ]; then
    umask 077
    head -c 48 /dev/urandom | base64 | tr -d '\n' > var/secret
    umask 022
    echo "run: generated var/secret (the consent cookie key)"
fi

GEO=""
for db in ../shared/data/geoip/GeoLite2-City-Test.mmdb; do [ -f "$db" ] && GEO="$db"; done

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$PWD/var/redis" \
    --appendonly yes --appendfsync everysec --save '' --daemonize no \
    --logfile "$PWD/var/redis.log" &
REDIS_PID=$!
PIDS="$REDIS_PID"
cleanup() {
    trap - INT TERM EXIT
    # shellcheck disable=SC2086
    kill $PIDS 2>/dev/null || true
    wait 2>/dev/null || true
    echo "run: stopped"
}
trap cleanup INT TERM EXIT
i=0
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "run: redis-server did not start (var/redis.log)"; exit 1; }
    sleep 0.1
done

set -- -c config/fairstat.conf \
    -o "redis.url=redis://127.0.0.1:$REDIS_PORT/0" \
    -o "collector.listen=$LISTEN" \
    -o "collector.spool_dir=var/spool" \
    -o "collector.static_dir=js-snippet/dist" \
    -o "consent.secret=file:var/secret" \
    -o "consent.secure=no" \
    -o "geoip.database=$GEO" \
    -o "site localhost.origins=http://$LISTEN, http://localhost:${LISTEN##*:}"

bin/fairstat-collector "$@" &
PIDS="$PIDS $!"
if [ -x bin/fairstat-aggregator ]; then
    bin/fairstat-aggregator "$@" -o aggregator.purge_interval=10m run &
    PIDS="$PIDS $!"
fi
echo "run: redis on 127.0.0.1:$REDIS_PORT, collector on http://$LISTEN, demo at http://$LISTEN/demo/"
echo "run: report with: bin/fairstat-aggregator -c config/fairstat.conf -o redis.url=redis://127.0.0.1:$REDIS_PORT/0 report --site localhost"
echo "run: Ctrl-C stops everything"
wait
