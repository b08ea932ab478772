-- leaderboard/window: a window of the board, the top n or n above and n below a member.
-- KEYS[1] scores zset, KEYS[2] distinct-scores zset
-- ARGV[1] "top" | "around", ARGV[2] member (for "around"), ARGV[3] n (0 .. 2^52),
-- ARGV[4] "ordinal" | "competition" | "dense"
-- Reply: {first 0-based position, members strictly above the first row (competition) or
-- distinct scores above it (dense), {member, score, ...}}, or nil for an unknown member.

local n = tonumber(ARGV[3])
local start, stop = 0, n - 1
if ARGV[1] == 'around' then
  local pos = redis.call('ZREVRANK', KEYS[1], ARGV[2])
  if not pos then return false end
  start = math.max(0, pos - n)
  stop = pos + n
end
local items = redis.call('ZREVRANGE', KEYS[1], start, stop, 'WITHSCORES')
local above = 0
if #items > 0 and ARGV[4] ~= 'ordinal' then
  local key = KEYS[1]
  if ARGV[4] == 'dense' then key = KEYS[2] end
  above = redis.call('ZCOUNT', key, '(' .. items[2], '+inf')
end
return {start, above, items}
