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
#   BENCH_DRAIN=0         skip bench/drain.sh (the aggregator's drain rate; runs last if present)
#   BENCH_KEEP=1          keep the temp dir (configs, logs, raw wrk output) for a post-mortem
#   SERVER_CPU=0 LOAD_CPU=1   cores for the servers and for wrk + redis
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

ROUNDS=${BENCH_ROUNDS:-5}
DURATION=${BENCH_DURATION:-5s}
CONNS=${BENCH_CONNS:-32}
TARGETS=${BENCH_TARGETS:-collector nginx}
DO_STRACE=${BENCH_STRACE:-1}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
SETTLE=1.5          # seconds after each load: nginx flush=1s lands, the last XADDs are acked
COLLECTOR=${COLLECTOR:-$ROOT/bin/fairstat-collector}
NGINX=${NGINX:-/usr/sbin/nginx}
GEOIP=$ROOT/tests/data/geoip/GeoIP2-City-Test.mmdb
OUT=$ROOT/var/bench-last.txt
UA='Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0'

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }

for t in wrk redis-server redis-cli curl taskset awk ss; do
    command -v "$t" >/dev/null 2>&1 || die "missing tool '$t' (sh scripts/deps.sh bench installs what the bench needs)"
done
[ -x "$NGINX" ] || die "missing $NGINX (apt-get install nginx-light)"
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
[ "$NCPU" -ge 2 ] || say "bench: WARNING: only $NCPU core(s); server and load generator share it"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fairstat-bench.XXXXXX") || die "mktemp failed"
chmod 755 "$TMP"    # nginx workers run as nobody when started by root
PIDS=""             # every process we started, killed in cleanup
REDIS_PID="" NGINX_PID="" COLL_PID=""

alive() { st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null); [ -n "$st" ] && [ "$st" != Z ]; }
stop_all() {
    for p in $PIDS; do
        kill -0 "$p" 2>/dev/null || continue
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
taskset -c "$LOAD_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TMP/redis" \
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

[redis]
url = redis://127.0.0.1:$REDIS_PORT/0

[consent]
secret = $SECRET
secure = no

[geoip]
database = $GEOIP

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

url_of() { if [ "$1" = collector ]; then echo "http://127.0.0.1:$COLL_PORT"; else echo "http://127.0.0.1:$NGINX_PORT"; fi; }
pid_of() { if [ "$1" = collector ]; then echo "$COLL_PID"; else echo "$NGINX_WORKER"; fi; }
work_count() { if [ "$1" = collector ]; then xlen; else log_lines; fi; }

run_wrk() {   # target duration outfile
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$2" --latency -s "$TMP/$1.lua" "$(url_of "$1")" > "$3" 2>&1
}

# One measured load; appends a result line to $TMP/results:
# round target requests rps non2xx sockerr hits ticks cpu_us_per_hit redis_us_per_hit added
measure() {   # round target
    r=$1 t=$2 pid=$(pid_of "$2")
    w=$TMP/wrk.$t.$r.txt
    # The aggregator keeps the stream short in production; keep Redis's memory bounded too.
    [ "$t" = collector ] && rcli XTRIM 'fs:{example.com}:hits' MAXLEN 0 > /dev/null
    h0=$(work_count "$t"); a0=""; [ "$t" = collector ] && a0=$(xadded)
    rc0=$(redis_cpu); c0=$(cpu_ticks "$pid"); k0=$(core_stat)
    run_wrk "$t" "$DURATION" "$w"
    k1=$(core_stat); cw=$(cpu_ticks "$pid")
    sleep "$SETTLE"
    c1=$(cpu_ticks "$pid"); rc1=$(redis_cpu)
    h1=$(work_count "$t"); a1=""; [ "$t" = collector ] && a1=$(xadded)
    if ! kill -0 "$pid" 2>/dev/null; then
        say "bench: !!! $t (pid $pid) DIED during round $r"; tail -20 "$w" >&2
        [ "$t" = collector ] && { tail -20 "$TMP/collector/collector.log" >&2; COLL_OK=0; COLL_WHY="collector died during round $r"; }
        [ "$t" = nginx ] && NGINX_OK=0
        return 1
    fi
    awk -v r="$r" -v t="$t" -v h0="$h0" -v h1="$h1" -v c0="$c0" -v c1="$c1" -v rc0="$rc0" -v rc1="$rc1" \
        -v a0="${a0:-0}" -v a1="${a1:-0}" -v tck="$CLK_TCK" -v cw="$cw" -v k0="$k0" -v k1="$k1" '
        / requests in /            { req = $1 }
        /^Requests\/sec:/          { rps = $2 }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        /Socket errors:/           { gsub(",", ""); serr = $4 + $6 + $8 + $10 }
        END {
            hits = h1 - h0; ticks = c1 - c0
            us = hits > 0 ? ticks * 1e6 / tck / hits : -1
            rus = (t == "collector" && hits > 0) ? (rc1 - rc0) * 1e6 / hits : -1
            split(k0, x); split(k1, y)
            srv = (y[2] - x[2]) > 0 ? 100 * (cw - c0) / (y[2] - x[2]) : -1
            b0 = (y[2] - x[2]) > 0 ? 100 * (y[1] - x[1]) / (y[2] - x[2]) : -1
            b1 = (y[4] - x[4]) > 0 ? 100 * (y[3] - x[3]) / (y[4] - x[4]) : -1
            printf "%s %s %d %.0f %d %d %d %d %.2f %.2f %d %.0f %.0f %.0f\n", r, t, req, rps, bad, serr, hits, ticks, us, rus, a1 - a0, srv, b0, b1
        }' "$w" >> "$TMP/results"
    tail -1 "$TMP/results" | awk '{
        printf "  round %s %-9s %8d req %7.0f req/s  non-2xx %d  sockerr %d  stored %8d  %4d ticks  %6.2f us/hit", $1, $2, $3, $4, $5, $6, $7, $8, $9
        o = $13 - $12; if (o < 0) o = 0
        printf "  server %3d%% of core %s (others %d%%), load core %3d%%", $12, "'"$SERVER_CPU"'", o, $14
        if ($2 == "collector") printf "  (redis %.2f us/hit)", $10
        printf "\n" }' >&2
}

# ---------------------------------------------------------------- rounds
say "bench: redis :$REDIS_PORT (core $LOAD_CPU)$( [ $NGINX_OK = 1 ] && echo ", nginx :$NGINX_PORT worker $NGINX_WORKER (core $SERVER_CPU)")$( [ $COLL_OK = 1 ] && echo ", collector :$COLL_PORT pid $COLL_PID (core $SERVER_CPU)"); wrk -t1 -c$CONNS -d$DURATION (core $LOAD_CPU)"
: > "$TMP/results"
# How busy the machine is before we load it (other sessions, builds, tests).
k0=$(core_stat); sleep 1; k1=$(core_stat)
IDLE_NOTE=$(awk -v k0="$k0" -v k1="$k1" -v a="$SERVER_CPU" -v b="$LOAD_CPU" 'BEGIN { split(k0, x); split(k1, y)
    b0 = (y[2] - x[2]) > 0 ? 100 * (y[1] - x[1]) / (y[2] - x[2]) : 0
    b1 = (y[4] - x[4]) > 0 ? 100 * (y[3] - x[3]) / (y[4] - x[4]) : 0
    printf "before the loads, with nothing of ours running: core %s %.0f%% busy, core %s %.0f%% busy", a, b0, b, b1
    if (b0 > 15 || b1 > 15) printf " -- the machine is shared right now; expect noise" }')
say "bench: $IDLE_NOTE"
say "bench: warm-up (2 s each, not counted)"
[ $COLL_OK = 1 ] && run_wrk collector 2s "$TMP/wrk.collector.warm.txt"
[ $NGINX_OK = 1 ] && run_wrk nginx 2s "$TMP/wrk.nginx.warm.txt"
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

# ---------------------------------------------------------------- strace -c (extra loads)
strace_one() {   # target
    t=$1 pid=$(pid_of "$1")
    s=$TMP/strace.$t.txt
    strace -c -f -p "$pid" -o "$s" 2>/dev/null &
    spid=$!; PIDS="$PIDS $spid"
    sleep 0.5
    h0=$(work_count "$t")
    run_wrk "$t" 2s "$TMP/wrk.$t.strace.txt"
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
        }' "$s" >> "$TMP/strace.sum"
}
if [ "$DO_STRACE" = 1 ] && command -v strace >/dev/null 2>&1; then
    say "bench: strace -c -f during one extra 2 s load per server (not counted above)"
    : > "$TMP/strace.sum"
    [ $COLL_OK = 1 ] && strace_one collector
    [ $NGINX_OK = 1 ] && strace_one nginx
fi

# Redis commands per stored hit over the whole run (warm-up, probes and strace loads too)
if [ $COLL_OK = 1 ]; then
    # one stored hit, to see what the collector did with a request (fields, enrichment)
    rcli XREVRANGE 'fs:{example.com}:hits' + - COUNT 1 | tr -d '\r' \
        | awk 'NR == 1 { printf "sample stored hit:"; next } NR % 2 == 0 { k = $0; next } { printf " %s=%s", k, $0 } END { print "" }' > "$TMP/sample.hit"
    rcli INFO commandstats | tr -d '\r' > "$TMP/redis.commandstats"
    total_hits=$(xadded); [ -n "$total_hits" ] || total_hits=$(xlen)
    awk -F'[:,=]' -v hits="$total_hits" '/^cmdstat_/ { sub("cmdstat_", "", $1); c[$1] = $3; tot += $3 }
        END {
            if (hits <= 0) exit
            line = sprintf("redis commands per stored hit (whole run, %d hits): %.2f, of which", hits, tot / hits)
            for (k = 0; k < 6; k++) {
                best = ""; for (s in c) if (best == "" || c[s] > c[best]) best = s
                if (best == "" || c[best] / hits < 0.001) break
                line = line sprintf(" %s %.3f", best, c[best] / hits); delete c[best]
            }
            print line
        }' "$TMP/redis.commandstats" > "$TMP/redis.sum"
fi

# ---------------------------------------------------------------- perf (optional)
perf_one() {   # target
    t=$1 pid=$(pid_of "$1")
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d4s -s "$TMP/$t.lua" "$(url_of "$t")" > "$TMP/wrk.$t.perf.txt" 2>&1 &
    wpid=$!; PIDS="$PIDS $wpid"
    sleep 0.5
    taskset -c "$LOAD_CPU" perf record -q -F 2999 -p "$pid" -o "$TMP/perf.$t.data" -- sleep 3 > /dev/null 2>&1
    wait "$wpid"
    { echo "$t: perf, share of samples by object (3 s under load):"
      perf report -q -i "$TMP/perf.$t.data" --stdio --sort dso 2>/dev/null \
        | grep -E '^ +[0-9.]+%' | head -8 | sed 's/ *$//'
      echo "$t: top symbols:"
      perf report -q -i "$TMP/perf.$t.data" --stdio --sort dso,symbol 2>/dev/null \
        | grep -E '^ +[0-9.]+%' | head -"${BENCH_PERF_TOP:-20}" | sed 's/[ -]*$//'; } >> "$TMP/perf.sum"
}
if [ "${BENCH_PERF:-0}" = 1 ] && command -v perf >/dev/null 2>&1; then
    say "bench: perf record during one extra load per server (not counted above)"
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
col() {   # target field -> values
    awk -v t="$1" -v f="$2" '$2 == t && $9 >= 0 { print $f }' "$TMP/results"
}
ratios() {
    awk '$2 == "collector" && $9 > 0 { c[$1] = $9 } $2 == "nginx" && $9 > 0 { n[$1] = $9 }
         END { for (r in c) if (r in n) printf "%.4f\n", c[r] / n[r] }' "$TMP/results"
}
row() {   # label values-stats format
    # shellcheck disable=SC2086 # $2 is "median min max n", split on purpose
    set -- "$1" $2 "$3"
    if [ "$5" = 0 ]; then printf '%-34s %10s\n' "$1" "n/a"
    else printf "%-34s $6 $6 $6\n" "$1" "$2" "$3" "$4"; fi
}

{
    echo "Fairstat bench -- $(date -u '+%Y-%m-%d %H:%M:%SZ')  git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- collector common 2>/dev/null || echo '+dirty')"
    echo "servers on core $SERVER_CPU; wrk -t1 -c$CONNS -d$DURATION and redis on core $LOAD_CPU; $ROUNDS rounds, order alternating; CLK_TCK $CLK_TCK"
    echo "$IDLE_NOTE"
    echo "collector threads=1, GeoIP2-City-Test; nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') empty_gif + access_log buffer=256k"
    echo ""
    printf '%-34s %10s %10s %10s\n' "" median min max
    row "collector CPU us per stored hit" "$(col collector 9 | stats)" "%10.2f"
    row "nginx     CPU us per logged hit" "$(col nginx 9 | stats)" "%10.2f"
    row "RATIO collector/nginx (per round)" "$(ratios | stats)" "%10.2f"
    row "redis-server CPU us per hit" "$(col collector 10 | stats)" "%10.2f"
    row "collector requests/s (wrk)" "$(col collector 4 | stats)" "%10.0f"
    row "nginx     requests/s (wrk)" "$(col nginx 4 | stats)" "%10.0f"
    echo ""
    row "collector busy, % of its core" "$(col collector 12 | stats)" "%10.0f"
    row "nginx     busy, % of its core" "$(col nginx 12 | stats)" "%10.0f"
    echo ""
    echo "per round: target     requests    stored/logged  non-2xx sock-err  ticks   us/hit  server%  others-on-its-core%  load-core%"
    sort -k1,1n -k2,2 "$TMP/results" | awk '{ o = $13 - $12; if (o < 0) o = 0
        printf "  %5s    %-9s %9d  %9d (%5.1f%%) %7d %7d  %6d  %7.2f  %6d%%  %19d%%  %9d%%\n", $1, $2, $3, $7, $3 ? 100 * $7 / $3 : 0, $5, $6, $8, $9, $12, o, $14 }'
    if [ -s "$TMP/redis.sum" ]; then echo ""; cat "$TMP/redis.sum"; fi
    if [ -s "$TMP/sample.hit" ]; then cat "$TMP/sample.hit"; fi
    if [ -s "$TMP/perf.sum" ]; then echo ""; sed 's/^/  /' "$TMP/perf.sum"; fi
    if [ -s "$TMP/strace.sum" ]; then echo ""; echo "syscalls (strace -c -f, separate 2 s load):"; sed 's/^/  /' "$TMP/strace.sum"; fi
    # loud flags
    awk -v ok="$COLL_OK" '
        $2 == "collector" { cb += $5; cs += $6; creq += $3; chit += $7; if ($11 != $7) trim = 1 }
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
        }' "$TMP/results"
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

mkdir -p "$ROOT/var"
cp "$TMP/summary" "$OUT"
echo ""
cat "$TMP/summary"
echo ""
echo "(written to ${OUT#"$ROOT"/})"
case " $TARGETS " in *" collector "*) [ $COLL_OK = 1 ] || exit 1 ;; esac
exit 0
