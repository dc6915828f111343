-- fold.lua -- the fold's Redis half: exactly-once counting and visits.
--
-- The only writer of aggregates and visit state. It runs once per fold batch,
-- its arguments laid out by the enums of fold.h (luagen prepends them to this
-- file as locals, so C and Lua read one declaration), atomically: Redis runs a
-- script to the end before serving anyone else and, with AOF, logs its effects
-- as one MULTI/EXEC block, so after any crash either the whole batch was
-- counted and its raw entries deleted, or none of it was and the entries are
-- still pending for XAUTOCLAIM. It counts a hit only if its entry is still
-- pending for the group and still in the stream (XCLAIM JUSTID tells which),
-- then acknowledges and deletes every entry of the batch: a replay finds the
-- entries acknowledged, and a hit withdrawn (DELETE /consent, forget) or
-- purged after it was read finds its entry gone. Keys it learns from visit
-- state (the hashes of the day a visit began) belong to the same site, so to
-- the same Cluster slot. Time comes from the hits, never from the server
-- clock, so a replayed batch decides alike.

local stream = KEYS[FOLD_KEY_STREAM]
local group, consumer = ARGV[FOLD_ARGV_GROUP], ARGV[FOLD_ARGV_CONSUMER]
local idle = tonumber(ARGV[FOLD_ARGV_IDLE_MS])
local n = tonumber(ARGV[FOLD_ARGV_ENTRIES])
-- Numbers go back to Redis as integer strings: its own conversion may choose
-- an exponent for 13-digit millisecond times.
local fmt = string.format

-- Counter deltas, HyperLogLog members and visit states are gathered in Lua
-- tables and written once per key at the end: a batch of 500 hits on one day
-- then costs a few dozen writes instead of thousands. The script is atomic
-- either way, so this changes no result.
local incr, pf, sess, ttls = {}, {}, {}, {}
local function add(k, m, d)
  local t = incr[k]
  if not t then t = {}; incr[k] = t end
  t[m] = (t[m] or 0) + d
end

-- Visit state is a string "first\nlast\npageviews\ntotals-key\nexit-key\n
-- exit-page" rather than a hash, so that one MGET reads every visitor of the
-- batch and one SET ... PX writes each back: two calls per visitor fewer than
-- HMGET + HSET + PEXPIRE.
local function state(sk)
  local s = sess[sk]
  if s == nil then
    s = false
    sess[sk] = s
  end
  return s
end
local function preload(keys)
  if #keys == 0 then return end
  local vals = redis.call('MGET', unpack(keys))
  for j, k in ipairs(keys) do
    local v = vals[j]
    if v then
      local f, l, pv, tk, xk, x = string.match(v, '^(%d+)\n(%d+)\n(%d+)\n([^\n]*)\n([^\n]*)\n(.*)$')
      if f then
        sess[k] = {f = tonumber(f), l = tonumber(l), n = tonumber(pv), tk = tk, xk = xk, x = x}
      end
    end
  end
end

-- Which entries are still pending for the group and still in the stream:
-- XCLAIM (min idle 0, JUSTID) returns exactly those, and drops from the
-- pending list the ones deleted meanwhile. Then all are acknowledged and
-- deleted: three calls per batch, not two per hit.
local ids, at, sess_keys, seen = {}, {}, {}, {}
local i = FOLD_ARGV_FIRST_ENTRY
for e = 1, n do
  ids[e], at[e] = ARGV[i + FOLD_E_ID], i
  local si = tonumber(ARGV[i + FOLD_E_SESS])
  if si ~= FOLD_KEY_NONE and not seen[si] then seen[si] = true; sess_keys[#sess_keys + 1] = KEYS[si] end
  i = i + FOLD_E_HEAD + FOLD_OP_WIDTH * tonumber(ARGV[i + FOLD_E_NOPS])
        + FOLD_VISIT_WIDTH * tonumber(ARGV[i + FOLD_E_NVISIT])
end
local valid = {}
for j = 1, n, 1000 do
  local last = math.min(j + 999, n)
  local claim = {stream, group, consumer, '0'}
  for e = j, last do claim[#claim + 1] = ids[e] end
  claim[#claim + 1] = 'JUSTID'
  for _, id in ipairs(redis.call('XCLAIM', unpack(claim))) do valid[id] = true end
  redis.call('XACK', stream, group, unpack(ids, j, last))
  redis.call('XDEL', stream, unpack(ids, j, last))
end
for j = 1, #sess_keys, 1000 do
  preload({unpack(sess_keys, j, math.min(j + 999, #sess_keys))})
end

local counted, skipped = 0, 0
for e = 1, n do
  i = at[e]
  local id, kind = ARGV[i + FOLD_E_ID], ARGV[i + FOLD_E_KIND]
  local t = tonumber(ARGV[i + FOLD_E_TIME])
  local si = tonumber(ARGV[i + FOLD_E_SESS])
  local ti, xi = tonumber(ARGV[i + FOLD_E_TOTALS]), tonumber(ARGV[i + FOLD_E_EXIT])
  local page, ttl = ARGV[i + FOLD_E_PAGE], tonumber(ARGV[i + FOLD_E_TTL])
  local nops, nvisit = tonumber(ARGV[i + FOLD_E_NOPS]), tonumber(ARGV[i + FOLD_E_NVISIT])
  local o = i + FOLD_E_HEAD
  if valid[id] and kind ~= FOLD_KIND_SKIP then
    counted = counted + 1
    local new = false
    if kind == FOLD_KIND_PAGEVIEW then
      if si == FOLD_KEY_NONE then
        new = true
      else
        local sk = KEYS[si]
        local s = state(sk)
        if not s or t > s.l + idle then
          new = true
          sess[sk] = {f = t, l = t, n = 1, x = page, tk = KEYS[ti], xk = KEYS[xi]}
          ttls[sk] = ttl
        elseif t < s.f - idle then
          -- A straggler from long before the current visit: a visit of its
          -- own, leaving the current one alone.
          new = true
        else
          s.n = s.n + 1
          if s.n == 2 then add(s.tk, 'bounces', -1) end
          local nf, nl = math.min(s.f, t), math.max(s.l, t)
          local grow = (nl - nf) - (s.l - s.f)
          if grow > 0 then add(s.tk, 'duration_ms', grow) end
          -- A hit inside the visit but earlier than its last (reclaimed late)
          -- does not move the exit page.
          if t >= s.l and s.x ~= page then
            add(s.xk, s.x, -1)
            add(s.xk, page, 1)
            s.x = page
          end
          s.f, s.l = nf, nl
          ttls[sk] = ttl
        end
      end
    end
    for k = o, o + FOLD_OP_WIDTH * nops - 1, FOLD_OP_WIDTH do
      local code = ARGV[k + FOLD_OP_CODE]
      local key, member = KEYS[tonumber(ARGV[k + FOLD_OP_KEY])], ARGV[k + FOLD_OP_MEMBER]
      if code == FOLD_OP_HINCR then
        add(key, member, 1)
      elseif code == FOLD_OP_PFADD then
        local set = pf[key]
        if not set then set = {}; pf[key] = set end
        set[member] = true
      end
    end
    if new then
      local v = o + FOLD_OP_WIDTH * nops
      for k = v, v + FOLD_VISIT_WIDTH * nvisit - 1, FOLD_VISIT_WIDTH do
        add(KEYS[tonumber(ARGV[k + FOLD_VISIT_KEY])], ARGV[k + FOLD_VISIT_MEMBER], 1)
      end
    end
  else
    skipped = skipped + 1
  end
end

for k, t in pairs(incr) do
  for m, d in pairs(t) do
    if d ~= 0 then
      -- An exit page a visit moved away from: drop it at zero.
      if redis.call('HINCRBY', k, m, fmt('%d', d)) <= 0 and d < 0 then redis.call('HDEL', k, m) end
    end
  end
end
for k, set in pairs(pf) do
  local members = {}
  for m in pairs(set) do members[#members + 1] = m end
  for j = 1, #members, 1000 do
    redis.call('PFADD', k, unpack(members, j, math.min(j + 999, #members)))
  end
end
for k, ttl in pairs(ttls) do
  local s = sess[k]
  redis.call('SET', k, fmt('%d\n%d\n%d\n%s\n%s\n%s', s.f, s.l, s.n, s.tk, s.xk, s.x),
             'PX', fmt('%d', ttl))
end

local reply = {}
reply[FOLD_REPLY_COUNTED + 1], reply[FOLD_REPLY_SKIPPED + 1] = counted, skipped
return reply
