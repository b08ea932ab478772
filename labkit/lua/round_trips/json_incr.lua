-- Read-modify-write of a JSON document inside the server: add 1 to one numeric field.
-- KEYS[1]: the document, a JSON object (a missing key counts as {}).
-- ARGV[1]: the field to increment.
-- Reply: the field's new value.

local raw = redis.call("get", KEYS[1])
local doc = raw and cjson.decode(raw) or {}
doc[ARGV[1]] = (tonumber(doc[ARGV[1]]) or 0) + 1
redis.call("set", KEYS[1], cjson.encode(doc))
return doc[ARGV[1]]
