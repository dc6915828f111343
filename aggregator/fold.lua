-- fold.lua -- the fold's Redis half: one batch applied in one atomic step.
--
-- fold.c has summed the batch: counter deltas per (key, member), new members
-- per HyperLogLog, the visit states it changed (layout of KEYS and ARGV in
-- fold.h; luagen prepends its constants to this file). This script applies
-- that, or nothing. The aggregator sends it inside the MULTI/EXEC of
-- fold_block (fold.h), after a check that runs these checks first, with the
-- visit states, the PFADDs and the expiries left out of its arguments and
-- sent as plain commands after it in the same transaction:
--
--   * the cursor must still be where the batch began: otherwise another
--     aggregator (or this one, before a crash) counted the range already;
--   * no entry may have left the stream since the range was read (a
--     withdrawal or a purge): entries-added minus length moves only when an
--     entry is deleted, so comparing both with their values at read time
--     tells, in O(1), without walking the range;
--   * no visitor may have been withdrawn since the batch was counted (the
--     withdrawn set's generation): fold.c dropped the hits of the visitors
--     withdrawn when it read, and must drop a newly withdrawn one's too;
--   * then it adds (and, called as one script, fold_argv, writes the visit
--     states, the PFADDs and the expiries), moves the cursor to the
--     batch's last id and trims the stream up to it -- the dropped hits of
--     withdrawn visitors with the rest, never counted, and an audit record
--     says how many.
--
-- Redis runs a transaction to its end before serving anyone else and logs
-- its effects as one block, so a batch is counted and its raw entries
-- deleted together, once. Its cost grows with the distinct keys and members of the
-- batch, not with its hits.

local stream, cursor = KEYS[FOLD_KEY_STREAM], KEYS[FOLD_KEY_CURSOR]
if (redis.call('GET', cursor) or '') ~= ARGV[FOLD_ARGV_EXPECT] then
  return {FOLD_MOVED}
end

local info = redis.call('XINFO', 'STREAM', stream)
local length, added
for i = 1, #info, 2 do
  if info[i] == 'length' then length = info[i + 1]
  elseif info[i] == 'entries-added' then added = info[i + 1] end
end
if added - tonumber(ARGV[FOLD_ARGV_ADDED]) ~= length - tonumber(ARGV[FOLD_ARGV_LENGTH]) then
  return {FOLD_DELETED}
end
if (redis.call('GET', KEYS[FOLD_KEY_GEN]) or '') ~= ARGV[FOLD_ARGV_GEN] then
  return {FOLD_WITHDRAWN}
end

-- Long argument lists go in slices: Lua's unpack has a stack limit.
local SLICE = 1000
local i = FOLD_ARGV_FIRST_GROUP

-- Counters, one group per hash. Which member a count goes to (caps
-- included) was decided in C; a member taken to zero (an exit page the visit
-- moved away from) goes.
for _ = 1, tonumber(ARGV[FOLD_ARGV_NINCR]) do
  local key, n = KEYS[tonumber(ARGV[i + FOLD_IG_KEY])], tonumber(ARGV[i + FOLD_IG_COUNT])
  for j = i + FOLD_IG_HEAD, i + FOLD_IG_HEAD + 2 * n - 1, 2 do
    local delta = ARGV[j + 1]
    if redis.call('HINCRBY', key, ARGV[j], delta) <= 0 and tonumber(delta) < 0 then
      redis.call('HDEL', key, ARGV[j])
    end
  end
  i = i + FOLD_IG_HEAD + 2 * n
end

-- HyperLogLogs (PFADD), then sets (SADD): one call per key.
for _, verb in ipairs({{'PFADD', FOLD_ARGV_NPF}, {'SADD', FOLD_ARGV_NSADD}}) do
  for _ = 1, tonumber(ARGV[verb[2]]) do
    local key, n = KEYS[tonumber(ARGV[i + FOLD_AG_KEY])], tonumber(ARGV[i + FOLD_AG_COUNT])
    local from = i + FOLD_AG_HEAD
    for j = from, from + n - 1, SLICE do
      redis.call(verb[1], key, unpack(ARGV, j, math.min(j + SLICE - 1, from + n - 1)))
    end
    i = from + n
  end
end

-- HyperLogLogs whose members were thousands: their registers as one dense
-- HyperLogLog (hll.h), merged -- the maximum of each register, as PFADD
-- would have set -- or set, when the key is new.
for _ = 1, tonumber(ARGV[FOLD_ARGV_NMERGE]) do
  local key, hll = KEYS[tonumber(ARGV[i + FOLD_MG_KEY])], ARGV[i + FOLD_MG_HLL]
  if redis.call('EXISTS', key) == 0 then
    redis.call('SET', key, hll)
  else
    redis.call('SET', KEYS[FOLD_KEY_MERGE], hll)
    redis.call('PFMERGE', key, KEYS[FOLD_KEY_MERGE])
    redis.call('DEL', KEYS[FOLD_KEY_MERGE])
  end
  i = i + FOLD_MG_HEAD
end

-- Visit states, one HSET per day's hash.
for _ = 1, tonumber(ARGV[FOLD_ARGV_NVISIT]) do
  local key, at = KEYS[tonumber(ARGV[i + FOLD_VG_KEY])], ARGV[i + FOLD_VG_AT]
  local n = tonumber(ARGV[i + FOLD_VG_COUNT])
  local from = i + FOLD_VG_HEAD
  for j = from, from + 2 * n - 1, 2 * SLICE do
    redis.call('HSET', key, unpack(ARGV, j, math.min(j + 2 * SLICE - 1, from + 2 * n - 1)))
  end
  redis.call('PEXPIREAT', key, at)
  i = from + 2 * n
end

-- Expiries (the realtime HyperLogLogs), after their PFADDs.
for _ = 1, tonumber(ARGV[FOLD_ARGV_NEXPIRE]) do
  redis.call('PEXPIREAT', KEYS[tonumber(ARGV[i + FOLD_EG_KEY])], ARGV[i + FOLD_EG_AT])
  i = i + FOLD_EG_HEAD
end

redis.call('SET', cursor, ARGV[FOLD_ARGV_LAST])
redis.call('XTRIM', stream, 'MINID', ARGV[FOLD_ARGV_TRIM])

-- Withdrawn visitors: their hits of this range went with the trim, uncounted.
local now = ARGV[FOLD_ARGV_NOW]
if tonumber(ARGV[FOLD_ARGV_DROPPED]) > 0 then
  redis.call('XADD', KEYS[FOLD_KEY_AUDIT], '*', 'action', 'drop', 'by', 'aggregator',
             'site', ARGV[FOLD_ARGV_SITE], 'hits', ARGV[FOLD_ARGV_DROPPED], 't', now)
end
-- Entries past their time: no raw hit of their day can be left.
redis.call('ZREMRANGEBYSCORE', KEYS[FOLD_KEY_WITHDRAWN], '-inf', '(' .. now)
return {FOLD_APPLIED}
