-- Claim pending entries for one consumer; dead-letter those delivered too often.
-- uses: stream_dead_letter
-- KEYS[1] stream, KEYS[2] dead-letter stream (same hash tag)
-- ARGV[1] group, ARGV[2] consumer,
-- ARGV[3] mode: 'own' (this consumer's pending entries, oldest first) or 'stale' (any
--         consumer's entries idle >= ARGV[4] ms, via XAUTOCLAIM ... JUSTID),
-- ARGV[4] min idle ms, ARGV[5] count,
-- ARGV[6] start: 'own' an XPENDING lower bound ('-' or '(id'); 'stale' an XAUTOCLAIM cursor,
-- ARGV[7] max deliveries.
-- Reply: {entries, dead_lettered, trimmed, next_start}; entries = {{id, fields, deliveries}},
-- next_start '' when there is nothing further.
-- An entry already delivered ARGV[7] times is moved to KEYS[2] instead of being claimed. An
-- entry trimmed from the stream while pending is acked and counted in `trimmed`, in both
-- modes and whatever its delivery count (XAUTOCLAIM on Redis >= 7 drops such entries from
-- the PEL itself and lists them in its third reply element: they are counted too).

local stream, dead, group = KEYS[1], KEYS[2], ARGV[1]
local consumer, mode = ARGV[2], ARGV[3]
local min_idle, count, start = ARGV[4], tonumber(ARGV[5]), ARGV[6]
local max_deliveries = tonumber(ARGV[7])
local ids, next_start, trimmed = {}, '', 0
if mode == 'stale' then
  local res = redis.call('XAUTOCLAIM', stream, group, consumer, min_idle, start,
                         'COUNT', count, 'JUSTID')
  next_start = res[1]
  ids = res[2]
  if res[3] then trimmed = #res[3] end
  if next_start == '0-0' then next_start = '' end
else
  local rows = redis.call('XPENDING', stream, group, start, '+', count, consumer)
  for i, row in ipairs(rows) do ids[i] = row[1] end
  if #ids > 0 then next_start = '(' .. ids[#ids] end
end
local out, dead_lettered = {}, 0
for _, id in ipairs(ids) do
  local row = redis.call('XPENDING', stream, group, id, id, 1)[1]
  if row then
    local n = tonumber(row[4])
    if drop_if_trimmed(stream, group, id) then
      trimmed = trimmed + 1
    elseif n >= max_deliveries then
      dead_letter_or_drop(stream, dead, group, id, row[2], n,
                          'not acked after ' .. n .. ' deliveries')
      dead_lettered = dead_lettered + 1
    else
      local claimed = redis.call('XCLAIM', stream, group, consumer, 0, id)[1]
      out[#out + 1] = {claimed[1], claimed[2], n + 1}
    end
  end
end
return {out, dead_lettered, trimmed, next_start}
