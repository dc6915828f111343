#!/bin/sh
# bench/run.sh -- `make bench`: CPU per stored hit, fairstat-collector against nginx
# serving empty_gif with an access_log line, side by side in one run (bench/README.md
# says how, and why this way).
#
# Knobs (environment):
#   BENCH_ROUNDS=5        rounds; each round measures both servers, order alternating
#   BENCH_DURATION=5s     wrk -d per measured load
#   BENCH_CONNS=32        wrk -c
#   BENCH_TARGETS="collector nginx"   drop one to debug the other
#   BENCH_STRACE=1        one extra strace -c load per server: syscalls per hit (0 = skip)
#   BENCH_PERF=1          one extra perf-record load per server: CPU by object, top symbols
#   BENCH_LOADS="single realistic"   the loads (bench/README.md, "The loads"), each measured in full
#   BENCH_VISITORS=20000 BENCH_REQUESTS=100000   the realistic load's visitors and request table
#   BENCH_SITES=10000     the realistic load again with that many extra [site] sections (0 = skip)
#   BENCH_NOACK=1         the realistic load on the bench-only collector that answers 202
#                         without Redis (bench/build.mk), next to the collector and nginx (0 = skip)
#   BENCH_DRAIN_REALISTIC=1   the aggregator's drain on hits the realistic load stored (0 = skip)
#   BENCH_DRAIN=0         skip bench/drain.sh (the aggregator's drain rate; runs last if present)
#   BENCH_ERASE=0         skip bench/erase.mjs (GET/DELETE /consent cost by backlog)
#   BENCH_FLOOD=0         skip bench/flood.mjs (aggregates of one hostile site-day)
#   BENCH_DATASET=0       skip bench/dataset.sh (aggregate memory and report times; BENCH_DATASET_HITS)
#   BENCH_REDIS=tcp       how the collector reaches Redis: tcp (127.0.0.1) or unix (a unix
#                         socket, as where both run on one host; bench/README.md)
#   BENCH_KEEP=1          keep the temp dir (configs, logs, raw wrk output) for a post-mortem
#   SERVER_CPU=0 LOAD_CPU=1   cores for the servers and for wrk + redis
#   REDIS_CPU=$LOAD_CPU   Redis's core, to try it off the load generator's (BENCH.md puts
#                         it there; on the server's core it shares the collector's, in
#                         every phase: the figures are then not those of the README)
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

ROUNDS=${BENCH_ROUNDS:-5}
DURATION=${BENCH_DURATION:-5s}
CONNS=${BENCH_CONNS:-32}
TARGETS=${BENCH_TARGETS:-collector nginx}
LOADS=${BENCH_LOADS:-single realistic}
VISITORS=${BENCH_VISITORS:-20000}
REQUESTS=${BENCH_REQUESTS:-100000}
SITES=${BENCH_SITES:-10000}
DO_STRACE=${BENCH_STRACE:-1}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
SETTLE=1.5          # seconds after each load: nginx flush=1s lands, the last XADDs are acked
COLLECTOR=${COLLECTOR:-$ROOT/bin/fairstat-collector}
NOACK=${NOACK:-$ROOT/build/default/bench/collector-noack}
NGINX=${NGINX:-/usr/sbin/nginx}
GEOIP=$ROOT/tests/data/geoip/GeoIP2-City-Test.mmdb
OUT=$ROOT/var/bench-last.txt
UA='Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0'

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }

for t in wrk redis-server redis-cli redis-benchmark curl taskset awk ss node; do
    command -v "$t" >/dev/null 2>&1 || die "missing tool '$t' (sh scripts/deps.sh bench installs what the bench needs)"
done
[ -x "$NGINX" ] || die "missing $NGINX (apt-get install nginx-light)"
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
[ "$NCPU" -ge 2 ] || say "bench: WARNING: only $NCPU core(s); server and load generator share it"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fairstat-bench.XXXXXX") || die "mktemp failed"
chmod 755 "$TMP"    # nginx workers run as nobody when started by root
PIDS=""             # every process we started, killed in cleanup
REDIS_PID="" NGINX_PID="" COLL_PID="" COLL2_PID=""

alive() { st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null); [ -n "$st" ] && [ "$st" != Z ]; }
stop_all() {
    for p in $PIDS; do
        kill -0 "$p" 2>/dev/null || continue
        kill -CONT "$p" 2>/dev/null     # a collector paused by the many-sites phase
        if [ "$p" = "$NGINX_PID" ]; then kill -QUIT "$p" 2>/dev/null; else kill -TERM "$p" 2>/dev/null; fi
    done
    i=0
    while [ $i -lt 30 ]; do
        left=""
        for p in $PIDS; do alive "$p" && left="$left $p"; done
        [ -z "$left" ] && break
        sleep 0.1; i=$((i + 1))
    done
    for p in $PIDS; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
    for p in $PIDS; do wait "$p" 2>/dev/null; done
    PIDS=""
}
# shellcheck disable=SC2317 # called from the trap
cleanup() {
    trap - EXIT INT TERM HUP
    stop_all
    if [ "${BENCH_KEEP:-0}" = 1 ]; then say "bench: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'say "bench: interrupted"; exit 130' INT TERM HUP

# A free TCP port on 127.0.0.1 (random, checked against the listening sockets).
free_port() {
    n=0
    while [ $n -lt 200 ]; do
        p=$(awk -v s="$$$n" 'BEGIN { srand(s + systime()); print 20000 + int(rand() * 40000) }')
        if [ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]; then echo "$p"; return 0; fi
        n=$((n + 1))
    done
    return 1
}

# utime + stime of a process (all threads), in clock ticks
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo NA; }
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
redis_cpu() { rcli INFO cpu | tr -d '\r' | awk -F: '/^used_cpu_user:/ { u = $2 } /^used_cpu_sys:/ { s = $2 } END { printf "%.6f\n", u + s }'; }
xlen() { rcli XLEN 'fs:{example.com}:hits' | tr -d '\r'; }
# entries-added of the stream (Redis 7): counts every XADD even if the stream was trimmed
xadded() { rcli XINFO STREAM 'fs:{example.com}:hits' 2>/dev/null | tr -d '\r' | awk 'f { print; exit } /^entries-added$/ { f = 1 }'; }
# busy and total ticks of the server core and of the load core, from /proc/stat
core_stat() {
    awk -v a="cpu$SERVER_CPU" -v b="cpu$LOAD_CPU" '$1 == a || $1 == b {
            busy = $2 + $3 + $4 + $7 + $8 + $9; tot = busy + $5 + $6
            if ($1 == a) { ba = busy; ta = tot } else { bb = busy; tb = tot } }
        END { print ba, ta, bb, tb }' /proc/stat
}
log_lines() { if [ -f "$TMP/nginx/access.log" ]; then wc -l < "$TMP/nginx/access.log" | tr -d ' '; else echo 0; fi; }

wait_port() {   # pid port seconds
    n=0
    while [ $n -lt $(($3 * 10)) ]; do
        kill -0 "$1" 2>/dev/null || return 1
        [ -n "$(ss -Htln "( sport = :$2 )" 2>/dev/null)" ] && return 0
        sleep 0.1; n=$((n + 1))
    done
    return 1
}

# ---------------------------------------------------------------- redis (core LOAD_CPU)
REDIS_PORT=$(free_port) || die "no free port"
mkdir -p "$TMP/redis"
REDIS_VIA=${BENCH_REDIS:-tcp}
case $REDIS_VIA in
    tcp) REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0 ;;
    unix) REDIS_URL=unix://$TMP/redis/redis.sock ;;
    *) die "BENCH_REDIS must be tcp or unix, not '$REDIS_VIA'" ;;
esac
taskset -c "${REDIS_CPU:-$LOAD_CPU}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TMP/redis" \
    --unixsocket "$TMP/redis/redis.sock" --unixsocketperm 700 \
    --save "" --appendonly no --daemonize no --logfile "$TMP/redis/redis.log" &
REDIS_PID=$!; PIDS="$PIDS $REDIS_PID"
wait_port "$REDIS_PID" "$REDIS_PORT" 10 || { cat "$TMP/redis/redis.log" >&2; die "redis-server did not start"; }
[ "$(rcli PING | tr -d '\r')" = PONG ] || die "redis-server does not answer PING"

# ---------------------------------------------------------------- nginx (core SERVER_CPU)
NGINX_OK=0
case " $TARGETS " in *" nginx "*)
    NGINX_PORT=$(free_port) || die "no free port"
    N=$TMP/nginx; mkdir -p "$N/tmp" "$N/logs"
    # The reference configuration (bench/README.md, Method); pid, error_log and temp
    # paths only moved to $N.
    cat > "$N/nginx.conf" <<EOF
worker_processes 1;
pid $N/nginx.pid;
error_log $N/error.log;
events { worker_connections 4096; }
http {
  client_body_temp_path $N/tmp/body;
  proxy_temp_path $N/tmp/proxy;
  log_format hit '\$remote_addr [\$time_local] "\$request" "\$http_referer" "\$http_user_agent" "\$http_cookie"';
  access_log off;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location /p.gif { empty_gif; access_log $N/access.log hit buffer=256k flush=1s; }
  }
}
EOF
    taskset -c "$SERVER_CPU" "$NGINX" -p "$N/" -e "$N/error.log" -c "$N/nginx.conf" -g 'daemon off;' \
        > "$N/stdout.log" 2>&1 &
    NGINX_PID=$!; PIDS="$PIDS $NGINX_PID"
    if wait_port "$NGINX_PID" "$NGINX_PORT" 10; then
        NGINX_WORKER=""
        n=0
        while [ -z "$NGINX_WORKER" ] && [ $n -lt 50 ]; do
            NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1); [ -n "$NGINX_WORKER" ] || sleep 0.1; n=$((n + 1))
        done
        code=$(curl -s -o "$N/probe.gif" -w '%{http_code}' "http://127.0.0.1:$NGINX_PORT/p.gif?d=example.com")
        if [ -n "$NGINX_WORKER" ] && [ "$code" = 200 ]; then NGINX_OK=1
        else say "bench: nginx probe failed (worker '$NGINX_WORKER', GET /p.gif -> $code)"; fi
    else
        say "bench: nginx did not start:"; cat "$N/stdout.log" "$N/error.log" >&2 2>/dev/null
    fi
    ;;
esac

# ---------------------------------------------------------------- collector (core SERVER_CPU)
COLL_OK=0
COLL_WHY=""
COOKIE=""
case " $TARGETS " in *" collector "*)
    C=$TMP/collector; mkdir -p "$C"
    if [ ! -x "$COLLECTOR" ]; then
        COLL_WHY="$COLLECTOR does not exist (did 'make' succeed?)"
    else
        COLL_PORT=$(free_port) || die "no free port"
        SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n' | cut -c1-48)
        cat > "$C/fairstat.conf" <<EOF
# generated by bench/run.sh
[collector]
listen = 127.0.0.1:$COLL_PORT
threads = 1
; the realistic load's client addresses come through X-Forwarded-For
trusted_proxies = 127.0.0.1/32

[redis]
url = $REDIS_URL

[consent]
secret = $SECRET
secure = no

[geoip]
database = $GEOIP

[aggregator]
; for the drain on the realistic load's hits (run --once): the default batch
; (50000), as a user runs it
block_ms = 100
purge_interval = 0

[site example.com]
origins = https://example.com
EOF
        taskset -c "$SERVER_CPU" "$COLLECTOR" -c "$C/fairstat.conf" > "$C/collector.log" 2>&1 &
        COLL_PID=$!; PIDS="$PIDS $COLL_PID"
        if ! wait_port "$COLL_PID" "$COLL_PORT" 10; then
            if kill -0 "$COLL_PID" 2>/dev/null; then COLL_WHY="collector not listening on 127.0.0.1:$COLL_PORT after 10 s"
            else wait "$COLL_PID"; COLL_WHY="collector exited with status $? at start-up"; fi
        else
            curl -s -o "$C/consent.body" -D "$C/consent.hdr" -X POST "http://127.0.0.1:$COLL_PORT/consent" \
                -H 'content-type: text/plain' -H "User-Agent: $UA" -H 'Origin: https://example.com' \
                --data '{"domain":"example.com","analytics":true}'
            COOKIE=$(tr -d '\r' < "$C/consent.hdr" | sed -n 's/^[Ss]et-[Cc]ookie: *\(fs_consent=[^;]*\).*/\1/p' | head -1)
            if [ -z "$COOKIE" ]; then
                COLL_WHY="POST /consent gave no fs_consent cookie: $(head -1 "$C/consent.hdr" | tr -d '\r') $(head -c 200 "$C/consent.body")"
            else
                x0=$(xlen)
                curl -s -o "$C/probe.body" -D "$C/probe.hdr" -X POST "http://127.0.0.1:$COLL_PORT/api/event" \
                    -H 'content-type: text/plain' -H "Cookie: $COOKIE" -H "User-Agent: $UA" \
                    -H 'Origin: https://example.com' \
                    --data '{"d":"example.com","n":"pageview","u":"https://example.com/page/0?utm_source=news","r":"https://google.com/"}'
                x1=$(xlen)
                st=$(head -1 "$C/probe.hdr" | tr -d '\r' | awk '{ print $2 }')
                if [ "$st" = 202 ] && [ "$((x1 - x0))" = 1 ]; then
                    COLL_OK=1
                else
                    COLL_WHY="probe POST /api/event -> '$st' ($(grep -i '^fairstat-status' "$C/probe.hdr" | tr -d '\r')), XLEN $x0 -> $x1; body: $(head -c 200 "$C/probe.body")"
                fi
            fi
        fi
    fi
    if [ $COLL_OK = 0 ]; then
        say ""
        say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        say "!!! COLLECTOR NOT BENCHED: $COLL_WHY"
        [ -s "$C/collector.log" ] && { say "!!! collector output (last 20 lines):"; tail -20 "$C/collector.log" >&2; }
        say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        say ""
    fi
    ;;
esac
[ $COLL_OK = 1 ] || [ $NGINX_OK = 1 ] || die "neither server could be benched"

# ---------------------------------------------------------------- wrk scripts
# One Lua shape for both: request() builds a page-view for one of 50 paths, with the
# consent cookie and a browser User-Agent. The collector gets the Plausible-style POST
# (text/plain, as sendBeacon sends it, with the Origin a browser adds); nginx the pixel GET.
# Without a real cookie (collector not benched) nginx gets one of a similar length.
FAKE_COOKIE=1.a.1700000000.0123456789abcdef0123456789abcdef.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
make_lua() {   # target file
    cat > "$2" <<EOF
-- generated by bench/run.sh
local target = "$1"
local cookie = "${COOKIE:-fs_consent=$FAKE_COOKIE}"
local ua = "$UA"
local i = 0
local hdr
if target == "collector" then
  hdr = { ["Content-Type"] = "text/plain", ["Cookie"] = cookie, ["User-Agent"] = ua,
          ["Origin"] = "https://example.com" }
else
  hdr = { ["Cookie"] = cookie, ["User-Agent"] = ua }
end
request = function()
  i = i + 1
  local page = i % 50
  if target == "collector" then
    return wrk.format("POST", "/api/event", hdr,
      '{"d":"example.com","n":"pageview","u":"https://example.com/page/' .. page ..
      '?utm_source=news","r":"https://google.com/"}')
  else
    return wrk.format("GET", "/p.gif?d=example.com&u=https%3A%2F%2Fexample.com%2Fpage%2F" .. page ..
      "%3Futm_source%3Dnews&r=https%3A%2F%2Fgoogle.com%2F", hdr, nil)
  end
end
EOF
}
make_lua collector "$TMP/collector.lua"
make_lua nginx "$TMP/nginx.lua"

# The realistic load's tables (bench/realistic.mjs): its cookies are minted on the
# collector, so without a collector there is no realistic load for nginx either.
case " $LOADS " in *" realistic "*)
    if [ $COLL_OK = 1 ]; then
        say "bench: realistic load: minting $VISITORS consent cookies, writing $REQUESTS requests"
        if node "$ROOT/bench/realistic.mjs" --url "http://127.0.0.1:$COLL_PORT" --out "$TMP" \
                --visitors "$VISITORS" --requests "$REQUESTS" > "$TMP/realistic.txt" 2> "$TMP/realistic.err"; then
            say "bench: $(cat "$TMP/realistic.txt")"
        else
            say "bench: !!! bench/realistic.mjs failed: $(tail -3 "$TMP/realistic.err")"
            LOADS=$(echo " $LOADS " | sed 's/ realistic / /')
            echo "realistic load not run: bench/realistic.mjs failed: $(tail -1 "$TMP/realistic.err")" > "$TMP/realistic.txt"
        fi
    else
        LOADS=$(echo " $LOADS " | sed 's/ realistic / /')
        echo "realistic load not run: it needs the collector to mint its cookies" > "$TMP/realistic.txt"
    fi ;;
esac

# Targets: collector, nginx, and in the sites phase coll-sites (the collector with
# SITES extra [site] sections), refused / refused-sites (beacons for an unconfigured
# domain sent to either collector).
is_coll() { case "$1" in collector|coll-sites) return 0 ;; esac; return 1; }
url_of() {
    case "$1" in
    collector|refused) echo "http://127.0.0.1:$COLL_PORT" ;;
    coll-sites|refused-sites) echo "http://127.0.0.1:$COLL2_PORT" ;;
    noack) echo "http://127.0.0.1:$NOACK_PORT" ;;
    *) echo "http://127.0.0.1:$NGINX_PORT" ;;
    esac
}
pid_of() {
    case "$1" in collector|refused) echo "$COLL_PID" ;; coll-sites|refused-sites) echo "$COLL2_PID" ;;
    noack) echo "$NOACK_PID" ;; *) echo "$NGINX_WORKER" ;; esac
}
# noack stores nothing: its hits are its 2xx answers, counted from wrk's output (measure).
work_count() { if is_coll "$1"; then xlen; elif [ "$1" = noack ]; then echo 0; else log_lines; fi; }

run_wrk() {   # target duration outfile; the load is $LOAD
    wt=$1 wd=$2 wo=$3
    case "$LOAD:$wt" in
    single:nginx) set -- -s "$TMP/nginx.lua" ;;
    single:*) set -- -s "$TMP/collector.lua" ;;
    *:nginx) set -- -s "$ROOT/bench/replay.lua" "$(url_of nginx)" -- "$TMP/realistic.nginx.tsv" get ;;
    *:refused*) set -- -s "$ROOT/bench/replay.lua" "$(url_of "$wt")" -- "$TMP/realistic.refused.tsv" post https://unconfigured.example ;;
    *) set -- -s "$ROOT/bench/replay.lua" "$(url_of "$wt")" -- "$TMP/realistic.collector.tsv" post https://example.com ;;
    esac
    [ "$LOAD" = single ] && set -- "$@" "$(url_of "$wt")"
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$wd" --latency "$@" > "$wo" 2>&1
}

# Bytes of Redis memory per raw hit in the stream as it is now.
bytes_per_hit() {
    n=$(xlen); m=$(rcli MEMORY USAGE 'fs:{example.com}:hits' SAMPLES 0 | tr -d '\r')
    awk -v n="$n" -v m="$m" 'BEGIN { if (n > 0 && m > 0) printf "%.1f %d\n", m / n, n; else print "-1 0" }'
}
# Redis commands by name (INFO commandstats), "name calls" lines
cmdstats() { rcli INFO commandstats | tr -d '\r' | awk -F'[:,=]' '/^cmdstat_/ { sub("cmdstat_", "", $1); print $1, $3 }'; }

# One measured load; appends a result line to $TMP/results.$LOAD:
# round target requests rps non2xx sockerr hits ticks cpu_us_per_hit redis_us_per_hit added
#   server% server-core% load-core% bytes_per_raw_hit stream_len
measure() {   # round target
    r=$1 t=$2 pid=$(pid_of "$2")
    w=$TMP/wrk.$LOAD.$t.$r.txt
    # The aggregator keeps the stream short in production; keep Redis's memory bounded too.
    is_coll "$t" && rcli XTRIM 'fs:{example.com}:hits' MAXLEN 0 > /dev/null
    h0=$(work_count "$t"); a0=""; is_coll "$t" && a0=$(xadded)
    rc0=$(redis_cpu); c0=$(cpu_ticks "$pid"); k0=$(core_stat)
    run_wrk "$t" "$DURATION" "$w"
    k1=$(core_stat); cw=$(cpu_ticks "$pid")
    sleep "$SETTLE"
    c1=$(cpu_ticks "$pid"); rc1=$(redis_cpu)
    h1=$(work_count "$t"); a1=""; bph="-1 0"
    # the collector's real stored hits, before the next load empties the stream
    is_coll "$t" && { a1=$(xadded); bph=$(bytes_per_hit); }
    if ! kill -0 "$pid" 2>/dev/null; then
        say "bench: !!! $t (pid $pid) DIED during round $r ($LOAD load)"; tail -20 "$w" >&2
        [ "$t" = collector ] && { tail -20 "$TMP/collector/collector.log" >&2; COLL_OK=0; COLL_WHY="collector died during round $r ($LOAD load)"; }
        [ "$t" = coll-sites ] && { tail -20 "$TMP/collector/collector-sites.log" >&2; COLL2_OK=0; }
        [ "$t" = nginx ] && NGINX_OK=0
        return 1
    fi
    awk -v r="$r" -v t="$t" -v h0="$h0" -v h1="$h1" -v c0="$c0" -v c1="$c1" -v rc0="$rc0" -v rc1="$rc1" \
        -v a0="${a0:-0}" -v a1="${a1:-0}" -v tck="$CLK_TCK" -v cw="$cw" -v k0="$k0" -v k1="$k1" -v bph="$bph" '
        / requests in /            { req = $1 }
        /^Requests\/sec:/          { rps = $2 }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        /Socket errors:/           { gsub(",", ""); serr = $4 + $6 + $8 + $10 }
        END {
            hits = t == "noack" ? req - bad : h1 - h0; ticks = c1 - c0
            coll = (t == "collector" || t == "coll-sites")
            us = hits > 0 ? ticks * 1e6 / tck / hits : -1
            rus = (coll && hits > 0) ? (rc1 - rc0) * 1e6 / hits : -1
            split(k0, x); split(k1, y)
            srv = (y[2] - x[2]) > 0 ? 100 * (cw - c0) / (y[2] - x[2]) : -1
            b0 = (y[2] - x[2]) > 0 ? 100 * (y[1] - x[1]) / (y[2] - x[2]) : -1
            b1 = (y[4] - x[4]) > 0 ? 100 * (y[3] - x[3]) / (y[4] - x[4]) : -1
            printf "%s %s %d %.0f %d %d %d %d %.2f %.2f %d %.0f %.0f %.0f %s\n", r, t, req, rps, bad, serr, hits, ticks, us, rus, a1 - a0, srv, b0, b1, bph
        }' "$w" >> "$TMP/results.$LOAD"
    tail -1 "$TMP/results.$LOAD" | awk '{
        printf "  round %s %-10s %8d req %7.0f req/s  non-2xx %d  sockerr %d  stored %8d  %4d ticks  %6.2f us/hit", $1, $2, $3, $4, $5, $6, $7, $8, $9
        o = $13 - $12; if (o < 0) o = 0
        printf "  server %3d%% of core %s (others %d%%), load core %3d%%", $12, "'"$SERVER_CPU"'", o, $14
        if ($10 >= 0) printf "  (redis %.2f us/hit, %.0f B/raw hit)", $10, $15
        printf "\n" }' >&2
}

# A refused beacon's cost: beacons for a domain the collector does not serve; every one
# must be refused (non-2xx) and store nothing. Appends to $TMP/refused:
# round target requests non2xx ticks us_per_request stored
# shellcheck disable=SC2317 # called through alone()
measure_refused() {   # round target
    r=$1 t=$2 pid=$(pid_of "$2")
    w=$TMP/wrk.refused.$t.$r.txt
    h0=$(xlen); c0=$(cpu_ticks "$pid")
    run_wrk "$t" 2s "$w"
    sleep 0.5
    c1=$(cpu_ticks "$pid"); h1=$(xlen)
    awk -v r="$r" -v t="$t" -v c0="$c0" -v c1="$c1" -v s=$((h1 - h0)) -v tck="$CLK_TCK" '
        / requests in / { req = $1 } /Non-2xx or 3xx responses:/ { bad = $NF }
        END { printf "%s %s %d %d %d %.2f %d\n", r, t, req, bad, c1 - c0, (req > 0 ? (c1 - c0) * 1e6 / tck / req : -1), s }' "$w" >> "$TMP/refused"
    tail -1 "$TMP/refused" | awk '{ printf "  round %s %-14s %7d req, %7d non-2xx, %4d ticks, %8.2f us/request, stored %d\n", $1, $2, $3, $4, $5, $6, $7 }' >&2
}

# Redis commands per second with nothing sent to anyone (an idle collector's polling).
# INFO is left out: the only INFO calls are ours.
idle_rate() {   # seconds
    cmdstats > "$TMP/idle.0"; sleep "$1"; cmdstats > "$TMP/idle.1"
    awk -v s="$1" 'NR == FNR { a[$1] = $2; next } $1 != "info" { d = $2 - a[$1]; tot += d; if (d > b) { b = d; n = $1 } }
        END { printf "%.1f%s\n", tot / s, (b > 0 ? " (mostly " n ")" : "") }' "$TMP/idle.0" "$TMP/idle.1"
}

say "bench: redis :$REDIS_PORT (core $LOAD_CPU; the collector over $REDIS_VIA)$( [ $NGINX_OK = 1 ] && echo ", nginx :$NGINX_PORT worker $NGINX_WORKER (core $SERVER_CPU)")$( [ $COLL_OK = 1 ] && echo ", collector :$COLL_PORT pid $COLL_PID (core $SERVER_CPU)"); wrk -t1 -c$CONNS -d$DURATION (core $LOAD_CPU)"
# How busy the machine is before we load it (other sessions, builds, tests).
k0=$(core_stat); sleep 1; k1=$(core_stat)
IDLE_NOTE=$(awk -v k0="$k0" -v k1="$k1" -v a="$SERVER_CPU" -v b="$LOAD_CPU" 'BEGIN { split(k0, x); split(k1, y)
    b0 = (y[2] - x[2]) > 0 ? 100 * (y[1] - x[1]) / (y[2] - x[2]) : 0
    b1 = (y[4] - x[4]) > 0 ? 100 * (y[3] - x[3]) / (y[4] - x[4]) : 0
    printf "before the loads, with nothing of ours running: core %s %.0f%% busy, core %s %.0f%% busy", a, b0, b, b1
    if (b0 > 15 || b1 > 15) printf " -- the machine is shared right now; expect noise" }')
say "bench: $IDLE_NOTE"

# ---------------------------------------------------------------- strace -c (extra loads)
strace_one() {   # target
    t=$1 pid=$(pid_of "$1")
    s=$TMP/strace.$LOAD.$t.txt
    strace -c -f -p "$pid" -o "$s" 2>/dev/null &
    spid=$!; PIDS="$PIDS $spid"
    sleep 0.5
    h0=$(work_count "$t")
    run_wrk "$t" 2s "$TMP/wrk.$LOAD.$t.strace.txt"
    sleep "$SETTLE"
    h1=$(work_count "$t")
    kill -INT "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
    awk -v t="$t" -v hits=$((h1 - h0)) '
        $1 ~ /^[0-9.]+$/ && $NF != "total" && NF >= 5 { n[$NF] = $4; tot += $4 }
        END {
            if (hits <= 0 || tot == 0) { printf "%-9s  strace gave nothing (hits %d)\n", t, hits; exit }
            line = sprintf("%-9s %6.2f syscalls/hit over %d hits:", t, tot / hits, hits)
            for (k = 0; k < 7; k++) {
                best = ""; for (s in n) if (best == "" || n[s] > n[best]) best = s
                if (best == "" || n[best] / hits < 0.005) break
                line = line sprintf(" %s %.2f", best, n[best] / hits); delete n[best]
            }
            print line
        }' "$s" >> "$TMP/strace.$LOAD"
}

# ---------------------------------------------------------------- the loads
for LOAD in $LOADS; do
    : > "$TMP/results.$LOAD"
    say "bench: === $LOAD load: warm-up (2 s each, not counted)"
    cmdstats > "$TMP/cmd.$LOAD.0"; ha0=$(xadded)
    [ $COLL_OK = 1 ] && run_wrk collector 2s "$TMP/wrk.$LOAD.collector.warm.txt"
    [ $NGINX_OK = 1 ] && run_wrk nginx 2s "$TMP/wrk.$LOAD.nginx.warm.txt"
    sleep "$SETTLE"
    r=1
    while [ $r -le "$ROUNDS" ]; do
        if [ $((r % 2)) = 1 ]; then order="collector nginx"; else order="nginx collector"; fi
        for t in $order; do
            if [ "$t" = collector ] && [ $COLL_OK = 1 ]; then measure "$r" collector; fi
            if [ "$t" = nginx ] && [ $NGINX_OK = 1 ]; then measure "$r" nginx; fi
        done
        r=$((r + 1))
    done
    if [ "$DO_STRACE" = 1 ] && command -v strace >/dev/null 2>&1; then
        say "bench: strace -c -f during one extra 2 s load per server (not counted above)"
        : > "$TMP/strace.$LOAD"
        [ $COLL_OK = 1 ] && strace_one collector
        [ $NGINX_OK = 1 ] && strace_one nginx
    fi
    if [ $COLL_OK = 1 ]; then
        # Redis commands per stored hit over this load (warm-up and strace load included),
        # and one stored hit, to see what the collector did with a request
        cmdstats > "$TMP/cmd.$LOAD.1"; ha1=$(xadded)
        awk -v hits=$((ha1 - ha0)) 'NR == FNR { a[$1] = $2; next } { c[$1] = $2 - a[$1]; tot += c[$1] }
            END {
                if (hits <= 0) exit
                line = sprintf("redis commands per stored hit (%d hits): %.2f, of which", hits, tot / hits)
                for (k = 0; k < 6; k++) {
                    best = ""; for (s in c) if (best == "" || c[s] > c[best]) best = s
                    if (best == "" || c[best] / hits < 0.001) break
                    line = line sprintf(" %s %.3f", best, c[best] / hits); delete c[best]
                }
                print line
            }' "$TMP/cmd.$LOAD.0" "$TMP/cmd.$LOAD.1" > "$TMP/redis.$LOAD"
        # one stored hit: its size when packed (binary: not printable), else its fields
        rcli EVAL "local e = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
            if not e then return '' end
            if #e[2] == 2 and e[2][1] == 'h' then return 'one packed field of ' .. #e[2][2] .. ' bytes' end
            return table.concat(e[2], ' ')" 1 'fs:{example.com}:hits' | tr -d '\r' \
            | awk '{ print "sample stored hit: " $0 }' > "$TMP/sample.$LOAD"
        # what the enrichment found, over the last 2,000 stored hits: the packed hit's
        # varint of optional strings (common/rawhit.h: at byte 15; referrer, country and
        # region are its bits 0, 1 and 2, so its first byte tells), or the fields of an
        # earlier version's entry
        rcli EVAL "local e = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 2000)
            local c, rg, r = 0, 0, 0
            local function bit(v, b) return math.floor(v / 2 ^ b) % 2 == 1 end
            for _, x in ipairs(e) do
              if #x[2] == 2 and x[2][1] == 'h' then
                local p = x[2][2]:byte(16)
                if bit(p, 0) then r = r + 1 end
                if bit(p, 1) then c = c + 1 end
                if bit(p, 2) then rg = rg + 1 end
              else
                for i = 1, #x[2], 2 do local f = x[2][i]
                  if f == 'c' then c = c + 1 elseif f == 'rg' then rg = rg + 1 elseif f == 'r' then r = r + 1 end end
              end
            end
            return {#e, c, rg, r}" 1 'fs:{example.com}:hits' | tr -d '\r' | awk '{ v[NR] = $1 } END { if (v[1] > 0)
            printf "of the last %d stored hits: %.1f%% with a country, %.1f%% with a region, %.1f%% with a referrer\n", v[1], 100 * v[2] / v[1], 100 * v[3] / v[1], 100 * v[4] / v[1] }' >> "$TMP/sample.$LOAD"
    fi
done

# Runs a command with the servers PIDS (a list) paused (SIGSTOP): an idle server's
# polling would take CPU on the measured one's core, and Redis work.
paused() {   # "pids" command args...
    pp=$1; shift
    # shellcheck disable=SC2086 # a list of pids, split on purpose
    kill -STOP $pp 2>/dev/null
    "$@"; prc=$?
    # shellcheck disable=SC2086
    kill -CONT $pp 2>/dev/null
    return $prc
}

# ---------------------------------------------------------------- many sites (realistic load)
# The same realistic load on a second collector whose config holds SITES more [site]
# sections, alternating with the first; then refused beacons on both, and the idle
# Redis command rate of each.
COLL2_OK=0
if [ "$SITES" -gt 0 ] && [ $COLL_OK = 1 ] && [ -s "$TMP/realistic.collector.tsv" ]; then
    LOAD=sites
    : > "$TMP/results.sites"; : > "$TMP/refused"
    say "bench: === $SITES extra sites: idle Redis command rate (5 s), then a second collector"
    IDLE1=$(idle_rate 5)
    # Measure one collector while the other is paused (paused(), above).
    alone() {   # target command args...
        case "$1" in collector|refused) other=$COLL2_PID ;; *) other=$COLL_PID ;; esac
        shift
        paused "$other" "$@"
    }
    COLL2_PORT=$(free_port) || die "no free port"
    # example.com keeps its cookie name (fs_consent) as an install that adds sites does
    # (docs/protocol.md, "The cookie is the site's own"): the realistic load's cookies
    # were minted by the one-site collector.
    awk -v p="$COLL2_PORT" -v n="$SITES" '/^listen = / { print "listen = 127.0.0.1:" p; next }
        /^\[site example\.com\]$/ { print; print "cookie = fs_consent"; next } { print }
        END { for (i = 0; i < n; i++) printf "\n[site s%05d.example]\norigins = https://s%05d.example\n", i, i }' \
        "$C/fairstat.conf" > "$C/fairstat-sites.conf"
    st0=$(date +%s%N)
    taskset -c "$SERVER_CPU" "$COLLECTOR" -c "$C/fairstat-sites.conf" > "$C/collector-sites.log" 2>&1 &
    COLL2_PID=$!; PIDS="$PIDS $COLL2_PID"
    if wait_port "$COLL2_PID" "$COLL2_PORT" 120; then
        COLL2_OK=1
        STARTUP2=$(awk -v a="$st0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
        kill -STOP "$COLL_PID"; IDLE2=$(idle_rate 5); kill -CONT "$COLL_PID"
        say "bench: idle Redis commands/s: the 1-site collector $IDLE1, the $SITES-site one $IDLE2 (each alone); the $SITES-site one listened after $STARTUP2 s"
        run_wrk collector 2s "$TMP/wrk.sites.collector.warm.txt"
        run_wrk coll-sites 2s "$TMP/wrk.sites.coll-sites.warm.txt"
        r=1
        while [ $r -le "$ROUNDS" ] && [ $COLL2_OK = 1 ]; do
            if [ $((r % 2)) = 1 ]; then order="collector coll-sites"; else order="coll-sites collector"; fi
            for t in $order; do alone "$t" measure "$r" "$t"; done
            r=$((r + 1))
        done
        r=1
        while [ $r -le "$ROUNDS" ] && [ $COLL2_OK = 1 ]; do
            if [ $((r % 2)) = 1 ]; then order="refused refused-sites"; else order="refused-sites refused"; fi
            for t in $order; do alone "$t" measure_refused "$r" "$t"; done
            r=$((r + 1))
        done
    else
        say "bench: !!! the collector with $SITES extra sites did not listen within 120 s:"; tail -5 "$C/collector-sites.log" >&2
    fi
    kill -TERM "$COLL2_PID" 2>/dev/null; wait "$COLL2_PID" 2>/dev/null
fi

# ---------------------------------------------------------------- the acknowledgement's cost
# The realistic load on three servers, rounds rotating: the collector, the bench-only
# build of it that answers 202 without sending the hit to Redis (noack, bench/build.mk),
# and nginx. What separates the first two is Redis's acknowledgement, which a 202
# promises; what separates the last two is the rest of the collector's work per hit.
# Each collector is measured while the other is paused (SIGSTOP), as in the sites phase.
NOACK_OK=0
if [ "${BENCH_NOACK:-1}" = 1 ] && [ $COLL_OK = 1 ] && [ $NGINX_OK = 1 ] && [ -s "$TMP/realistic.collector.tsv" ]; then
    if [ ! -x "$NOACK" ]; then
        say "bench: !!! $NOACK missing (make bench-noack): the acknowledgement phase is skipped"
    else
        LOAD=noack
        : > "$TMP/results.noack"
        NOACK_PORT=$(free_port) || die "no free port"
        sed "s/^listen = .*/listen = 127.0.0.1:$NOACK_PORT/" "$C/fairstat.conf" > "$C/fairstat-noack.conf"
        taskset -c "$SERVER_CPU" "$NOACK" -c "$C/fairstat-noack.conf" > "$C/collector-noack.log" 2>&1 &
        NOACK_PID=$!; PIDS="$PIDS $NOACK_PID"
        if wait_port "$NOACK_PID" "$NOACK_PORT" 10; then
            NOACK_OK=1
            say "bench: === the collector without Redis's acknowledgement (bench build), the collector and nginx, realistic load"
            x0=$(xlen)
            run_wrk noack 2s "$TMP/wrk.noack.noack.warm.txt"
            x1=$(xlen)
            [ "$x0" = "$x1" ] || say "bench: !!! the noack collector stored hits ($x0 -> $x1): it is not the bench build"
            r=1
            while [ $r -le "$ROUNDS" ] && [ $NOACK_OK = 1 ]; do
                case $((r % 3)) in
                1) order="collector noack nginx" ;; 2) order="noack nginx collector" ;; *) order="nginx collector noack" ;;
                esac
                for t in $order; do
                    case "$t" in
                    collector) paused "$NOACK_PID" measure "$r" collector ;;
                    noack) paused "$COLL_PID" measure "$r" noack || NOACK_OK=0 ;;
                    nginx) paused "$NOACK_PID $COLL_PID" measure "$r" nginx ;;
                    esac
                done
                r=$((r + 1))
            done
        else
            say "bench: !!! the noack collector did not listen:"; tail -5 "$C/collector-noack.log" >&2
        fi
        kill -TERM "$NOACK_PID" 2>/dev/null; wait "$NOACK_PID" 2>/dev/null
    fi
fi

# ---------------------------------------------------------------- drain of the realistic hits
# Fill the stream through the collector with the realistic load, then time the aggregator's
# `run --once` until it is empty, next to redis-benchmark's pipelined XADD of an entry of
# the same shape (one of the stored entries' fields), both on core SERVER_CPU (the servers
# are idle by then), against the same Redis. Exactly once: the pageviews the report
# counts grow by the hits drained.
AGG=$ROOT/bin/fairstat-aggregator
report_pv() {
    "$AGG" -c "$C/fairstat.conf" report --site example.com --from "$(date -u -d '-1 day' +%F)" \
        --to "$(date -u -d '+1 day' +%F)" --format json 2>> "$TMP/agg.log" \
        | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).totals.pageviews))'
}
if [ "${BENCH_DRAIN_REALISTIC:-1}" = 1 ] && [ $COLL_OK = 1 ] && [ -s "$TMP/realistic.collector.tsv" ] && [ -x "$AGG" ]; then
    LOAD=realistic
    say "bench: === aggregator drain of the realistic load's hits ($ROUNDS rounds)"
    : > "$TMP/drain.res"
    r=1
    while [ $r -le "$ROUNDS" ]; do
        rcli XTRIM 'fs:{example.com}:hits' MAXLEN 0 > /dev/null
        run_wrk collector "${BENCH_DRAIN_FILL:-8s}" "$TMP/wrk.drain.$r.txt"
        sleep "$SETTLE"
        n=$(xlen); pv0=$(report_pv)
        # the shape of a stored hit, for redis-benchmark: its field/value pairs
        # (of the first 500, one with the most frequent number of fields)
        set --
        rcli EVAL "local e = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 500)
            local n, best = {}, nil
            for _, x in ipairs(e) do n[#x[2]] = (n[#x[2]] or 0) + 1 end
            for k, c in pairs(n) do if not best or c > n[best] then best = k end end
            for _, x in ipairs(e) do if #x[2] == best then return x[2] end end
            return {}" 1 'fs:{example.com}:hits' | tr -d '\r' > "$TMP/entry.txt"
        while IFS= read -r line; do set -- "$@" "$line"; done < "$TMP/entry.txt"
        c0=$(redis_cpu); t0=$(date +%s%N)
        taskset -c "$SERVER_CPU" "$AGG" -c "$C/fairstat.conf" run --once 2>> "$TMP/agg.log" || say "bench: !!! run --once failed: $(tail -2 "$TMP/agg.log")"
        t1=$(date +%s%N); c1=$(redis_cpu)
        left=$(xlen); pv1=$(report_pv)
        taskset -c "$SERVER_CPU" redis-benchmark -p "$REDIS_PORT" -P 32 -n 300000 -q XADD 'fs:bench:xadd' '*' "$@" > "$TMP/rb.$r.txt" 2>&1
        rcli DEL 'fs:bench:xadd' > /dev/null
        xr=$(tr '\r' '\n' < "$TMP/rb.$r.txt" | awk '/requests per second/ { for (i = 1; i < NF; i++) if ($(i + 1) == "requests") { print $i; exit } }')
        # a round whose redis-benchmark printed no rate is left out of the XADD figures, and said
        [ -n "$xr" ] || say "bench: !!! redis-benchmark printed no rate in round $r (left out): $(tr '\r' '\n' < "$TMP/rb.$r.txt" | grep -v '^ *$' | tail -1)"
        awk -v r="$r" -v n="$n" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v left="$left" -v pv=$((pv1 - pv0)) \
            -v xr="${xr:-0}" -v f=$(($# / 2)) 'BEGIN {
            printf "%s %d %.0f %.2f %d %d %.0f %d\n", r, n, n / ((t1 - t0) / 1e9), (n > 0 ? (c1 - c0) * 1e6 / n : -1), left, pv, xr, f }' >> "$TMP/drain.res"
        tail -1 "$TMP/drain.res" | awk '{ printf "  round %s: drained %d hits at %.0f hits/s (redis %.2f us/hit), %d left, pageviews +%d; redis-benchmark XADD (%d fields) %.0f/s\n", $1, $2, $3, $4, $5, $6, $8, $7 }' >&2
        r=$((r + 1))
    done
fi

# ---------------------------------------------------------------- perf (optional, last load)
perf_one() {   # target
    t=$1 pid=$(pid_of "$1")
    run_wrk "$t" 4s "$TMP/wrk.$t.perf.txt" &
    wpid=$!; PIDS="$PIDS $wpid"
    sleep 0.5
    taskset -c "$LOAD_CPU" perf record -q -F 2999 -p "$pid" -o "$TMP/perf.$t.data" -- sleep 3 > /dev/null 2>&1
    wait "$wpid"
    { echo "$t ($LOAD load): perf, share of samples by object (3 s under load):"
      perf report -q -i "$TMP/perf.$t.data" --stdio --sort dso 2>/dev/null \
        | grep -E '^ +[0-9.]+%' | head -8 | sed 's/ *$//'
      echo "$t: top symbols:"
      perf report -q -i "$TMP/perf.$t.data" --stdio --sort dso,symbol 2>/dev/null \
        | grep -E '^ +[0-9.]+%' | head -"${BENCH_PERF_TOP:-20}" | sed 's/[ -]*$//'; } >> "$TMP/perf.sum"
}
if [ "${BENCH_PERF:-0}" = 1 ] && command -v perf >/dev/null 2>&1; then
    for LOAD in $LOADS; do :; done     # the last load
    say "bench: perf record during one extra load per server ($LOAD load, not counted above)"
    : > "$TMP/perf.sum"
    [ $COLL_OK = 1 ] && perf_one collector
    [ $NGINX_OK = 1 ] && perf_one nginx
fi

# ---------------------------------------------------------------- summary
stats() {   # awk program input: values one per line -> "median min max n"
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "NA NA NA 0"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        print m, v[1], v[NR], NR }'
}
col() {   # target field [file] -> values
    awk -v t="$1" -v f="$2" '$2 == t && $9 >= 0 && $f >= 0 { print $f }' "${3:-$RES}"
}
ratios() {   # numerator-target denominator-target
    awk -v a="$1" -v b="$2" '$2 == a && $9 > 0 { c[$1] = $9 } $2 == b && $9 > 0 { n[$1] = $9 }
         END { for (r in c) if (r in n) printf "%.4f\n", c[r] / n[r] }' "$RES"
}
row() {   # label values-stats format
    # shellcheck disable=SC2086 # $2 is "median min max n", split on purpose
    set -- "$1" $2 "$3"
    if [ "$5" = 0 ]; then printf '%-36s %10s\n' "$1" "n/a"
    else printf "%-36s $6 $6 $6\n" "$1" "$2" "$3" "$4"; fi
}
per_round() {
    echo "per round: target     requests    stored/logged  non-2xx sock-err  ticks   us/hit  server%  others-on-its-core%  load-core%"
    sort -k1,1n -k2,2 "$RES" | awk '{ o = $13 - $12; if (o < 0) o = 0
        printf "  %5s    %-10s %9d  %9d (%5.1f%%) %7d %7d  %6d  %7.2f  %6d%%  %19d%%  %9d%%\n", $1, $2, $3, $7, $3 ? 100 * $7 / $3 : 0, $5, $6, $8, $9, $12, o, $14 }'
}
flags() {
    awk -v ok="$COLL_OK" '
        $2 ~ /^coll/ { cb += $5; cs += $6; creq += $3; chit += $7; if ($11 != $7) trim = 1 }
        $2 == "nginx"     { nb += $5; ns += $6; nreq += $3; nhit += $7 }
        { n[$2]++; if ($12 < 75) { low[$2]++; lowmin[$2] = (lowmin[$2] == "" || $12 < lowmin[$2]) ? $12 : lowmin[$2]; if ($14 > 90) lside[$2]++ } }
        END {
            if (cb > 0) printf "\n!!! COLLECTOR ANSWERED %d NON-2xx RESPONSES (of %d) -- its figures are not valid\n", cb, creq
            if (cs > 0) printf "\n!!! collector: %d wrk socket errors\n", cs
            if (creq > 0 && (chit < 0.98 * creq || chit > 1.02 * creq)) printf "\n!!! COLLECTOR STORED %d HITS FOR %d REQUESTS (%.1f%%) -- refused (204) or lost hits\n", chit, creq, 100 * chit / creq
            if (trim) printf "\n!!! XLEN delta differs from XINFO entries-added delta: the stream was trimmed during the bench\n"
            if (nb > 0) printf "\n!!! nginx answered %d non-2xx responses\n", nb
            if (ns > 0) printf "\n!!! nginx: %d wrk socket errors\n", ns
            for (t in low) printf "\nnote: %s was below 75%% of its core in %d of %d loads (down to %d%%%s); an idle-ish server wakes more per request, so compare rounds at similar load\n", t, low[t], n[t], lowmin[t], lside[t] ? "; the load core was >90% busy: wrk + redis, or another process on the machine, were the bottleneck" : ""
            if (nreq > 0 && (nhit < 0.98 * nreq || nhit > 1.02 * nreq)) printf "\n!!! nginx logged %d lines for %d requests\n", nhit, nreq
        }' "$RES"
}
load_title() {
    case "$1" in
    single) echo "one repeated request (50 paths, one cookie, one User-Agent, from 127.0.0.1)" ;;
    realistic) cat "$TMP/realistic.txt" ;;
    *) echo "$1" ;;
    esac
}

{
    echo "Fairstat bench -- $(date -u '+%Y-%m-%d %H:%M:%SZ')  git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- collector common 2>/dev/null || echo '+dirty')"
    echo "servers on core $SERVER_CPU; wrk -t1 -c$CONNS -d$DURATION and redis on core $LOAD_CPU; $ROUNDS rounds, order alternating; CLK_TCK $CLK_TCK"
    echo "$IDLE_NOTE"
    echo "collector threads=1, GeoIP2-City-Test; nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') empty_gif + access_log buffer=256k"
    [ -s "$TMP/realistic.txt" ] && case " ${BENCH_LOADS:-single realistic} " in *" realistic "*) : ;; *) false ;; esac \
        && ! [ -s "$TMP/results.realistic" ] && { echo ""; echo "!!! $(cat "$TMP/realistic.txt")"; }
    for LOAD in $LOADS; do
        RES=$TMP/results.$LOAD
        echo ""
        echo "=== load: $LOAD -- $(load_title "$LOAD")"
        echo ""
        printf '%-36s %10s %10s %10s\n' "" median min max
        row "collector CPU us per stored hit" "$(col collector 9 | stats)" "%10.2f"
        row "nginx     CPU us per logged hit" "$(col nginx 9 | stats)" "%10.2f"
        row "RATIO collector/nginx (per round)" "$(ratios collector nginx | stats)" "%10.2f"
        row "redis-server CPU us per stored hit" "$(col collector 10 | stats)" "%10.2f"
        row "bytes per raw hit (MEMORY USAGE/XLEN)" "$(col collector 15 | stats)" "%10.1f"
        row "  stream length measured" "$(col collector 16 | stats)" "%10.0f"
        row "collector requests/s (wrk)" "$(col collector 4 | stats)" "%10.0f"
        row "nginx     requests/s (wrk)" "$(col nginx 4 | stats)" "%10.0f"
        echo ""
        row "collector busy, % of its core" "$(col collector 12 | stats)" "%10.0f"
        row "nginx     busy, % of its core" "$(col nginx 12 | stats)" "%10.0f"
        echo ""
        per_round
        if [ -s "$TMP/redis.$LOAD" ]; then echo ""; cat "$TMP/redis.$LOAD"; fi
        if [ -s "$TMP/sample.$LOAD" ]; then cat "$TMP/sample.$LOAD"; fi
        if [ -s "$TMP/strace.$LOAD" ]; then echo ""; echo "syscalls (strace -c -f, separate 2 s load):"; sed 's/^/  /' "$TMP/strace.$LOAD"; fi
        flags
    done
    if [ -s "$TMP/results.sites" ]; then
        RES=$TMP/results.sites
        echo ""
        echo "=== cost per hit with 1 and with $SITES extra sites configured (realistic load, rounds alternating)"
        echo ""
        printf '%-36s %10s %10s %10s\n' "" median min max
        row "CPU us per stored hit, 1 site" "$(col collector 9 | stats)" "%10.2f"
        row "CPU us per stored hit, +$SITES sites" "$(col coll-sites 9 | stats)" "%10.2f"
        row "RATIO +$SITES sites / 1 site" "$(ratios coll-sites collector | stats)" "%10.2f"
        row "refused beacon CPU us, 1 site" "$(awk '$2 == "refused" && $6 >= 0 { print $6 }' "$TMP/refused" | stats)" "%10.2f"
        row "refused beacon CPU us, +$SITES sites" "$(awk '$2 == "refused-sites" && $6 >= 0 { print $6 }' "$TMP/refused" | stats)" "%10.2f"
        echo "idle collector's Redis commands/s (5 s, no load, the other collector paused): 1 site $IDLE1; +$SITES sites $IDLE2"
        echo "the collector with $SITES extra sites listened $STARTUP2 s after it was started"
        echo ""
        per_round
        awk '$2 ~ /^refused/ { n[$2] += $3; b[$2] += $4; s[$2] += $7 }
            END { for (t in n) if (b[t] != n[t] || s[t] != 0) printf "\n!!! %s: %d requests, %d refused (non-2xx), %d stored -- not all refused\n", t, n[t], b[t], s[t] }' "$TMP/refused"
        flags
    elif [ "$SITES" -gt 0 ] && [ $COLL_OK = 1 ]; then
        echo ""; echo "!!! many-sites phase not run (no realistic table, or the second collector did not start)"
    fi
    if [ -s "$TMP/results.noack" ]; then
        RES=$TMP/results.noack
        echo ""
        echo "=== what Redis's acknowledgement costs the collector (realistic load, rounds rotating)"
        echo "noack: the bench-only build that answers 202 without sending the hit to Redis (bench/build.mk);"
        echo "its hits are its 2xx answers, the collector's its stored hits, nginx's its logged lines"
        echo ""
        printf '%-36s %10s %10s %10s\n' "" median min max
        row "collector CPU us per stored hit" "$(col collector 9 | stats)" "%10.2f"
        row "noack     CPU us per 2xx answer" "$(col noack 9 | stats)" "%10.2f"
        row "nginx     CPU us per logged hit" "$(col nginx 9 | stats)" "%10.2f"
        row "RATIO collector/nginx (per round)" "$(ratios collector nginx | stats)" "%10.2f"
        row "RATIO noack/nginx (per round)" "$(ratios noack nginx | stats)" "%10.2f"
        row "acknowledgement, us per hit" "$(awk '$9 > 0 && $2 == "collector" { c[$1] = $9 } $9 > 0 && $2 == "noack" { n[$1] = $9 }
            END { for (r in c) if (r in n) printf "%.3f\n", c[r] - n[r] }' "$RES" | stats)" "%10.2f"
        row "collector busy, % of its core" "$(col collector 12 | stats)" "%10.0f"
        row "noack     busy, % of its core" "$(col noack 12 | stats)" "%10.0f"
        echo ""
        per_round
        flags
    fi
    if [ -s "$TMP/drain.res" ]; then
        echo ""
        echo "=== aggregator drain of the realistic load's hits (run --once, core $SERVER_CPU; redis on core $LOAD_CPU)"
        echo ""
        printf '%-36s %10s %10s %10s\n' "" median min max
        row "hits drained per round" "$(awk '{ print $2 }' "$TMP/drain.res" | stats)" "%10.0f"
        row "drain, hits/s" "$(awk '{ print $3 }' "$TMP/drain.res" | stats)" "%10.0f"
        row "redis CPU us per drained hit" "$(awk '{ print $4 }' "$TMP/drain.res" | stats)" "%10.2f"
        row "redis-benchmark -P 32 XADD /s" "$(awk '$7 > 0 { print $7 }' "$TMP/drain.res" | stats)" "%10.0f"
        row "drain / XADD (per round)" "$(awk '$7 > 0 { printf "%.4f\n", $3 / $7 }' "$TMP/drain.res" | stats)" "%10.3f"
        echo "(XADD of one stored entry's $(awk 'NR == 1 { print $8 }' "$TMP/drain.res") field/value pairs, same Redis, same core as the aggregator)"
        awk '$5 != 0 || $6 != $2 { bad = 1; printf "\n!!! drain round %s: %d hits, %d left in the stream, pageviews grew by %d -- not exactly once\n", $1, $2, $5, $6 }
            END { if (!bad && NR > 0) print "exactly once: in every round the report'"'"'s pageviews grew by the hits drained, and the stream was empty" }' "$TMP/drain.res"
    fi
    if [ -s "$TMP/perf.sum" ]; then echo ""; sed 's/^/  /' "$TMP/perf.sum"; fi
    case " $TARGETS " in *" collector "*)
        [ $COLL_OK = 1 ] || printf '\n!!! COLLECTOR NOT (FULLY) BENCHED: %s\n' "$COLL_WHY" ;; esac
    [ $NGINX_OK = 1 ] || case " $TARGETS " in *" nginx "*) printf '\n!!! nginx reference not (fully) benched\n' ;; esac
} > "$TMP/summary"

# ---------------------------------------------------------------- aggregator drain (bench/drain.sh)
if [ "${BENCH_DRAIN:-1}" = 1 ] && [ -x "$ROOT/bench/drain.sh" ]; then
    stop_all    # our servers are done; drain.sh brings its own redis
    say "bench: bench/drain.sh"
    { echo ""; echo "aggregator drain (bench/drain.sh):"; } >> "$TMP/summary"
    { "$ROOT/bench/drain.sh" 2>&1; echo $? > "$TMP/drain.rc"; } | tee "$TMP/drain.out" >&2
    drc=$(cat "$TMP/drain.rc" 2>/dev/null || echo '?')
    sed 's/^/  /' "$TMP/drain.out" >> "$TMP/summary"
    [ "$drc" = 0 ] || echo "!!! bench/drain.sh exited with status $drc" >> "$TMP/summary"
fi

# ---------------------------------------------------------------- erasure cost (bench/erase.mjs)
if [ "${BENCH_ERASE:-1}" = 1 ] && [ -f "$ROOT/bench/erase.mjs" ]; then
    stop_all    # erase.mjs brings its own redis and collector
    say "bench: bench/erase.mjs"
    { echo ""; echo "GET / DELETE /consent, Redis time of one call by backlog (bench/erase.mjs):"; } >> "$TMP/summary"
    node "$ROOT/bench/erase.mjs" 2>&1 | sed 's/^/  /' >> "$TMP/summary"
fi

# ---------------------------------------------------------------- hostile site-day (bench/flood.mjs)
if [ "${BENCH_FLOOD:-1}" = 1 ] && [ -f "$ROOT/bench/flood.mjs" ]; then
    stop_all
    say "bench: bench/flood.mjs"
    { echo ""; node "$ROOT/bench/flood.mjs" 100000 2>&1; } >> "$TMP/summary"
fi

# ---------------------------------------------------------------- large data set (bench/dataset.sh)
if [ "${BENCH_DATASET:-1}" != 0 ] && [ -x "$ROOT/bench/dataset.sh" ]; then
    stop_all    # dataset.sh brings its own redis
    say "bench: bench/dataset.sh (${BENCH_DATASET_HITS:-10000000} hits; BENCH_DATASET=0 skips it)"
    echo "" >> "$TMP/summary"
    { "$ROOT/bench/dataset.sh" 2>&1; echo $? > "$TMP/dataset.rc"; } | tee "$TMP/dataset.out" >&2
    src=$(cat "$TMP/dataset.rc" 2>/dev/null || echo '?')
    grep -v '^dataset: ' "$TMP/dataset.out" >> "$TMP/summary"
    [ "$src" = 0 ] || echo "!!! bench/dataset.sh exited with status $src" >> "$TMP/summary"
fi

mkdir -p "$ROOT/var"
cp "$TMP/summary" "$OUT"
echo ""
cat "$TMP/summary"
echo ""
echo "(written to ${OUT#"$ROOT"/})"
case " $TARGETS " in *" collector "*) [ $COLL_OK = 1 ] || exit 1 ;; esac
exit 0
