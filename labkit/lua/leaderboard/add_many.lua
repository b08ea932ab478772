-- leaderboard/add_many: set many scores at once (a bulk load), atomically for this batch.
-- KEYS[1] scores zset, KEYS[2] distinct-scores zset, KEYS[3] score -> member-count hash
-- ARGV[1], ARGV[2], ...: member, score, member, score, ... (each member at most once)
-- Reply: how many members were new to the board.
-- Old and new scores are read with ZMSCORE (Redis 6.2+) in chunks of 1000 (unpack has a
-- stack limit), and each changed score's count is updated once; a server without ZMSCORE
-- gets one ZSCORE per member.

local probe = redis.pcall('ZMSCORE', KEYS[1], '')
local has_zmscore = not probe.err
local function scores_of(members)
  if has_zmscore then return redis.call('ZMSCORE', KEYS[1], unpack(members)) end
  local out = {}
  for i = 1, #members do out[i] = redis.call('ZSCORE', KEYS[1], members[i]) end
  return out
end
local added, delta = 0, {}
local total = #ARGV / 2
for first = 1, total, 1000 do
  local last = math.min(total, first + 999)
  local members, pairs_ = {}, {}
  for i = first, last do
    members[#members + 1] = ARGV[2 * i - 1]
    pairs_[#pairs_ + 1] = ARGV[2 * i]
    pairs_[#pairs_ + 1] = ARGV[2 * i - 1]
  end
  local old = scores_of(members)
  added = added + redis.call('ZADD', KEYS[1], unpack(pairs_))
  local new = scores_of(members)
  for i = 1, #members do
    if old[i] ~= new[i] then
      if old[i] then delta[old[i]] = (delta[old[i]] or 0) - 1 end
      delta[new[i]] = (delta[new[i]] or 0) + 1
    end
  end
end
for score, d in pairs(delta) do
  if d ~= 0 then
    local count = redis.call('HINCRBY', KEYS[3], score, d)
    if count <= 0 then
      redis.call('HDEL', KEYS[3], score)
      redis.call('ZREM', KEYS[2], score)
    elseif count == d then
      redis.call('ZADD', KEYS[2], score, score)
    end
  end
end
return added
