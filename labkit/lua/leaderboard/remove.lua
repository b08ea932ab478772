-- leaderboard/remove: remove one member and its share of the dense-rank companions.
-- KEYS[1] scores zset, KEYS[2] distinct-scores zset, KEYS[3] score -> member-count hash
-- ARGV[1] member
-- Reply: 1 if the member was on the board, else 0.

local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not old then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('HINCRBY', KEYS[3], old, -1) <= 0 then
  redis.call('HDEL', KEYS[3], old)
  redis.call('ZREM', KEYS[2], old)
end
return 1
