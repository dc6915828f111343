#!/bin/sh
# drain.sh -- the aggregator's drain rate: hits folded into aggregates and
# deleted per second from a pre-filled stream, next to redis-benchmark's
# pipelined XADD rate measured in the same run on the same private redis.
#
# Each round: FLUSHALL, pre-fill fs:{bench.example}:hits with HITS hits
# packed as the collector packs them (bench/gen_hits.c: 50 pages, 5,000
# visitors a day, referrers, UTM, geo, UA fields) through redis-cli --pipe, then time `fairstat-aggregator run --once` until the
# stream is empty. Redis is pinned to SERVER_CPU, the aggregator and
# redis-benchmark to LOAD_CPU (see bench/README.md, "Method"). Reports the median with
# min and max over ROUNDS, Redis CPU per hit, and the ratio to XADD.
#
# Knobs: DRAIN_HITS=200000 DRAIN_ROUNDS=5 DRAIN_BATCH=50000 (aggregator.batch's default) SERVER_CPU=0 LOAD_CPU=1
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AGG=$ROOT/bin/fairstat-aggregator
HITS=${DRAIN_HITS:-200000}
ROUNDS=${DRAIN_ROUNDS:-5}
BATCH=${DRAIN_BATCH:-50000}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

die() { echo "drain: $*" >&2; exit 1; }
for t in redis-server redis-cli redis-benchmark node awk cc; do
    command -v "$t" >/dev/null 2>&1 || die "missing tool '$t'"
done
[ -x "$AGG" ] || die "build first: make bin/fairstat-aggregator"
. "$ROOT/bench/lib.sh"
bench_tmp drain
bench_redis

cat > "$TMP/fairstat.conf" <<CONF
[redis]
url = redis://127.0.0.1:$PORT/0
[aggregator]
batch = $BATCH
block_ms = 100
purge_interval = 0
[site bench.example]
origins = https://bench.example
CONF

# RESP for HITS XADDs in the collector's format (bench/gen_hits.c packs them
# with common/rawhit.h): two days ending yesterday, 50 pages, 5,000 visitors a
# day, so day and hour keys change as in real traffic.
bench_gen_hits
gen() {
    "$TMP/gen_hits" bench.example "$HITS" 2 50 5000
}
gen > "$TMP/fill.resp"

median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f (min %.0f, max %.0f)", m, a[1], a[NR]}'; }
cpu() { R info cpu | awk -F: '/^used_cpu_(user|sys):/ {s+=$2} END {printf "%.6f", s}'; }
now_ns() { date +%s%N; }

: > "$TMP/drain" ; : > "$TMP/xadd" ; : > "$TMP/rcpu"
r=1
while [ $r -le "$ROUNDS" ]; do
    R flushall >/dev/null
    R script flush >/dev/null
    redis-cli -p "$PORT" --pipe < "$TMP/fill.resp" > "$TMP/pipe.out" 2>&1 || die "pre-fill failed: $(cat "$TMP/pipe.out")"
    before=$(R xlen 'fs:{bench.example}:hits')
    [ "$before" = "$HITS" ] || die "pre-fill stored $before of $HITS hits"
    c0=$(cpu); t0=$(now_ns)
    $PIN_L "$AGG" -c "$TMP/fairstat.conf" run --once 2> "$TMP/agg.log" || die "run --once failed: $(tail -n 3 "$TMP/agg.log")"
    t1=$(now_ns); c1=$(cpu)
    after=$(R xlen 'fs:{bench.example}:hits')
    [ "$after" = 0 ] || die "$after hits left in the stream after run --once"
    # Every hit counted exactly once: the daily pageviews add up to HITS.
    pv=0
    for d in 0 1 2 3; do
        n=$(R hget "fs:{bench.example}:d:$(date -u -d "-$d day" +%Y%m%d):totals" pageviews)
        pv=$((pv + ${n:-0}))
    done
    [ "$pv" = "$HITS" ] || die "counted $pv pageviews for $HITS hits"
    echo "$HITS $t0 $t1" | awk '{printf "%.0f\n", $1 / (($3 - $2) / 1e9)}' >> "$TMP/drain"
    echo "$c0 $c1 $HITS" | awk '{printf "%.2f\n", ($2 - $1) * 1e6 / $3}' >> "$TMP/rcpu"

    R flushall >/dev/null
    # An entry of the same shape as a packed hit: one field, ~70 bytes.
    $PIN_L redis-benchmark -p "$PORT" -P 32 -n 300000 -q XADD benchkey '*' \
        h 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef012345 > "$TMP/rb.out" 2>&1
    awk -F'[: ]+' '/requests per second/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) {print $i; exit}}' \
        "$TMP/rb.out" | tr -d '\r' >> "$TMP/xadd"
    echo "round $r: drained and counted $pv hits at $(tail -n 1 "$TMP/drain") hits/s;" \
         "redis-benchmark XADD $(tail -n 1 "$TMP/xadd") /s" >&2
    r=$((r + 1))
done

d=$(median < "$TMP/drain"); x=$(median < "$TMP/xadd"); c=$(sort -g "$TMP/rcpu" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
dm=$(sort -g "$TMP/drain" | awk '{a[NR]=$1} END {print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}')
xm=$(sort -g "$TMP/xadd" | awk '{a[NR]=$1} END {print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}')
echo "aggregator drain, $HITS hits x $ROUNDS rounds, batch $BATCH (folded + deleted, one MULTI/EXEC per batch):"
echo "  drain:                       $d hits/s"
echo "  redis CPU per drained hit:   $c us"
echo "  redis-benchmark -P 32 XADD:  $x /s (one 70-byte field, the shape of a packed hit)"
echo "  drain / XADD:                $(echo "$dm $xm" | awk '{printf "%.2f", $1 / $2}')"
