-- erase.lua -- a visitor's buffered hits counted or erased, with the receipt
-- and the audit record, in one atomic step (see erase.h for KEYS and ARGV).
-- Returns {hits, recorded}: hits counted (or erased), recorded 1 when the
-- withdrawal receipt and the audit record were written.
local mode = tonumber(ARGV[ERASE_ARG_MODE])
local hits, consent, audit = KEYS[ERASE_KEY_HITS], KEYS[ERASE_KEY_CONSENT], KEYS[ERASE_KEY_AUDIT]
local receipt = ARGV[ERASE_ARG_RECEIPT]
local erase = mode ~= ERASE_COUNT

-- The receipt's visitor hashes: hex as the field-per-value entries of
-- earlier versions hold them, binary as the packed entries do (rawhit.h).
local mine, mine_packed = {}, {}
for i = ERASE_ARG_HASHES, #ARGV do
  mine[ARGV[i]] = true
  mine_packed[(ARGV[i]:gsub('..', function(h) return string.char(tonumber(h, 16)) end))] = true
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

-- Walks stream in pages; each(page) gets the entries of one page and returns
-- true to stop the walk.
local function walk(stream, each)
  local last = '-'
  while true do
    local page = redis.call('XRANGE', stream, last, '+', 'COUNT', ERASE_PAGE)
    if #page == 0 or each(page) then return end
    last = '(' .. page[#page][1]
  end
end

local n = 0
walk(hits, function(page)
  local ids = {}
  for _, e in ipairs(page) do
    if is_mine(e[2]) then ids[#ids + 1] = e[1] end
  end
  n = n + #ids
  if erase and #ids > 0 then
    -- Acknowledged too: an entry the aggregator has read but not applied
    -- would otherwise stay pending, pointing at nothing. XACK answers 0
    -- when the group does not exist yet.
    redis.call('XACK', hits, KEYS_GROUP, unpack(ids))
    redis.call('XDEL', hits, unpack(ids))
  end
  return false
end)
if not erase then return {n, 0} end

if mode == ERASE_IF_KNOWN and n == 0 then
  local known = false
  walk(consent, function(page)
    for _, e in ipairs(page) do
      if field(e[2], RECEIPT_ID) == receipt then known = true end
    end
    return known
  end)
  if not known then return {n, 0} end
end

local t, site = ARGV[ERASE_ARG_TIME], ARGV[ERASE_ARG_SITE]
redis.call('XADD', consent, '*', RECEIPT_ID, receipt, RECEIPT_ACTION, ARGV[ERASE_ARG_ACTION],
           RECEIPT_CHOICE, '0', RECEIPT_TIME, t)
redis.call('XADD', audit, '*', 'action', ARGV[ERASE_ARG_ACTION], 'by', ARGV[ERASE_ARG_BY],
           'site', site, 'hits', n, 't', t)
return {n, 1}
