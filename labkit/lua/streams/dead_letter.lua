-- Dead-letter one entry whose handler failed, if the consumer still owns it.
-- uses: stream_dead_letter
-- KEYS[1] stream, KEYS[2] dead-letter stream (same hash tag)
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] consumer, ARGV[4] error text
-- Reply: 'dead' (moved and acked), 'trimmed' (the entry is gone from the stream: acked,
-- nothing moved), 'not_owner' (not pending for ARGV[3]: acked, or claimed by another).

local stream, dead, group, id = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local row = redis.call('XPENDING', stream, group, id, id, 1)[1]
if not row or row[2] ~= ARGV[3] then return 'not_owner' end
return dead_letter_or_drop(stream, dead, group, id, ARGV[3], tonumber(row[4]), ARGV[4])
