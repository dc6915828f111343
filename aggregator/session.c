/* session.c -- the apply script: exactly-once counting and visits, in Redis.
 *
 * The script is the only writer of aggregates and session state. It runs once
 * per fold batch (layout in fold.h), atomically: Redis executes a script to
 * the end before serving anyone else and, with AOF, logs its effects as one
 * MULTI/EXEC block, so after any crash either the whole batch was counted and
 * its raw entries deleted, or none of it was and the entries are still
 * pending for XAUTOCLAIM. It counts a hit only if its entry is still pending
 * for the group and still in the stream (XCLAIM JUSTID tells which), then
 * acknowledges and deletes every entry of the batch: a replay finds the
 * entries acknowledged, and a hit withdrawn (DELETE /consent, forget) or
 * purged after it was read finds its entry gone. Keys it learns from session
 * state (the hashes of the day a visit began) belong to the same site, so to
 * the same Cluster slot.
 */
#include "session.h"

const char session_script[] =
    "local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]\n"
    "local idle = tonumber(ARGV[3])\n"
    "local n = tonumber(ARGV[4])\n"
    /* Numbers go back to Redis as integer strings: its own conversion may
     * choose an exponent for 13-digit millisecond times. */
    "local fmt = string.format\n"
    /* Counter deltas, HyperLogLog members and session states are gathered in
     * Lua tables and written once per key at the end: a batch of 500 hits on
     * one day then costs a few dozen writes instead of thousands. The script
     * is atomic either way, so this changes no result. */
    "local incr, pf, sess, ttls = {}, {}, {}, {}\n"
    "local function add(k, m, d)\n"
    "  local t = incr[k]\n"
    "  if not t then t = {}; incr[k] = t end\n"
    "  t[m] = (t[m] or 0) + d\n"
    "end\n"
    /* Session state is a string "first\nlast\npageviews\ntotals-key\nexit-key\n
     * exit-page" rather than a hash, so that one MGET reads every visitor of
     * the batch and one SET ... PX writes each back: two calls per visitor
     * fewer than HMGET + HSET + PEXPIRE. */
    "local function state(sk)\n"
    "  local s = sess[sk]\n"
    "  if s == nil then\n"
    "    s = false\n"
    "    sess[sk] = s\n"
    "  end\n"
    "  return s\n"
    "end\n"
    "local function preload(keys)\n"
    "  if #keys == 0 then return end\n"
    "  local vals = redis.call('MGET', unpack(keys))\n"
    "  for j, k in ipairs(keys) do\n"
    "    local v = vals[j]\n"
    "    if v then\n"
    "      local f, l, pv, tk, xk, x = string.match(v, '^(%d+)\\n(%d+)\\n(%d+)\\n([^\\n]*)\\n([^\\n]*)\\n(.*)$')\n"
    "      if f then\n"
    "        sess[k] = {f = tonumber(f), l = tonumber(l), n = tonumber(pv), tk = tk, xk = xk, x = x}\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    /* Which entries are still pending for the group and still in the
     * stream: XCLAIM (min idle 0, JUSTID) returns exactly those, and drops
     * from the pending list the ones deleted meanwhile. Then all are
     * acknowledged and deleted: three calls per batch, not two per hit. */
    "local ids, at, sk, seen = {}, {}, {}, {}\n"
    "local i = 5\n"
    "for e = 1, n do\n"
    "  ids[e], at[e] = ARGV[i], i\n"
    "  local si = tonumber(ARGV[i + 3])\n"
    "  if si > 0 and not seen[si] then seen[si] = true; sk[#sk + 1] = KEYS[si] end\n"
    "  i = i + 10 + 3 * tonumber(ARGV[i + 8]) + 2 * tonumber(ARGV[i + 9])\n"
    "end\n"
    "local valid = {}\n"
    "for j = 1, n, 1000 do\n"
    "  local last = math.min(j + 999, n)\n"
    "  local claim = {stream, group, consumer, '0'}\n"
    "  for e = j, last do claim[#claim + 1] = ids[e] end\n"
    "  claim[#claim + 1] = 'JUSTID'\n"
    "  for _, id in ipairs(redis.call('XCLAIM', unpack(claim))) do valid[id] = true end\n"
    "  redis.call('XACK', stream, group, unpack(ids, j, last))\n"
    "  redis.call('XDEL', stream, unpack(ids, j, last))\n"
    "end\n"
    "for j = 1, #sk, 1000 do preload({unpack(sk, j, math.min(j + 999, #sk))}) end\n"
    "local counted, skipped = 0, 0\n"
    "for e = 1, n do\n"
    "  i = at[e]\n"
    "  local id, kind = ARGV[i], ARGV[i + 2]\n"
    "  local t = tonumber(ARGV[i + 1])\n"
    "  local si, ti, xi = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])\n"
    "  local page, ttl, nops = ARGV[i + 6], tonumber(ARGV[i + 7]), tonumber(ARGV[i + 8])\n"
    "  local o = i + 10\n"
    "  if valid[id] and kind ~= 'X' then\n"
    "    counted = counted + 1\n"
    "    local new = false\n"
    "    if kind == 'P' then\n"
    "      if si == 0 then\n"
    "        new = true\n"
    "      else\n"
    "        local sk = KEYS[si]\n"
    "        local s = state(sk)\n"
    "        if not s or t > s.l + idle then\n"
    "          new = true\n"
    "          sess[sk] = {f = t, l = t, n = 1, x = page, tk = KEYS[ti], xk = KEYS[xi]}\n"
    "          ttls[sk] = ttl\n"
    "        elseif t < s.f - idle then\n"
    /* A straggler from long before the current visit: a visit of its own,
     * leaving the current one alone. */
    "          new = true\n"
    "        else\n"
    "          s.n = s.n + 1\n"
    "          if s.n == 2 then add(s.tk, 'bounces', -1) end\n"
    "          local nf, nl = math.min(s.f, t), math.max(s.l, t)\n"
    "          local grow = (nl - nf) - (s.l - s.f)\n"
    "          if grow > 0 then add(s.tk, 'duration_ms', grow) end\n"
    "          if t >= s.l and s.x ~= page then\n"
    "            add(s.xk, s.x, -1)\n"
    "            add(s.xk, page, 1)\n"
    "            s.x = page\n"
    "          end\n"
    "          s.f, s.l = nf, nl\n"
    "          ttls[sk] = ttl\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "    for k = o, o + 3 * nops - 1, 3 do\n"
    "      if ARGV[k] == 'h' then\n"
    "        add(KEYS[tonumber(ARGV[k + 1])], ARGV[k + 2], 1)\n"
    "      else\n"
    "        local key = KEYS[tonumber(ARGV[k + 1])]\n"
    "        local set = pf[key]\n"
    "        if not set then set = {}; pf[key] = set end\n"
    "        set[ARGV[k + 2]] = true\n"
    "      end\n"
    "    end\n"
    "    if new then\n"
    "      local v = o + 3 * nops\n"
    "      for k = v, v + 2 * tonumber(ARGV[i + 9]) - 1, 2 do\n"
    "        add(KEYS[tonumber(ARGV[k])], ARGV[k + 1], 1)\n"
    "      end\n"
    "    end\n"
    "  else\n"
    "    skipped = skipped + 1\n"
    "  end\n"
    "end\n"
    "for k, t in pairs(incr) do\n"
    "  for m, d in pairs(t) do\n"
    "    if d ~= 0 then\n"
    /* An exit page a visit moved away from: drop it at zero. */
    "      if redis.call('HINCRBY', k, m, fmt('%d', d)) <= 0 and d < 0 then redis.call('HDEL', k, m) end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "for k, set in pairs(pf) do\n"
    "  local members = {}\n"
    "  for m in pairs(set) do members[#members + 1] = m end\n"
    "  for j = 1, #members, 1000 do\n"
    "    redis.call('PFADD', k, unpack(members, j, math.min(j + 999, #members)))\n"
    "  end\n"
    "end\n"
    "for k, ttl in pairs(ttls) do\n"
    "  local s = sess[k]\n"
    "  redis.call('SET', k, fmt('%d\\n%d\\n%d\\n%s\\n%s\\n%s', s.f, s.l, s.n, s.tk, s.xk, s.x),\n"
    "             'PX', fmt('%d', ttl))\n"
    "end\n"
    "return {counted, skipped}\n";

int64_t session_ttl_ms(int64_t idle_ms, int64_t t_ms, int64_t now_ms, int64_t max_ms)
{
    int64_t lag = now_ms > t_ms ? now_ms - t_ms : 0;
    int64_t ttl = idle_ms + lag;
    if (ttl > max_ms) ttl = max_ms;
    if (ttl < 1000) ttl = 1000;
    return ttl;
}
