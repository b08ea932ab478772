-- leaderboard/percentile: the share of the board strictly below a member.
-- KEYS[1] scores zset
-- ARGV[1] member
-- Reply: {members strictly below, board size}, or nil for a member not on the board.

local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return false end
return {redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. score), redis.call('ZCARD', KEYS[1])}
