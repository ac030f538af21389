"""The Lua scripts of the Redis transport: each one step, atomic on the server.

Keys (``P`` is the URL's ``prefix``):

* ``P:updates``: the stream, one entry per update (``i``: its id, ``n``: its
  number, ``u``: the rest as JSON), trimmed with ``MAXLEN ~`` on every
  publish and with ``MINID ~`` by age.
* ``P:count``: how many updates were ever added (``n`` of the newest), so
  that a reader sees from the numbers whether it missed trimmed entries.
* ``P:ids``: hash, event id -> ``"<stream id> <count>"``: the earliest
  occurrence of that id still in the stream, and how many there are.
* ``P:order``: list, ``"<stream id> <event id>"`` in stream order: tells
  which index entries to forget when the stream is trimmed, so that the
  index never outgrows the stream.
* ``P:nodes``: sorted set, node name -> expiry (Redis time, seconds);
  ``P:node:<name>``: hash, subscriber id -> its subscriptions (JSON), with a
  TTL refreshed by the node's heartbeat.

Times are Redis's (``TIME``), never a node's clock, so that nodes with
skewed clocks agree on ages and expiries.
"""

from __future__ import annotations

from ._redis_link import Script

_HELPERS = r"""
local function parse(sid)
  local ms, seq = string.match(sid, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function older(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Forget the index entries of updates the stream no longer holds.
local function forget_trimmed(stream, index, order)
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
  while true do
    local head = redis.call('LINDEX', order, 0)
    if not head then return end
    local space = string.find(head, ' ', 1, true)
    local sid = string.sub(head, 1, space - 1)
    if first and not older(sid, first[1]) then return end
    redis.call('LPOP', order)
    local eid = string.sub(head, space + 1)
    local entry = redis.call('HGET', index, eid)
    if entry then
      local known, count = string.match(entry, '^(%S+) (%d+)$')
      count = tonumber(count)
      if known == sid then
        if count <= 1 then
          redis.call('HDEL', index, eid)
        else
          -- A reused id: its next occurrence becomes the earliest one.
          local start = 0
          local found = nil
          while not found do
            local chunk = redis.call('LRANGE', order, start, start + 99)
            if #chunk == 0 then break end
            for _, item in ipairs(chunk) do
              local sp = string.find(item, ' ', 1, true)
              if string.sub(item, sp + 1) == eid then
                found = string.sub(item, 1, sp - 1)
                break
              end
            end
            start = start + 100
          end
          if found then
            redis.call('HSET', index, eid, found .. ' ' .. (count - 1))
          else
            redis.call('HDEL', index, eid)
          end
        end
      end
    end
  end
end
"""

#: KEYS: stream, index, order, count.  ARGV: maxlen, event id, update JSON.
#: Returns {stream id, stream length}.
PUBLISH = Script(_HELPERS + r"""
local n = redis.call('INCR', KEYS[4])
local sid = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
                       'i', ARGV[2], 'n', n, 'u', ARGV[3])
local entry = redis.call('HGET', KEYS[2], ARGV[2])
if entry then
  local known, count = string.match(entry, '^(%S+) (%d+)$')
  redis.call('HSET', KEYS[2], ARGV[2], known .. ' ' .. (tonumber(count) + 1))
else
  redis.call('HSET', KEYS[2], ARGV[2], sid .. ' 1')
end
redis.call('RPUSH', KEYS[3], sid .. ' ' .. ARGV[2])
forget_trimmed(KEYS[1], KEYS[2], KEYS[3])
return {sid, redis.call('XLEN', KEYS[1])}
""")

#: KEYS: stream, index, order.  ARGV: max age in ms.  Trims by age (Redis
#: time), then forgets the trimmed ids.  Returns the stream length.
TRIM_AGE = Script(_HELPERS + r"""
local floor = now_ms() - tonumber(ARGV[1])
if floor > 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%d', floor))
  forget_trimmed(KEYS[1], KEYS[2], KEYS[3])
end
return redis.call('XLEN', KEYS[1])
""")

#: KEYS: stream, index.  ARGV: event id ('' for earliest), history size,
#: max age in ms (0: none).
#:
#: History is the newest ``history size`` entries not older than the max
#: age, whatever ``MAXLEN ~`` physically left.  Returns {found (0/1),
#: newest stream id in history or '', entries after the id, newest first}.
HISTORY = Script(_HELPERS + r"""
local count = tonumber(ARGV[2])
local age = tonumber(ARGV[3])
local wanted = ARGV[1]
if count == 0 then
  return {wanted == '' and 1 or 0, '', {}}
end
local floor = '-'
if age > 0 then
  local f = now_ms() - age
  if f > 0 then floor = string.format('%d', f) .. '-0' end
end
local function young(sid)
  return floor == '-' or not older(sid, floor)
end
local newest = redis.call('XREVRANGE', KEYS[1], '+', floor, 'COUNT', 1)[1]
local up_to = newest and newest[1] or ''
if wanted == '' then
  return {1, up_to, redis.call('XREVRANGE', KEYS[1], '+', floor, 'COUNT', count)}
end
local entry = redis.call('HGET', KEYS[2], wanted)
if not entry then
  return {0, up_to, {}}
end
local sid = string.match(entry, '^(%S+)')
local after = redis.call('XREVRANGE', KEYS[1], '+', '(' .. sid, 'COUNT', count)
while #after > 0 and not young(after[#after][1]) do
  table.remove(after)
end
if #after < count and young(sid) then
  return {1, up_to, after}
end
-- The earliest occurrence is out of history; a later one may be in it.
for i = #after, 1, -1 do
  if after[i][2][2] == wanted then
    local rest = {}
    for j = 1, i - 1 do rest[j] = after[j] end
    return {1, up_to, rest}
  end
end
return {0, up_to, {}}
""")

#: KEYS: nodes, node hash.  ARGV: node name, ttl seconds.  Returns nothing.
HEARTBEAT = Script(r"""
local now = tonumber(redis.call('TIME')[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return 0
""")

#: KEYS: node hash.  ARGV: ttl seconds, then field, value pairs.
#: Sets the fields and (re)arms the TTL in one step, so that a node dying
#: right after never leaves a hash without expiry.
PRESENCE_SET = Script(r"""
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 0
""")

#: KEYS: nodes.  ARGV: key prefix of node hashes.  Returns every
#: subscriber's subscriptions (JSON) of every node still alive.
PRESENCE_ALL = Script(r"""
local now = tonumber(redis.call('TIME')[1])
local nodes = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
local out = {}
for _, node in ipairs(nodes) do
  for _, value in ipairs(redis.call('HVALS', ARGV[1] .. node)) do
    out[#out + 1] = value
  end
end
return out
""")

ALL = (PUBLISH, TRIM_AGE, HISTORY, HEARTBEAT, PRESENCE_SET, PRESENCE_ALL)
