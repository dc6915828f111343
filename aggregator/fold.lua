-- fold.lua -- the fold's Redis half: one batch applied in one atomic step.
--
-- fold.c has summed the batch: counter deltas per (key, member), new members
-- per HyperLogLog, the visit states it changed (layout of KEYS and ARGV in
-- fold.h; luagen prepends its constants to this file). This script applies
-- that, or nothing:
--
--   * the cursor must still be where the batch began: otherwise another
--     aggregator (or this one, before a crash) counted the range already;
--   * no entry may have left the stream since the range was read (a
--     withdrawal or a purge): entries-added minus length moves only when an
--     entry is deleted, so comparing both with their values at read time
--     tells, in O(1), without walking the range;
--   * then it adds, writes the visit states, moves the cursor to the batch's
--     last id and trims the stream up to it.
--
-- Redis runs a script to its end before serving anyone else and logs its
-- effects as one block, so a batch is counted and its raw entries deleted
-- together, once. Its cost grows with the distinct keys and members of the
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

local i = FOLD_ARGV_FIRST_OP
for _ = 1, tonumber(ARGV[FOLD_ARGV_NINCR]) do
  local key, member = KEYS[tonumber(ARGV[i + FOLD_INCR_KEY])], ARGV[i + FOLD_INCR_MEMBER]
  local delta = ARGV[i + FOLD_INCR_DELTA]
  -- A member taken below zero (an exit page the visit moved away from) goes.
  if redis.call('HINCRBY', key, member, delta) <= 0 and tonumber(delta) < 0 then
    redis.call('HDEL', key, member)
  end
  i = i + FOLD_INCR_WIDTH
end

-- Long argument lists go in slices: Lua's unpack has a stack limit.
local SLICE = 1000
for _ = 1, tonumber(ARGV[FOLD_ARGV_NPF]) do
  local key, n = KEYS[tonumber(ARGV[i])], tonumber(ARGV[i + 1])
  local from = i + 2
  for j = from, from + n - 1, SLICE do
    redis.call('PFADD', key, unpack(ARGV, j, math.min(j + SLICE - 1, from + n - 1)))
  end
  i = from + n
end

for _ = 1, tonumber(ARGV[FOLD_ARGV_NVISIT]) do
  local key, at, n = KEYS[tonumber(ARGV[i])], ARGV[i + 1], tonumber(ARGV[i + 2])
  local from = i + 3
  for j = from, from + 2 * n - 1, 2 * SLICE do
    redis.call('HSET', key, unpack(ARGV, j, math.min(j + 2 * SLICE - 1, from + 2 * n - 1)))
  end
  redis.call('PEXPIREAT', key, at)
  i = from + 2 * n
end

redis.call('SET', cursor, ARGV[FOLD_ARGV_LAST])
redis.call('XTRIM', stream, 'MINID', ARGV[FOLD_ARGV_TRIM])
return {FOLD_APPLIED}
