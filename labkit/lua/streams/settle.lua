-- After one handler of a batch: ack its message, and keep the rest of the batch fresh.
-- uses: stream_dead_letter
-- KEYS[1] stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] id to ack ('' when the handler failed),
-- ARGV[4..] ids of the batch not handled yet, in order.
-- Reply: {acked, held, trimmed}: acked 1 if ARGV[3] was pending; held = the waiting ids
-- still pending for ARGV[2], their idle time reset to 0 (XCLAIM to itself with JUSTID:
-- owner and delivery count unchanged), so XAUTOCLAIM elsewhere sees them idle for at most
-- one handler run; trimmed = waiting ids whose entry is gone from the stream (acked).
-- A waiting id pending for another consumer (it claimed it meanwhile) or acked is in
-- neither list: it is not this consumer's any more.

local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local acked = 0
if ARGV[3] ~= '' then acked = redis.call('XACK', stream, group, ARGV[3]) end
local held, trimmed, chunk = {}, {}, {}
local function refresh()
  if #chunk > 0 then
    chunk[#chunk + 1] = 'JUSTID'
    redis.call('XCLAIM', stream, group, consumer, 0, unpack(chunk))
    chunk = {}
  end
end
for i = 4, #ARGV do
  local id = ARGV[i]
  if #redis.call('XPENDING', stream, group, id, id, 1, consumer) > 0 then
    if drop_if_trimmed(stream, group, id) then
      trimmed[#trimmed + 1] = id
    else
      held[#held + 1] = id
      chunk[#chunk + 1] = id
      -- unpack() is bounded by Lua's C stack (~8000 values): claim in slices
      if #chunk == 1000 then refresh() end
    end
  end
end
refresh()
return {acked, held, trimmed}
