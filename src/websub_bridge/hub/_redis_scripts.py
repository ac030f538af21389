"""The Lua scripts of `RedisHubStore`: one script per store method, so that
each method is one atomic step on the server, whichever node runs it.

Keys (``P`` is the store's key prefix, ``ARGV[1]`` of every script;
``sha1(x)`` is ``redis.sha1hex``):

* ``P sub:<sid>``: hash, one subscription (``topic``, ``callback``,
  ``secret`` only when it has one, ``lease``, ``created``, ``host``), where
  ``sid = sha1(<byte length of topic>:<topic><callback>)`` (unambiguous,
  and a fixed-length key whatever the URLs).
* ``P subs``: sorted set, every ``sid`` scored by its lease end (``expire``,
  ``topics``).
* ``P topic:<sha1(topic)>``: sorted set, the topic's ``sid`` scored by lease
  end (``enqueue`` takes the unexpired ones with ``ZRANGEBYSCORE``).
* ``P host:<host>``: sorted set, the ``sid`` whose callback is on ``host``
  (lowercased) scored by lease end (``count_for_host`` is one ``ZCOUNT``).
* ``P sub:<sid>:deliveries``: set, the ids of the subscription's queued
  deliveries, so that removing or expiring it drops them.
* ``P delivery:<id>``: hash, one queued delivery (``id``, ``sid``,
  ``topic``, ``callback``, ``update_id``, ``body``, ``content_type``,
  ``secret`` only when it has one, ``attempts``, ``due``, ``created``).
* ``P due``: sorted set, unclaimed delivery ids scored by due time.
* ``P claimed``: sorted set, claimed delivery ids scored by claim end.  A
  claim that has expired goes back to ``P due`` (at its due time) at the
  next ``claim``, so "oldest due first" holds for expired claims too.
* ``P enqueued:<sha1(<byte length of update id>:<update id><topic>)>``:
  a marker ``SET NX EX 86400`` by ``enqueue``: the update is queued once
  for the whole cluster for a day, by whichever node gets there first.

Times (lease ends, due times, claim ends) are the callers' ``now`` values,
passed as ``repr(float)`` strings and kept as those strings in hashes, so
they come back exactly (Lua numbers turned into strings would keep only
14 digits).  Lua never returns a number that is not an integer for the
same reason: scores come back as Redis's own strings.

The scripts compute key names from the prefix rather than taking them as
``KEYS``: fine on one Redis (or a primary with replicas), which is what the
hub's Redis transport supports; not for Redis Cluster.
"""

from __future__ import annotations

from mercure_twisted.transports._redis_link import Script

__all__ = [
    "ALL",
    "CLAIM",
    "COMPLETE",
    "ENQUEUE",
    "EXPIRE",
    "NEXT_DUE",
    "PUT",
    "QUEUE_DEPTH",
    "REMOVE",
    "RETRY",
    "SUBSCRIPTION",
    "SUBSCRIPTIONS",
    "TOPICS",
]

_HELPERS = r"""
local P = ARGV[1]

local function sub_id(topic, callback)
  return redis.sha1hex(#topic .. ':' .. topic .. callback)
end
local function sub_key(sid) return P .. 'sub:' .. sid end
local function deliveries_key(sid) return P .. 'sub:' .. sid .. ':deliveries' end
local function topic_key(topic) return P .. 'topic:' .. redis.sha1hex(topic) end
local function host_key(host) return P .. 'host:' .. host end
local function delivery_key(id) return P .. 'delivery:' .. id end
local SUBS = P .. 'subs'
local DUE = P .. 'due'
local CLAIMED = P .. 'claimed'

local function forget_delivery(id)
  redis.call('DEL', delivery_key(id))
  redis.call('ZREM', DUE, id)
  redis.call('ZREM', CLAIMED, id)
end

-- Delete subscription ``sid`` and its queued deliveries; true if it existed.
local function drop_subscription(sid)
  local key = sub_key(sid)
  local fields = redis.call('HMGET', key, 'topic', 'host')
  for _, id in ipairs(redis.call('SMEMBERS', deliveries_key(sid))) do
    forget_delivery(id)
  end
  redis.call('DEL', deliveries_key(sid))
  if not fields[1] then return false end
  redis.call('ZREM', SUBS, sid)
  redis.call('ZREM', topic_key(fields[1]), sid)
  redis.call('ZREM', host_key(fields[2]), sid)
  redis.call('DEL', key)
  return true
end
"""


def _script(body: str) -> Script:
    return Script(_HELPERS + body)


#: ARGV: P, topic, callback, has secret ('1'/'0'), secret, lease, created, host.
PUT = _script(r"""
local topic, callback, lease, host = ARGV[2], ARGV[3], ARGV[6], ARGV[8]
local sid = sub_id(topic, callback)
local key = sub_key(sid)
redis.call('DEL', key)
redis.call('HSET', key, 'topic', topic, 'callback', callback, 'lease', lease,
           'created', ARGV[7], 'host', host)
if ARGV[4] == '1' then redis.call('HSET', key, 'secret', ARGV[5]) end
redis.call('ZADD', SUBS, lease, sid)
redis.call('ZADD', topic_key(topic), lease, sid)
redis.call('ZADD', host_key(host), lease, sid)
return 0
""")

#: ARGV: P, topic, callback.  Returns 1 if it existed, else 0.
REMOVE = _script(r"""
return drop_subscription(sub_id(ARGV[2], ARGV[3])) and 1 or 0
""")

#: ARGV: P, topic, callback.  Returns the subscription's HGETALL (empty: none).
SUBSCRIPTION = _script(r"""
return redis.call('HGETALL', sub_key(sub_id(ARGV[2], ARGV[3])))
""")

#: ARGV: P, topic ('' with ARGV[3] '0': every topic), '1' to filter.
#: Returns one HGETALL per subscription, unordered.
SUBSCRIPTIONS = _script(r"""
local sids
if ARGV[3] == '1' then
  sids = redis.call('ZRANGE', topic_key(ARGV[2]), 0, -1)
else
  sids = redis.call('ZRANGE', SUBS, 0, -1)
end
local out = {}
for _, sid in ipairs(sids) do
  out[#out + 1] = redis.call('HGETALL', sub_key(sid))
end
return out
""")

#: ARGV: P, now.  Returns the distinct topics of unexpired subscriptions, unordered.
TOPICS = _script(r"""
local seen, out = {}, {}
for _, sid in ipairs(redis.call('ZRANGEBYSCORE', SUBS, '(' .. ARGV[2], '+inf')) do
  local topic = redis.call('HGET', sub_key(sid), 'topic')
  if topic and not seen[topic] then
    seen[topic] = true
    out[#out + 1] = topic
  end
end
return out
""")

#: ARGV: P, now.  Deletes the subscriptions whose lease ended at or before
#: ``now`` with their deliveries; returns their HGETALLs, unordered.
EXPIRE = _script(r"""
local out = {}
for _, sid in ipairs(redis.call('ZRANGEBYSCORE', SUBS, '-inf', ARGV[2])) do
  out[#out + 1] = redis.call('HGETALL', sub_key(sid))
  drop_subscription(sid)
end
return out
""")

#: ARGV: P, update id, topic, body, content type, now, id token, marker TTL.
#: Returns how many deliveries were queued (0 if the pair was seen).
#:
#: The marker and the deliveries are one step: two nodes enqueuing the same
#: update at once queue it once.  Delivery ids are ``<token>-<n>``: the
#: token is random per call, so ids stay unique across nodes and across a
#: Redis that restarted empty while a node still holds an old claim.
ENQUEUE = _script(r"""
local update_id, topic, now, token = ARGV[2], ARGV[3], ARGV[6], ARGV[7]
local marker = P .. 'enqueued:' .. redis.sha1hex(#update_id .. ':' .. update_id .. topic)
if not redis.call('SET', marker, '1', 'NX', 'EX', ARGV[8]) then
  return 0
end
local targets = {}
for _, sid in ipairs(redis.call('ZRANGEBYSCORE', topic_key(topic), '(' .. now, '+inf')) do
  local fields = redis.call('HMGET', sub_key(sid), 'callback', 'secret')
  if fields[1] then
    targets[#targets + 1] = {sid, fields[1], fields[2]}
  end
end
table.sort(targets, function(a, b) return a[2] < b[2] end)
for n, target in ipairs(targets) do
  local id = string.format('%s-%06d', token, n)
  local key = delivery_key(id)
  redis.call('HSET', key, 'id', id, 'sid', target[1], 'topic', topic,
             'callback', target[2], 'update_id', update_id, 'body', ARGV[4],
             'content_type', ARGV[5], 'attempts', '0', 'due', now, 'created', now)
  if target[3] then redis.call('HSET', key, 'secret', target[3]) end
  redis.call('ZADD', DUE, now, id)
  redis.call('SADD', deliveries_key(target[1]), id)
end
return #targets
""")

#: ARGV: P, now, limit, claim end.  Returns the claimed deliveries' HGETALLs,
#: oldest due first (ties by id).
CLAIM = _script(r"""
local now = ARGV[2]
for _, id in ipairs(redis.call('ZRANGEBYSCORE', CLAIMED, '-inf', now)) do
  redis.call('ZREM', CLAIMED, id)
  local due = redis.call('HGET', delivery_key(id), 'due')
  if due then redis.call('ZADD', DUE, due, id) end
end
local out = {}
local ids = redis.call('ZRANGEBYSCORE', DUE, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZREM', DUE, id)
  redis.call('ZADD', CLAIMED, ARGV[4], id)
  out[#out + 1] = redis.call('HGETALL', delivery_key(id))
end
return out
""")

#: ARGV: P.  Returns {earliest due score or '', earliest claim end or ''}.
NEXT_DUE = _script(r"""
local due = redis.call('ZRANGE', DUE, 0, 0, 'WITHSCORES')
local claimed = redis.call('ZRANGE', CLAIMED, 0, 0, 'WITHSCORES')
return {due[2] or '', claimed[2] or ''}
""")

#: ARGV: P, delivery id.
COMPLETE = _script(r"""
local id = ARGV[2]
local sid = redis.call('HGET', delivery_key(id), 'sid')
forget_delivery(id)
if sid then redis.call('SREM', deliveries_key(sid), id) end
return 0
""")

#: ARGV: P, delivery id, due, attempts.  A delivery already forgotten
#: (completed, or its subscription removed) stays forgotten.
RETRY = _script(r"""
local id = ARGV[2]
local key = delivery_key(id)
if redis.call('EXISTS', key) == 0 then return 0 end
redis.call('HSET', key, 'due', ARGV[3], 'attempts', ARGV[4])
redis.call('ZREM', CLAIMED, id)
redis.call('ZADD', DUE, ARGV[3], id)
return 0
""")

#: ARGV: P.  Deliveries queued, claimed or not.
QUEUE_DEPTH = _script(r"""
return redis.call('ZCARD', DUE) + redis.call('ZCARD', CLAIMED)
""")

ALL = (
    PUT, REMOVE, SUBSCRIPTION, SUBSCRIPTIONS, TOPICS, EXPIRE, ENQUEUE, CLAIM, NEXT_DUE,
    COMPLETE, RETRY, QUEUE_DEPTH,
)
