-- leaderboard/rank: the tie-sharing rank of one member.
-- KEYS[1] scores zset, KEYS[2] distinct-scores zset
-- ARGV[1] member, ARGV[2] "competition" | "dense"
-- Reply: the 1-based rank (members, or distinct scores, strictly above + 1), or nil for a
-- member not on the board.

local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return false end
local key = KEYS[1]
if ARGV[2] == 'dense' then key = KEYS[2] end
return redis.call('ZCOUNT', key, '(' .. score, '+inf') + 1
