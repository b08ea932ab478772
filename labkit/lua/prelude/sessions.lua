-- Prelude for the session store: its clock and the steps every session script shares.
-- uses: clock
-- clock_ms(arg): the store's time in ms: arg (the injected clock) or, when arg is '', the
-- server's TIME (now_ms from the clock prelude). Both timeouts are checked against it, never
-- against a key's TTL: key TTLs run in real time and only collect garbage.
-- cover(index, ttl, idle): keep the user index alive at least as long as a session.
-- lookup(...): is the session live by that time. touch(...): lookup, then slide the idle
-- timeout (last-seen and key TTL) without passing the absolute deadline.

local function clock_ms(arg)
  if arg ~= '' then return tonumber(arg) end
  return now_ms()
end

-- a session's TTL was just set to ttl ms: make the index's PTTL at least that; an index
-- without a TTL (just created by ZADD) gets idle ms, which no session's TTL exceeds
local function cover(index, ttl, idle)
  local pttl = redis.call('PTTL', index)
  if pttl == -1 then ttl = math.max(ttl, idle) end
  if pttl ~= -2 and pttl < ttl then redis.call('PEXPIRE', index, int(ttl)) end
end

-- returns the ms left before the absolute deadline, the user id and the last-seen time (ms),
-- or nil when the session is missing, or (after deleting it and its index entry) when it is
-- past its absolute deadline or idle for more than idle ms
local function lookup(key, now, idle, absolute, index_prefix, token)
  local f = redis.call('HMGET', key, '_uid', '_created', '_seen')
  local uid, created, seen = f[1], tonumber(f[2]), tonumber(f[3])
  if not created then return nil end
  local left = created + absolute - now
  if left > 0 and not (seen and now - seen > idle) then return left, uid, seen end
  redis.call('DEL', key)
  if uid then redis.call('ZREM', index_prefix .. uid, token) end
  return nil
end

-- returns the new TTL (ms), the ms left before the absolute deadline and the user id,
-- or nil as lookup does
local function touch(key, now, idle, absolute, index_prefix, token)
  local left, uid, seen = lookup(key, now, idle, absolute, index_prefix, token)
  if not left then return nil end
  if not seen or now > seen then redis.call('HSET', key, '_seen', int(now)) end
  local ttl = math.min(idle, left)
  redis.call('PEXPIRE', key, int(ttl))
  if uid then cover(index_prefix .. uid, ttl, idle) end
  return ttl, left, uid
end
