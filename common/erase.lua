-- erase.lua -- a visitor's buffered hits counted, or the visitor withdrawn and
-- erased, with the receipt and the audit record, in one atomic step (see
-- erase.h for KEYS and ARGV). Returns {hits, recorded, complete}: hits
-- counted (or erased at once), recorded 1 when the withdrawal receipt and the
-- audit record were written, complete 1 when the stream held no more than
-- ERASE_SCAN entries (the count covers the whole backlog).
--
-- Nothing here walks the raw stream past its newest ERASE_SCAN entries: a
-- withdrawn visitor's older hits are dropped uncounted by the fold (which
-- reads fs:{S}:withdrawn), and purge deletes any left at raw_max_age.
local mode = tonumber(ARGV[ERASE_ARG_MODE])
local hits, consent, audit = KEYS[ERASE_KEY_HITS], KEYS[ERASE_KEY_CONSENT], KEYS[ERASE_KEY_AUDIT]
local receipt = ARGV[ERASE_ARG_RECEIPT]
local erase = mode ~= ERASE_COUNT

-- The receipt's visitor hashes: hex as the field-per-value entries of
-- earlier versions hold them, binary as the packed entries and the withdrawn
-- set do (rawhit.h); each with the time its withdrawn entry may go.
local mine, mine_packed, salts = {}, {}, {}
for i = ERASE_ARG_HASHES, #ARGV - 1, 2 do
  local bin = ARGV[i]:gsub('..', function(h) return string.char(tonumber(h, 16)) end)
  mine[ARGV[i]] = true
  mine_packed[bin] = true
  salts[#salts + 1] = {bin = bin, until_ms = ARGV[i + 1]}
end

-- The value of field name in a stream entry's flat field list, or nil.
local function field(f, name)
  for i = 1, #f, 2 do
    if f[i] == name then return f[i + 1] end
  end
  return nil
end

-- Whether an entry is one of the receipt's hits.
local function is_mine(f)
  if #f == 2 and f[1] == RAWHIT_FIELD then
    local v = f[2]
    return math.floor(v:byte(1) / 64) == RAWHIT_VERSION and
      mine_packed[v:sub(RAWHIT_VISITOR_AT + 1, RAWHIT_VISITOR_AT + RAWHIT_VISITOR_LEN)] ~= nil
  end
  return mine[field(f, HIT_VISITOR)] ~= nil
end

-- The newest ERASE_SCAN raw entries: with an aggregator that keeps up, the
-- whole backlog.
local ids = {}
for _, e in ipairs(redis.call('XREVRANGE', hits, '+', '-', 'COUNT', ERASE_SCAN)) do
  if is_mine(e[2]) then ids[#ids + 1] = e[1] end
end
local n = #ids
local complete = redis.call('XLEN', hits) <= ERASE_SCAN and 1 or 0
if not erase then return {n, 0, complete} end

if mode == ERASE_IF_KNOWN and n == 0 then
  -- forget over every site (the aggregator, never a visitor's request): mark
  -- the receipt only where it was issued.
  local known, last = false, '-'
  while not known do
    local page = redis.call('XRANGE', consent, last, '+', 'COUNT', ERASE_PAGE)
    if #page == 0 then break end
    for _, e in ipairs(page) do
      if field(e[2], RECEIPT_ID) == receipt then known = true end
    end
    last = '(' .. page[#page][1]
  end
  if not known then return {n, 0, complete} end
end

if n > 0 then
  -- Acknowledged too, for an earlier version's consumer group: an entry it
  -- read but did not apply would otherwise stay pending, pointing at nothing.
  -- XACK answers 0 when the group does not exist.
  redis.call('XACK', hits, KEYS_GROUP, unpack(ids))
  redis.call('XDEL', hits, unpack(ids))
end

-- The rest of the visitor's hits, whatever the backlog, are the fold's to drop.
for k, s in ipairs(salts) do
  redis.call('ZADD', KEYS[ERASE_KEY_WITHDRAWN], s.until_ms, s.bin)
  redis.call('HDEL', KEYS[ERASE_KEY_VISITS + k - 1], s.bin)
end
redis.call('INCR', KEYS[ERASE_KEY_GEN])

local t, site = ARGV[ERASE_ARG_TIME], ARGV[ERASE_ARG_SITE]
redis.call('XADD', consent, '*', RECEIPT_ID, receipt, RECEIPT_ACTION, ARGV[ERASE_ARG_ACTION],
           RECEIPT_CHOICE, '0', RECEIPT_TIME, t)
redis.call('XADD', audit, '*', 'action', ARGV[ERASE_ARG_ACTION], 'by', ARGV[ERASE_ARG_BY],
           'site', site, 'hits', n, 't', t)
return {n, 1, complete}
