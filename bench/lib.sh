# bench/lib.sh -- what bench/drain.sh and bench/dataset.sh share: core pinning,
# a private temp dir removed at exit, a private redis-server on a free port, and
# bench/gen_hits.c built against libcommon. Sourced after ROOT, SERVER_CPU,
# LOAD_CPU and die() are set.

# PIN_S / PIN_L: taskset prefixes for the server's and the load's core.
PIN_S="" PIN_L=""
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
    PIN_S="taskset -c $SERVER_CPU" PIN_L="taskset -c $LOAD_CPU"
fi

# bench_tmp NAME: TMP, removed at exit with the Redis started in it.
REDIS_PID=""
bench_cleanup() {
    [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
    rm -rf "$TMP"
}
bench_tmp() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/fairstat-$1.XXXXXX") || die "mktemp failed"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM HUP
}

# bench_redis: a redis-server on a free port in TMP, on the server's core;
# PORT, REDIS_PID, and R to talk to it.
bench_redis() {
    PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
    $PIN_S redis-server --port "$PORT" --bind 127.0.0.1 --dir "$TMP" --save '' --appendonly no \
        --logfile "$TMP/redis.log" &
    REDIS_PID=$!
    i=0
    until redis-cli -p "$PORT" ping >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 100 ] || die "redis-server did not start"; sleep 0.05
    done
}
R() { redis-cli -p "$PORT" "$@"; }

# bench_gen_hits: TMP/gen_hits, which packs hits as the collector does.
bench_gen_hits() {
    LIBCOMMON=$ROOT/build/default/libcommon.a
    [ -f "$LIBCOMMON" ] || die "build first: make ($LIBCOMMON is missing)"
    cc -O2 -std=c11 -D_GNU_SOURCE -I"$ROOT/common" "$ROOT/bench/gen_hits.c" "$LIBCOMMON" -lm \
        -o "$TMP/gen_hits" 2> "$TMP/cc.log" || die "gen_hits.c does not build: $(head -5 "$TMP/cc.log")"
}
