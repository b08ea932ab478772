-- Part-way through a worker's batch: ack the messages handled so far, and keep the rest of
-- the batch fresh.
-- uses: stream_dead_letter
-- KEYS[1] stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] n, ARGV[4 .. 3+n] ids to ack (handled),
-- ARGV[4+n ..] ids of the batch not handled yet.
-- Reply: {acked, held, trimmed}: acked = how many of the n were pending; held = the waiting
-- ids still pending for ARGV[2], their idle time reset to 0 (XCLAIM to itself with JUSTID:
-- owner and delivery count unchanged), so XAUTOCLAIM elsewhere does not take them for
-- abandoned; trimmed = waiting ids whose entry is gone from the stream (acked).
-- A waiting id pending for another consumer (it claimed it meanwhile) or no longer pending
-- is in neither list: it is not this consumer's any more.

local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local n = tonumber(ARGV[3])

-- unpack() is bounded by Lua's C stack (~8,000 values): send long id lists in slices
local function in_slices(ids, command, ...)
  local head, total = {...}, 0
  for first = 1, #ids, 1000 do
    local args = {command, stream, unpack(head)}
    for i = first, math.min(first + 999, #ids) do args[#args + 1] = ids[i] end
    if command == 'XCLAIM' then args[#args + 1] = 'JUSTID' end
    local reply = redis.call(unpack(args))
    if type(reply) == 'number' then total = total + reply end
  end
  return total
end

local done = {}
for i = 4, 3 + n do done[#done + 1] = ARGV[i] end
local acked = in_slices(done, 'XACK', group)

local held, trimmed = {}, {}
for i = 4 + n, #ARGV do
  local id = ARGV[i]
  if #redis.call('XPENDING', stream, group, id, id, 1, consumer) > 0 then
    if drop_if_trimmed(stream, group, id) then
      trimmed[#trimmed + 1] = id
    else
      held[#held + 1] = id
    end
  end
end
in_slices(held, 'XCLAIM', group, consumer, 0)
return {acked, held, trimmed}
