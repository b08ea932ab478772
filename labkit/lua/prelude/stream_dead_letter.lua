-- Prelude: what happens to a pending entry of a stream consumer group that will not be
-- delivered again. Shared by labkit/lua/streams/*.lua.
-- dead_letter_or_drop(stream, dead, group, id, owner, deliveries, err): when the entry is
-- still in the stream, XADD it to `dead` with its bookkeeping fields (_origin_id,
-- _deliveries, _error, _consumer) before its own fields, XACK it, return 'dead'. When the
-- entry is gone from the stream (trimmed by MAXLEN or XDEL while pending) there is nothing
-- to keep: XACK it and return 'trimmed'; never an empty dead letter.
-- drop_if_trimmed(stream, group, id): XACK `id` and return true when its entry is gone.

local function drop_if_trimmed(stream, group, id)
  if #redis.call('XRANGE', stream, id, id) > 0 then return false end
  redis.call('XACK', stream, group, id)
  return true
end

local function dead_letter_or_drop(stream, dead, group, id, owner, deliveries, err)
  local entry = redis.call('XRANGE', stream, id, id)[1]
  if entry then
    redis.call('XADD', dead, '*', '_origin_id', id, '_deliveries', deliveries,
               '_error', err, '_consumer', owner, unpack(entry[2]))
    redis.call('XACK', stream, group, id)
    return 'dead'
  end
  redis.call('XACK', stream, group, id)
  return 'trimmed'
end
