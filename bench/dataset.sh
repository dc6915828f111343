#!/bin/sh
# dataset.sh -- aggregate memory and report times on a large data set (bench/README.md,
# "The large data set"): N raw hits of one site over the last D full UTC days, written
# straight into a private Redis with backdated stream ids by bench/gen_hits.c (built
# against libcommon, so the entries are in the format common/ defines), folded by
# `fairstat-aggregator run --once`; then Redis's memory and key count for the
# aggregates, the time of `report --format json` over 1, 7 and 30 days, and of
# the Stats API (`serve`) over the 30 days: the top 10 pages, and a dashboard's
# first paint data (bench/api.mjs).
#
# Knobs: BENCH_DATASET_HITS=10000000 BENCH_DATASET_DAYS=30 BENCH_DATASET_PATHS=50000
#        BENCH_DATASET_VISITORS=20000 (per day) BENCH_DATASET_REPORTS=5 (runs per span)
#        SERVER_CPU=0 (redis) LOAD_CPU=1 (generator, aggregator, reports)
# At today's fold (~11-20k hits/s here) the default 10M hits take 10-15 minutes.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AGG=$ROOT/bin/fairstat-aggregator
HITS=${BENCH_DATASET_HITS:-10000000}
DAYS=${BENCH_DATASET_DAYS:-30}
PATHS=${BENCH_DATASET_PATHS:-50000}
VPD=${BENCH_DATASET_VISITORS:-20000}
REPORTS=${BENCH_DATASET_REPORTS:-5}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
SITE=bench.example

die() { echo "dataset: $*" >&2; exit 1; }
for t in redis-server redis-cli cc node awk; do
    command -v "$t" >/dev/null 2>&1 || die "missing tool '$t'"
done
[ -x "$AGG" ] || die "build first: make"
. "$ROOT/bench/lib.sh"
bench_tmp dataset
bench_gen_hits
bench_redis
mem() { R INFO memory | tr -d '\r' | awk -F: '/^used_memory:/ { print $2 }'; }
now_ns() { date +%s%N; }
median() { sort -g | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f (min %.3f, max %.3f)", m, a[1], a[NR] }'; }

cat > "$TMP/fairstat.conf" <<CONF
[redis]
url = redis://127.0.0.1:$PORT/0
[aggregator]
batch = 500
block_ms = 100
purge_interval = 0
[site $SITE]
origins = https://$SITE
CONF

m0=$(mem)
t0=$(now_ns)
"$TMP/gen_hits" "$SITE" "$HITS" "$DAYS" "$PATHS" "$VPD" | redis-cli -p "$PORT" --pipe > "$TMP/pipe.out" 2>&1 \
    || die "loading failed: $(tail -3 "$TMP/pipe.out")"
t1=$(now_ns)
n=$(R XLEN "fs:{$SITE}:hits")
[ "$n" = "$HITS" ] || die "loaded $n of $HITS hits: $(tail -3 "$TMP/pipe.out")"
mraw=$(mem)
echo "dataset: $HITS hits loaded in $(echo "$t0 $t1" | awk '{ printf "%.1f", ($2 - $1) / 1e9 }') s; folding (run --once)..." >&2

t0=$(now_ns)
$PIN_L "$AGG" -c "$TMP/fairstat.conf" run --once 2> "$TMP/agg.log" || die "run --once failed: $(tail -3 "$TMP/agg.log")"
t1=$(now_ns)
left=$(R XLEN "fs:{$SITE}:hits")
[ "$left" = 0 ] || die "$left hits left in the stream after run --once"
fold_s=$(echo "$t0 $t1" | awk '{ printf "%.1f", ($2 - $1) / 1e9 }')
# the emptied stream and its cursor are not aggregates
R DEL "fs:{$SITE}:hits" "fs:{$SITE}:cursor" > /dev/null
R MEMORY PURGE > /dev/null 2>&1
mall=$(mem)
# Nor is visit state (fs:{S}:v:YYYYMMDD, one hash per UTC day): it expires
# FOLD_IDLE_MS after the fold here; in real time only today's and yesterday's
# exist. Measured apart, then dropped, so the aggregates figure is the data kept.
R --scan --pattern "fs:{$SITE}:v:*" > "$TMP/vkeys"
vdays=$(wc -l < "$TMP/vkeys" | tr -d ' ')
[ "$vdays" -gt 0 ] && xargs -n 100 redis-cli -p "$PORT" DEL < "$TMP/vkeys" > /dev/null
R MEMORY PURGE > /dev/null 2>&1
m1=$(mem)
keys=$(R DBSIZE | tr -d '\r')

# Report times, and exactly once: the whole span's pageviews are the hits loaded.
yesterday=$(date -u -d '-1 day' +%F)
pv=$("$AGG" -c "$TMP/fairstat.conf" report --site "$SITE" --from "$(date -u -d "-$DAYS day" +%F)" --to "$yesterday" --format json \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).totals.pageviews))')
for span in 1 7 30; do
    [ "$span" -le "$DAYS" ] || continue
    from=$(date -u -d "-$span day" +%F)
    : > "$TMP/rep.$span"
    k=0
    while [ $k -lt "$REPORTS" ]; do
        a=$(now_ns)
        $PIN_L "$AGG" -c "$TMP/fairstat.conf" report --site "$SITE" --from "$from" --to "$yesterday" --format json > "$TMP/report.$span.json" \
            || die "report over $span days failed"
        b=$(now_ns)
        echo "$a $b" | awk '{ printf "%.4f\n", ($2 - $1) / 1e9 }' >> "$TMP/rep.$span"
        k=$((k + 1))
    done
done

# The Stats API over the longest span: serve on a free port, one token.
API_PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
TOKEN=$("$AGG" -c "$TMP/fairstat.conf" token | head -1)
$PIN_L "$AGG" -c "$TMP/fairstat.conf" -o "serve.listen=127.0.0.1:$API_PORT" \
    -o "serve.tokens=sha256:$(printf %s "$TOKEN" | sha256sum | cut -c1-64)" serve 2> "$TMP/serve.log" &
SERVE_PID=$!
i=0
until curl -fs "http://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || die "serve did not start: $(tail -3 "$TMP/serve.log")"; sleep 0.05
done
api_span=30; [ "$api_span" -le "$DAYS" ] || api_span=$DAYS
node "$ROOT/bench/api.mjs" "http://127.0.0.1:$API_PORT" "$TOKEN" "$SITE" "$(date -u -d "-$api_span day" +%F)" "$yesterday" "$REPORTS" \
    > "$TMP/api.out" || die "Stats API timing failed"
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null

echo "large data set: $HITS raw hits over $DAYS days ($PATHS paths Zipf-like, $VPD visitors a day), one site, written by bench/gen_hits.c"
echo "  fold (run --once):                $fold_s s, $(echo "$HITS $fold_s" | awk '{ printf "%.0f", $1 / $2 }') hits/s"
echo "  raw hits in the stream:           $(echo "$mraw $m0 $HITS" | awk '{ printf "%.1f", ($1 - $2) / $3 }') bytes per hit (used_memory delta / hits)"
echo "  aggregates:                       $(echo "$m1 $m0" | awk '{ printf "%.1f MiB (%.1f MB)", ($1 - $2) / 1048576, ($1 - $2) / 1e6 }') (used_memory delta), $keys keys, $(echo "$m1 $m0 $HITS" | awk '{ printf "%.1f", ($1 - $2) / $3 }') bytes per hit folded"
echo "  visit state (expiring):           $(echo "$mall $m1 $vdays" | awk '{ printf "%.1f MiB for %d days, %.2f MiB a day", ($1 - $2) / 1048576, $3, $3 ? ($1 - $2) / 1048576 / $3 : 0 }')"
for span in 1 7 30; do
    [ -s "$TMP/rep.$span" ] || continue
    printf '  report --format json, %2d day(s):  %s s, median of %s\n' "$span" "$(median < "$TMP/rep.$span")" "$REPORTS"
done
for what in top10 firstpaint; do
    label="Stats API, $api_span days, top 10 pages:"
    [ "$what" = firstpaint ] && label="Stats API, $api_span days, first paint:"
    printf '  %-34s%s s, median of %s\n' "$label" \
        "$(awk -v w="$what" '$1 == w { for (i = 2; i <= NF; i++) print $i }' "$TMP/api.out" | median)" "$REPORTS"
done
if [ "$pv" = "$HITS" ]; then
    echo "  exactly once: the $DAYS-day report counts $pv pageviews for $HITS hits"
else
    echo "!!! the $DAYS-day report counts $pv pageviews for $HITS hits"
    exit 1
fi
