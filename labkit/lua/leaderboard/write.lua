-- leaderboard/write: set or increment one member's score, keeping the dense-rank companions
-- (distinct scores, members per score) in step, atomically.
-- KEYS[1] scores zset, KEYS[2] distinct-scores zset, KEYS[3] score -> member-count hash
-- ARGV[1] member, ARGV[2] score ("set") or delta ("incr"), ARGV[3] "set" | "incr"
-- Reply: the member's new score as Redis formats it, or nil, writing nothing, when an
-- increment would take the score to +-2^53 or beyond, where adjacent integers collapse and
-- an increment by 1 would be lost (ZINCRBY would store it; the sum here is the same double).

local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
local new
if ARGV[3] == 'incr' then
  local sum = tonumber(ARGV[2])
  if old then sum = sum + tonumber(old) end
  if not (sum > -9007199254740992 and sum < 9007199254740992) then return false end
  new = redis.call('ZINCRBY', KEYS[1], ARGV[2], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  new = redis.call('ZSCORE', KEYS[1], ARGV[1])
end
if old ~= new then
  if old then
    if redis.call('HINCRBY', KEYS[3], old, -1) <= 0 then
      redis.call('HDEL', KEYS[3], old)
      redis.call('ZREM', KEYS[2], old)
    end
  end
  if redis.call('HINCRBY', KEYS[3], new, 1) == 1 then
    redis.call('ZADD', KEYS[2], new, new)
  end
end
return new
