package main

// The room history scripts (issue 21: a client that comes back gets exactly
// what it missed). Every event a room emits, and every module message sent
// to it with Broadcast.Recorded, is appended to the room's history by the
// same script call that publishes it, so the history holds exactly what the
// room's sockets were sent, in the same order.
//
// Keys, in the room's slot (P{bk}{R}: as for the presence keys):
//
//	P{bk}{R}:h   stream  one entry per event, its ID the event's position
//	                     <seq>-<sub>: a presence event is <seq>-0, the k-th module
//	                     message after the presence event of seq is <seq>-<k>;
//	                     fields t (Redis time, ms) and m (the envelope as published)
//	P{bk}{R}:hm  hash    ep (the history's epoch), rid (the replication ID of
//	                     the Redis that started it), lq and ls (the position of
//	                     the last module message: seq and sub)
//
// Bounds: the stream keeps at most the configured number of entries (XADD
// MAXLEN) and drops entries older than the configured age at each append
// (at most 8 per append, so it catches up with any rate it is fed at); both
// keys expire when the room stays quiet (the stream after the age, the hash
// after four times it), and a room that empties deletes both (settle).
//
// The epoch tells histories apart: a room that starts (its seq is 1 again),
// that has no hash (new, expired, or lost with Redis's data), or whose hash
// was written by another Redis (a failover: see hist_epoch), gets a new
// epoch and an empty stream. A client's position is only meaningful within
// its epoch.
//
// The history setting travels as the last ARGV of every script that uses
// it: "ttlms:max" ("0:0" when history is off); the join adds
// ":seq:sub:epoch", the position its client says it saw last. KEYS[1] is
// always the room's seq key, from which the history keys are derived (they
// share its hash tag, so its slot); the scripts declare them too, last of
// their KEYS, for Redis Cluster.
const luaHistory = `
local hist_ttl, hist_max, hist_rest = string.match(ARGV[#ARGV] or '', '^(%d+):(%d+)(.*)$')
-- hist_argc is the number of ARGV before the setting (none of the scripts'
-- other trailing arguments, JSON values and keys, can look like one)
local hist_argc = #ARGV - (hist_ttl and 1 or 0)
hist_ttl, hist_max, hist_rest = tonumber(hist_ttl) or 0, tonumber(hist_max) or 0, hist_rest or ''
local hist_on = hist_ttl > 0 and hist_max > 0
local HS = string.sub(KEYS[1], 1, -4) .. 'h'
local HM = HS .. 'm'

local function hn(x) return string.format('%.0f', x) end

-- hist_rid returns the replication ID of the Redis that runs the script
-- ('' where INFO does not say: the embedded Redis).
local hist_ridv
local function hist_rid()
  if not hist_ridv then
    local info = redis.pcall('INFO', 'replication')
    hist_ridv = type(info) == 'string' and string.match(info, 'master_replid:(%w+)') or ''
  end
  return hist_ridv
end

-- hist_epoch returns the history's epoch. A history without one, or with
-- fresh set, starts over: a new epoch and an empty stream. With check (a
-- client asks to recover), so does one written under another replication
-- ID: a replica promoted since (a failover) may lack the last events its
-- master had sent, and the room may have numbered new events at their
-- positions since. Appends do not check (INFO on every event is not free):
-- what they add after a failover goes with the old epoch, which the next
-- join or sync ends before anyone recovers from it.
local function hist_epoch(fresh, check)
  local h = redis.call('HMGET', HM, 'ep', 'rid')
  local old, ep = h[1], h[1]
  if fresh or not ep or check and h[2] ~= hist_rid() then
    local rid = hist_rid()
    local t = redis.call('TIME')
    ep = t[1] .. string.format('%06d', tonumber(t[2]))
    if ep == old then ep = ep .. '1' end
    redis.call('DEL', HS, HM)
    redis.call('HSET', HM, 'ep', ep, 'rid', rid)
  end
  redis.call('PEXPIRE', HM, 4 * hist_ttl)
  return ep
end

-- hist_add appends envelope env at position q-s, time ts (ms), then trims
-- the stream by length (MAXLEN) and age.
local function hist_add(q, s, ts, env)
  if not hist_on then return end
  hist_epoch(q == 1 and s == 0) -- seq 1: the room started (over)
  local id = hn(q) .. '-' .. hn(s)
  local r = redis.pcall('XADD', HS, 'MAXLEN', hist_max, id, 't', hn(ts), 'm', env)
  if type(r) == 'table' and r.err then -- the stream is ahead of the room's seq: lost data
    hist_epoch(true)
    redis.call('XADD', HS, 'MAXLEN', hist_max, id, 't', hn(ts), 'm', env)
  end
  for _ = 1, 8 do
    local e = redis.call('XRANGE', HS, '-', '+', 'COUNT', 1)[1]
    if not e or tonumber(e[2][2]) >= ts - hist_ttl then break end
    redis.call('XDEL', HS, e[1])
  end
  redis.call('PEXPIRE', HS, hist_ttl)
end

-- hist_sub returns the sub of the current position: that of the last module
-- message if it came after the presence event of seq q, else 0.
local function hist_sub(q)
  local h = redis.call('HMGET', HM, 'lq', 'ls')
  if tonumber(h[1]) == q then return tonumber(h[2]) end
  return 0
end

-- hist_drop deletes the history (the room is empty).
local function hist_drop()
  redis.call('DEL', HS, HM)
end

local function hist_pos(id)
  local q, s = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(q), tonumber(s)
end

-- hist_since returns the envelopes after position (sq, ss) up to the
-- current one, in order, or nil when the history cannot tell: history off,
-- another epoch, entries after the position trimmed or expired, or a
-- position the history never reached.
local function hist_since(sq, ss, sep)
  if not hist_on or redis.call('HGET', HM, 'ep') ~= sep then return nil end
  local first = redis.call('XRANGE', HS, '-', '+', 'COUNT', 1)[1]
  if not first then return nil end
  local fq, fs = hist_pos(first[1])
  if fq > sq or fq == sq and fs > ss + 1 then return nil end
  local lq, ls = hist_pos(redis.call('XREVRANGE', HS, '+', '-', 'COUNT', 1)[1][1])
  if lq < sq or lq == sq and ls < ss then return nil end
  local out = {}
  for i, e in ipairs(redis.call('XRANGE', HS, hn(sq) .. '-' .. hn(ss + 1), '+')) do out[i] = e[2][4] end
  return out
end
`

// recordScript publishes a module message to one room and appends it to the
// room's history (Broadcast.Recorded): its position is the room's seq and
// the next sub after it, and the message's data (a JSON object) gets them
// as fields seq and sub.
//
//	KEYS[1] the room's seq key  KEYS[2] the history stream  KEYS[3] its hash
//	ARGV[1] the channel  ARGV[2] the envelope up to its data, without the
//	closing part: {"r":...,"e":...  ARGV[3] the data object without its
//	closing brace ("{" for an empty object)  ARGV[4] the history setting
//
// Returns {seq, sub}.
var recordScript = luaScript(3, luaHistory+`
local q = tonumber(redis.call('GET', KEYS[1]) or '0')
local s = 1
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if hist_on then
  hist_epoch(false)
  s = hist_sub(q) + 1
  redis.call('HSET', HM, 'lq', hn(q), 'ls', hn(s))
end
local data = ARGV[3]
if data ~= '{' then data = data .. ',' end
local env = ARGV[2] .. ',"hq":' .. hn(q) .. ',"hs":' .. hn(s) .. ',"d":' .. data .. '"seq":' .. hn(q) ..
  ',"sub":' .. hn(s) .. '}}'
redis.call('PUBLISH', ARGV[1], env)
hist_add(q, s, now, env)
return {q, s}
`)

// luaRecovery follows the room prelude (luaPrelude) in the scripts that
// answer a client with the position it saw last: presence:join and
// presence:sync.
const luaRecovery = `
-- recovery returns the snapshot, the history's epoch ('' when history is
-- off), recovered (-1: the client gave no position; 0: the history cannot
-- tell what it missed; 1: it can), the envelopes it missed, and the room's
-- current position (seq, sub). A client that recovered gets a snapshot of
-- counts only; the others get the snapshot they asked for.
local function recovery(snapmode, pagesize, cap)
  local hep, rec, replay, q = '', -1, {}, tonumber(redis.call('GET', K.seq) or '0')
  local sub = 0
  if hist_on then
    hep = hist_epoch(false, true)
    sub = hist_sub(q)
  end
  local sq, ss, sep = string.match(hist_rest, '^:(%d+):(%d+):(%d*)$')
  if sq then
    rec = 0
    local r = hist_on and hist_since(tonumber(sq), tonumber(ss), sep)
    if r then rec, replay = 1, r end
  end
  local snap
  if rec == 1 then snap = count_snapshot() else snap = snapshot(snapmode, pagesize, cap) end
  return snap, hep, rec, replay, q, sub
end
`

// syncSinceScript answers presence:sync with a position: it checks that
// the socket (ARGV[5]) owns connection ARGV[6] (key KEYS[7]), returning
// false if not, then answers as luaRecovery does, with ARGV[7] the snapshot
// mode, ARGV[8] the page size and ARGV[9] the cap of a full snapshot.
//
// Returns {snapshot, history epoch, recovered, envelopes, seq, sub}.
var syncSinceScript = luaScript(9, luaPrelude+luaRecovery+`
if redis.call('HGET', K.conn, 'own') ~= sid then return false end
return {recovery(ARGV[7], tonumber(ARGV[8]), ARGV[9])}
`)
