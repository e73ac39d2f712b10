package main

import (
	"strings"

	"github.com/gomodule/redigo/redis"
)

// The presence scripts. Every operation on a room is one script, so that the
// change, the room's seq, the counts and the publishing of the event (PUBLISH, or SPUBLISH for shard channels) happen
// atomically and in one round trip. Each script that changes a room ends by
// "settling" it: an empty room is deleted whole (its seq starts over at 1) and
// the room index holds the room's earliest deadline, which is what lets the
// reaper find due connections without scanning live ones.
//
// Key layout, version 2 (P is the configured prefix, R the roomId, k the
// room's bucket: FNV-1a of R mod 256, see roomBucket; every key and the
// channel of a room share the {bk} hash tag, so one script touches one
// Redis Cluster slot; R, which has no braces, is braced to keep it apart
// from the suffix):
//
//	P{bk}{R}:seq         string  last seq emitted by the room
//	P{bk}{R}:conns       hash    connId -> userId
//	P{bk}{R}:members     hash    userId -> number of that user's connections
//	P{bk}{R}:due         zset    connId -> deadline (ms): when the reaper removes it
//	P{bk}{R}:ids         zset    connId, all at score 0: the connections in byte order,
//	                             the stable order of member pages (rooms made before
//	                             it existed get it at their first page, see pageScript)
//	P{bk}{R}:c:<connId>  hash    the connection: uid, uj (userId as JSON), own (sid of
//	                             the owning socket, "" while disconnected), ep (epoch),
//	                             ls (lastSeenMs), dr (leave reason when due), dk (which
//	                             deadline is set: lookback, grace or shutdown), st (state
//	                             JSON), s:<key JSON> (one field per state key, value JSON)
//	P{bk}:rooms          zset    roomId -> earliest deadline in the room (the
//	                             bucket's room index, walked by the reaper)
//	P{bk}:events         channel the bucket's events (the room scripts PUBLISH or SPUBLISH to it)
//
// Version 1 (P{R}:..., one P rooms index, one P events channel) is not read:
// deploy a new layout on an empty prefix, or after the rooms have drained.
//
// The common room ARGV prefix, shared by all room scripts:
//
//	ARGV[1] roomId      ARGV[2] roomId as JSON   ARGV[3] conn key prefix P{bk}{R}:c:
//	ARGV[4] channel     ARGV[5] sid of the calling socket ("" for none)
//
// then the script's own ARGV, and last the history setting (see luaHistory;
// the room's events go to its history as they are published),
// and KEYS are always seq, conns, members, due, index, ids, then the
// caller's connection key P{bk}{R}:c:<connId> (the seq key again for a
// script without one; join adds the resumed connection's key), then the
// history's stream and hash (luaHistory). Events are published as
// an envelope {"r":roomId,"e":"presence:event","q":seq,"t":type,"c":connId,"d":event};
// a takeover notice is {"r":roomId,"k":"takeover","c":connId,"o":sid}.
//
// A Redis Cluster slot migration moves a slot's keys one batch at a time.
// Meanwhile a script is run only where all its KEYS are (else TRYAGAIN or
// ASK), and a key it reads without declaring it fails the script if the key
// has moved. The caller's connection key is declared; the other connections'
// keys (a snapshot, the reaper's batch) cannot be. A failed read-only script
// (snapshotScript) wrote nothing; reapScript reads its whole batch before its
// first write; a join never runs while its slot migrates (its new
// connection's key, declared, exists nowhere yet: Redis answers TRYAGAIN).
// So a script that fails that way has written nothing, and cluster.go
// retries it as TRYAGAIN.
const luaPrelude = luaHistory + `
local K = {seq = KEYS[1], conns = KEYS[2], members = KEYS[3], due = KEYS[4], index = KEYS[5], ids = KEYS[6],
  conn = KEYS[7]}
local room, roomj, cprefix, channel, sid = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local function n(x) return string.format('%.0f', x) end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function counts()
  return redis.call('HLEN', K.conns), redis.call('HLEN', K.members)
end

-- emit builds a presence event, publishes it and returns its seq.
local function emit(typ, cid, uj, st, ep, ts, extra)
  local seq = redis.call('INCR', K.seq)
  local nc, nm = counts()
  local ev = '{"type":"' .. typ .. '","roomId":' .. roomj .. ',"seq":' .. n(seq) ..
    ',"userId":' .. uj .. ',"connId":"' .. cid .. '"'
  if st then ev = ev .. ',"state":' .. st end
  if ep then ev = ev .. ',"epoch":' .. ep end
  ev = ev .. ',"ts":' .. n(ts) .. extra ..
    ',"count":{"connections":' .. n(nc) .. ',"members":' .. n(nm) .. '}}'
  local env = '{"r":' .. roomj .. ',"e":"presence:event","q":' .. n(seq) ..
    ',"t":"' .. typ .. '","c":"' .. cid .. '","d":' .. ev .. '}'
  redis.call('PUBLISH', channel, env)
  hist_add(seq, 0, ts, env)
  return seq
end

-- settle deletes an empty room or records its earliest deadline in the index.
local function settle()
  local first = redis.call('ZRANGE', K.due, 0, 0, 'WITHSCORES')
  if first[2] then
    redis.call('ZADD', K.index, first[2], room)
  else
    redis.call('DEL', K.seq, K.conns, K.members, K.due, K.ids)
    redis.call('ZREM', K.index, room)
    hist_drop()
  end
end

-- remove deletes a connection and all its index entries and emits its leave.
-- h is the connection's uj, st and ep if already read.
local function remove(cid, reason, ts, h)
  local uid = redis.call('HGET', K.conns, cid)
  if not uid then return false end
  local ck = cprefix .. cid
  h = h or redis.call('HMGET', ck, 'uj', 'st', 'ep')
  redis.call('HDEL', K.conns, cid)
  redis.call('ZREM', K.due, cid)
  redis.call('ZREM', K.ids, cid)
  redis.call('DEL', ck)
  local left = redis.call('HINCRBY', K.members, uid, -1) <= 0
  if left then redis.call('HDEL', K.members, uid) end
  return emit('leave', cid, h[1] or cjson.encode(uid), h[2], h[3], ts,
    ',"reason":"' .. reason .. '","userLeft":' .. tostring(left))
end

-- merge applies a shallow patch {kj1, v1, kj2, v2, ...} (v "" deletes kj) to
-- the state of connection key ck. It returns the new state JSON, or false when
-- nothing changes, or nil when the result would exceed maxbytes. It writes
-- only when commit is true.
local function merge(ck, patch, maxbytes, commit)
  local cur = redis.call('HGETALL', ck)
  local fields, changed, sets, dels = {}, false, {}, {}
  for i = 1, #cur, 2 do
    if string.sub(cur[i], 1, 2) == 's:' then fields[string.sub(cur[i], 3)] = cur[i + 1] end
  end
  for i = 1, #patch, 2 do
    local k, v = patch[i], patch[i + 1]
    if v == '' then
      if fields[k] then fields[k] = nil; changed = true; dels[#dels + 1] = 's:' .. k end
    elseif fields[k] ~= v then
      fields[k] = v; changed = true; sets[#sets + 1] = 's:' .. k; sets[#sets + 1] = v
    end
  end
  if not changed then return false end
  local parts = {}
  for k, v in pairs(fields) do parts[#parts + 1] = k .. ':' .. v end
  table.sort(parts)
  local st = '{' .. table.concat(parts, ',') .. '}'
  if #st > maxbytes then return nil end
  if commit then
    if #dels > 0 then redis.call('HDEL', ck, unpack(dels)) end
    if #sets > 0 then redis.call('HSET', ck, unpack(sets)) end
    redis.call('HSET', ck, 'st', st)
  end
  return st
end

-- count_snapshot is a snapshot without the lists: the room's seq and counts.
local function count_snapshot()
  local seq = redis.call('GET', K.seq) or '0'
  local nc, nm = counts()
  return '{"roomId":' .. roomj .. ',"seq":' .. seq .. ',"count":{"connections":' .. n(nc) ..
    ',"members":' .. n(nm) .. '}}'
end

-- connections returns the JSON of the connections cids.
local function connections(cids)
  local cs = {}
  for i, cid in ipairs(cids) do
    local h = redis.call('HMGET', cprefix .. cid, 'uj', 'st', 'ep', 'ls')
    cs[i] = '{"connId":"' .. cid .. '","userId":' .. (h[1] or '""') .. ',"state":' ..
      (h[2] or '{}') .. ',"epoch":' .. (h[3] or '0') .. ',"lastSeenMs":' .. (h[4] or '0') .. '}'
  end
  return table.concat(cs, ',')
end

-- page returns the room's connections after connId after ("" for the first)
-- in byte order, at most limit of them, as a snapshot page: roomId, seq,
-- count, the page's members (each user once) and connections, and next (the
-- last connId, to pass as after, or null on the last page). extra is added
-- before the closing brace.
local function page(after, limit, extra)
  if redis.call('ZCARD', K.ids) ~= redis.call('HLEN', K.conns) then
    -- a room made before the ids index: build it once (a write before the
    -- reads of connection keys; if one of those fails in a migration, the
    -- index written is still right: it is derived from conns)
    local cids = redis.call('HKEYS', K.conns)
    for i = 1, #cids, 1000 do
      local args = {}
      for j = i, math.min(i + 999, #cids) do args[#args + 1] = 0; args[#args + 1] = cids[j] end
      redis.call('ZADD', K.ids, unpack(args))
    end
  end
  local from = '-'
  if after ~= '' then from = '(' .. after end
  local cids = redis.call('ZRANGEBYLEX', K.ids, from, '+', 'LIMIT', 0, limit + 1)
  local nextj = 'null'
  if #cids > limit then
    cids[#cids] = nil
    nextj = '"' .. cids[#cids] .. '"'
  end
  local users, seen = {}, {}
  for _, cid in ipairs(cids) do
    local u = redis.call('HGET', K.conns, cid)
    if u and not seen[u] then seen[u] = true; users[#users + 1] = cjson.encode(u) end
  end
  local seq = redis.call('GET', K.seq) or '0'
  local nc, nm = counts()
  return '{"roomId":' .. roomj .. ',"seq":' .. seq .. ',"count":{"connections":' .. n(nc) ..
    ',"members":' .. n(nm) .. '},"members":[' .. table.concat(users, ',') .. '],"connections":[' ..
    connections(cids) .. '],"next":' .. nextj .. (extra or '') .. '}'
end

-- snapshot returns the room's snapshot: mode "count" is seq and counts,
-- "page" the first page of pagesize connections; otherwise (full) every
-- member and connection, unless the room has more than cap connections
-- (cap > 0): then the first cap of them, marked truncated, with next.
local function snapshot(mode, pagesize, cap)
  if mode == 'count' then return count_snapshot() end
  if mode == 'page' then return page('', pagesize) end
  cap = tonumber(cap) or 0
  if cap > 0 and redis.call('HLEN', K.conns) > cap then return page('', cap, ',"truncated":true') end
  local seq = redis.call('GET', K.seq) or '0'
  local ms = redis.call('HKEYS', K.members)
  for i, u in ipairs(ms) do ms[i] = cjson.encode(u) end
  return '{"roomId":' .. roomj .. ',"seq":' .. seq .. ',"members":[' .. table.concat(ms, ',') ..
    '],"connections":[' .. connections(redis.call('HKEYS', K.conns)) .. ']}'
end

-- live marks a connection alive now: lastSeen, deadline, key TTL.
local function live(cid, ck, now, lookback, keyttl)
  redis.call('HSET', ck, 'ls', n(now), 'dr', 'expired', 'dk', 'lookback')
  redis.call('PEXPIRE', ck, keyttl)
  redis.call('ZADD', K.due, now + lookback, cid)
end
`

// joinScript joins the caller to a room, or resumes a connection.
//
//	ARGV[6] new connId     ARGV[7] userId      ARGV[8] userId as JSON
//	ARGV[9] state JSON     ARGV[10] lookback ms ARGV[11] key TTL ms
//	ARGV[12] max state bytes
//	ARGV[13] resume connId ("" for none)  ARGV[14] resume epoch
//	ARGV[15] snapshot: "full", "count" (seq and counts only) or "page" (the
//	         first ARGV[16] connections)
//	ARGV[16] page size   ARGV[17] cap of a full snapshot's connections (0: none)
//	ARGV[18..] state fields as pairs (key JSON, value JSON), then the history
//	         setting (luaHistory)
//	KEYS[7] the new connection's key  KEYS[8] the resumed one's (the new one's without a resume)
//
// Returns {connId, epoch, snapshot JSON, minSeq, resumed 0/1, history epoch
// ("" when history is off), recovered (-1: no position given, 0, 1), the
// envelopes replayed, and the room's position when the join ended (seq,
// sub)} or {"too_large"}. See luaRecovery and luaHistory.
// minSeq is the first seq the caller's socket must receive. A resume only
// succeeds when the connection exists, belongs to the same user in this room and
// its stored epoch equals the one presented; otherwise it is a fresh join.
// Invariant: a connection is in conns, due and has its hash, or in none of them.
var joinScript = luaScript(10, luaPrelude+luaRecovery+`
local cid, uid, uj, st = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local lookback, keyttl, maxbytes = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local rcid, rep, snapmode, pagesize, cap = ARGV[13], ARGV[14], ARGV[15], tonumber(ARGV[16]), ARGV[17]
local patch = {}
for i = 18, hist_argc do patch[#patch + 1] = ARGV[i] end
local now = now_ms()

-- join_reply ends the join: its reply, with what recovery says.
local function join_reply(cid, ep, minseq, resumed)
  local snap, hep, rec, replay, q, sub = recovery(snapmode, pagesize, cap)
  return {cid, ep, snap, minseq, resumed, hep, rec, replay, q, sub}
end

if rcid ~= '' and redis.call('HGET', K.conns, rcid) == uid then
  local ck = KEYS[8]
  local h = redis.call('HMGET', ck, 'ep', 'uj')
  if h[1] == rep then
    local newst = merge(ck, patch, maxbytes, false)
    if newst == nil then return {'too_large'} end
    local ep = n(tonumber(h[1]) + 1)
    redis.call('HSET', ck, 'own', sid, 'ep', ep)
    live(rcid, ck, now, lookback, keyttl)
    redis.call('PUBLISH', channel, '{"r":' .. roomj .. ',"k":"takeover","c":"' .. rcid ..
      '","o":"' .. sid .. '"}')
    local minseq = tonumber(redis.call('GET', K.seq) or '0') + 1
    if newst then
      merge(ck, patch, maxbytes, true)
      emit('update', rcid, h[2], newst, ep, now, '')
    end
    settle()
    return join_reply(rcid, ep, n(minseq), 1)
  end
end

local ck = K.conn
redis.call('HSET', ck, 'uid', uid, 'uj', uj, 'own', sid, 'ep', '1', 'st', st)
for i = 1, #patch, 2 do redis.call('HSET', ck, 's:' .. patch[i], patch[i + 1]) end
live(cid, ck, now, lookback, keyttl)
redis.call('HSET', K.conns, cid, uid)
redis.call('ZADD', K.ids, 0, cid)
local joined = redis.call('HINCRBY', K.members, uid, 1) == 1
local seq = emit('join', cid, uj, st, '1', now, ',"userJoined":' .. tostring(joined))
settle()
return join_reply(cid, '1', n(seq), 0)
`)

// heartbeatScript refreshes a batch of connections (plain heartbeats, no
// patch) of one bucket in one call. The batch may span rooms, so it does not
// use the room prelude.
//
//	KEYS[1] the bucket's room index; then per item i: KEYS[1+2i-1] conn key, KEYS[1+2i] room due key
//	ARGV[1] lookback ms   ARGV[2] key TTL ms
//	then per item: roomId, connId, sid, epoch (-1 when the client sent none)
//
// Returns a flat array: per item a code (0 ok, 1 not_joined, 2 stale_epoch)
// and the connection's epoch. Nothing is written for an item that fails.
var heartbeatScript = luaScript(-1, `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lookback, keyttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 1, (#KEYS - 1) / 2 do
  local ck, dk = KEYS[2 * i], KEYS[2 * i + 1]
  local a = 2 + (i - 1) * 4
  local room, cid, sid, ep = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], tonumber(ARGV[a + 4])
  local h = redis.call('HMGET', ck, 'own', 'ep')
  local cur = tonumber(h[2] or '0')
  if h[1] ~= sid then
    out[#out + 1] = 1
  elseif ep >= 0 and ep < cur then
    out[#out + 1] = 2
  else
    redis.call('HSET', ck, 'ls', string.format('%.0f', now))
    redis.call('PEXPIRE', ck, keyttl)
    redis.call('ZADD', dk, now + lookback, cid)
    local first = redis.call('ZRANGE', dk, 0, 0, 'WITHSCORES')
    redis.call('ZADD', KEYS[1], first[2], room)
    out[#out + 1] = 0
  end
  out[#out + 1] = cur
end
return out
`)

// patchScript is a heartbeat that carries patchState.
//
//	ARGV[6] connId  ARGV[7] epoch (-1 none)  ARGV[8] lookback ms  ARGV[9] key TTL ms
//	ARGV[10] max state bytes  ARGV[11..] patch pairs (key JSON, value JSON or "" to delete)
//
// Returns {code, epoch, changed 0/1} with code 0 ok, 1 not_joined,
// 2 stale_epoch, 3 payload_too_large. Nothing is written unless code is 0.
var patchScript = luaScript(9, luaPrelude+`
local cid, ep = ARGV[6], tonumber(ARGV[7])
local lookback, keyttl, maxbytes = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local patch = {}
for i = 11, hist_argc do patch[#patch + 1] = ARGV[i] end
local ck = K.conn
local h = redis.call('HMGET', ck, 'own', 'ep', 'uj')
local cur = tonumber(h[2] or '0')
if h[1] ~= sid then return {1, cur, 0} end
local st = merge(ck, patch, maxbytes, false)
if st == nil then return {3, cur, 0} end -- payload_too_large outranks stale_epoch
if ep >= 0 and ep < cur then return {2, cur, 0} end
local now = now_ms()
live(cid, ck, now, lookback, keyttl)
if st then
  merge(ck, patch, maxbytes, true)
  cur = cur + 1
  redis.call('HSET', ck, 'ep', n(cur))
  emit('update', cid, h[3], st, n(cur), now, '')
end
settle()
return {0, cur, st and 1 or 0}
`)

// leaveScript removes the caller's connection with reason "leave".
//
//	ARGV[6] connId
//
// Returns the seq of the leave event, or 0 when the caller did not own the
// connection (nothing is removed).
var leaveScript = luaScript(9, luaPrelude+`
local cid = ARGV[6]
if redis.call('HGET', K.conn, 'own') ~= sid then return 0 end
local seq = remove(cid, 'leave', now_ms())
settle()
return seq
`)

// disconnectScript handles the owning socket going away: with a grace of 0
// the connection is removed at once, otherwise it stays, owned by nobody,
// until its new deadline now+grace, when the reaper removes it with reason.
// The deadline's kind (grace for a dropped socket, shutdown for a node that
// handed its sockets over) is recorded for the reaper to report.
//
//	ARGV[6] connId  ARGV[7] grace ms  ARGV[8] reason  ARGV[9] key TTL ms
//	ARGV[10] deadline kind
//
// Returns 1 when the caller owned the connection, else 0 (fenced off).
var disconnectScript = luaScript(9, luaPrelude+`
local cid, grace, reason, keyttl = ARGV[6], tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9])
local ck = K.conn
if redis.call('HGET', ck, 'own') ~= sid then return 0 end
local now = now_ms()
if grace <= 0 then
  remove(cid, reason, now)
else
  redis.call('HSET', ck, 'own', '', 'dr', reason, 'dk', ARGV[10])
  redis.call('PEXPIRE', ck, grace + keyttl)
  redis.call('ZADD', K.due, now + grace, cid)
end
settle()
return 1
`)

// reapScript removes up to ARGV[6] connections of the room whose deadline has
// passed, each with the reason stored on it (expired unless it was
// disconnected). Several reapers may run it for the same room at once: the
// script is atomic and remove() does nothing for a connection already gone, so
// each connection yields exactly one leave.
//
// Returns, per connection removed, its connId, the leave reason and the kind
// of the deadline that removed it (lookback, grace or shutdown), flat.
var reapScript = luaScript(9, luaPrelude+`
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', K.due, '-inf', now, 'LIMIT', 0, tonumber(ARGV[6]))
local hs = {} -- every connection read before the first write (the migration note)
for i, cid in ipairs(ids) do hs[i] = redis.call('HMGET', cprefix .. cid, 'dr', 'dk', 'uj', 'st', 'ep') end
local out = {}
for i, cid in ipairs(ids) do
  local h = hs[i]
  local reason = h[1] or 'expired'
  if remove(cid, reason, now, {h[3], h[4], h[5]}) then
    out[#out + 1] = cid
    out[#out + 1] = reason
    out[#out + 1] = h[2] or 'lookback'
  else
    redis.call('ZREM', K.due, cid) -- not a connection any more: never due again
  end
end
settle()
return out
`)

// dueRoomsScript lists, for each bucket's room index, up to ARGV[1] rooms
// whose earliest deadline has passed, by the Redis clock. On a single Redis
// one call covers every bucket; on a cluster, one call per bucket (keys of
// one script must share a slot).
//
//	KEYS[1..n] room indexes
//	ARGV[1]    rooms per index at most
//
// Returns one array of roomIds per key.
var dueRoomsScript = luaScript(-1, `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
end
return out
`)

// snapshotScript returns the room's snapshot JSON. With a sid (ARGV[5]) it
// first checks that the socket owns connection ARGV[6] (key KEYS[7]) and
// returns false if not. ARGV[7] is the mode ("full", "count" or "page"),
// ARGV[8] the page size and ARGV[9] the cap of a full snapshot, as for a
// join.
var snapshotScript = luaScript(9, luaPrelude+`
if sid ~= '' and redis.call('HGET', K.conn, 'own') ~= sid then return false end
return snapshot(ARGV[7], tonumber(ARGV[8]), ARGV[9])
`)

// pageScript returns a page of the room's connections (presence:members):
// ARGV[6] the caller's connId (checked as for a snapshot), ARGV[7] the
// connId to start after ("" for the first page), ARGV[8] the page size.
// Returns the page JSON, or false when the caller does not own its
// connection.
var pageScript = luaScript(9, luaPrelude+`
if redis.call('HGET', K.conn, 'own') ~= sid then return false end
return page(ARGV[7], tonumber(ARGV[8]))
`)

// memberScript checks that socket ARGV[2] owns connection key KEYS[1] and
// returns {userId, now ms}, or false when it does not.
var memberScript = luaScript(1, `
local h = redis.call('HMGET', KEYS[1], 'own', 'uid')
if h[1] ~= ARGV[1] then return false end
local t = redis.call('TIME')
return {h[2], string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))}
`)

// shardedScripts maps each script that publishes to its twin that publishes
// with SPUBLISH, for shard channels (pubsub.go).
var shardedScripts = make(map[*redis.Script]*redis.Script)

// luaScript returns a script, and registers its SPUBLISH twin if it
// publishes.
func luaScript(keys int, src string) *redis.Script {
	s := redis.NewScript(keys, src)
	if sharded := strings.ReplaceAll(src, "redis.call('PUBLISH'", "redis.call('SPUBLISH'"); sharded != src {
		shardedScripts[s] = redis.NewScript(keys, sharded)
	}
	return s
}

// presenceScripts lists every script, for loading them ahead of use.
var presenceScripts = []*redis.Script{joinScript, heartbeatScript, patchScript, leaveScript,
	disconnectScript, reapScript, dueRoomsScript, snapshotScript, pageScript, memberScript,
	recordScript, syncSinceScript}
