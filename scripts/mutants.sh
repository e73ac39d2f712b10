#!/usr/bin/env bash
# mutants.sh breaks one rule at a time in a copy of the tree and checks that
# the tests guarding it fail. Run it by hand (`make mutants`), not in CI: it
# compiles and tests once per mutant.
#
# First the unmutated tree must pass all the tests the mutants run. Then, for
# each mutant: copy the tracked files (git ls-files) into a temp dir, apply
# its replacements (exact text, which must occur exactly once, or the mutant
# is "not applicable"), build, run only its tests (go test -run), and report
# "killed" (a test failed: good) or "survived" (the tests missed the bug).
# Exit status 1 if any mutant survived, was not applicable or did not build.
#
# Usage: scripts/mutants.sh [name...]     (default: every mutant)
#        KEEP=1 scripts/mutants.sh ...    keeps the temp dirs and logs
#        GO=go1.26 scripts/mutants.sh     another go command
set -uo pipefail

# The mutants. One row per replacement; rows with the same name form one
# mutant. Columns are separated by " | ": name | file | tests | old | new.
# In old and new, \n stands for a newline, \t for a tab and "" alone for
# nothing. Anchors
# in hub.go and the engine files may need re-anchoring when those files
# change.
MUTANTS=$(cat <<'TABLE'
# Issue 13's six
reap-no-recheck      | presence_lua.go | TestReapersRace | local uid = redis.call('HGET', K.conns, cid)\n  if not uid then return false end | local uid = redis.call('HGET', K.conns, cid) or 'u'
reap-no-recheck      | presence_lua.go | TestReapersRace | redis.call('ZREM', K.due, cid)\n | ""
grace-2x             | presence_lua.go | TestDisconnectGrace | redis.call('ZADD', K.due, now + grace, cid) | redis.call('ZADD', K.due, now + 2 * grace, cid)
grace-3x             | presence_lua.go | TestDisconnectGrace | redis.call('ZADD', K.due, now + grace, cid) | redis.call('ZADD', K.due, now + 3 * grace, cid)
grace-4x             | presence_lua.go | TestDisconnectGrace | redis.call('ZADD', K.due, now + grace, cid) | redis.call('ZADD', K.due, now + 4 * grace, cid)
grace-half           | presence_lua.go | TestDisconnectGrace | redis.call('ZADD', K.due, now + grace, cid) | redis.call('ZADD', K.due, now + grace / 2, cid)
state-limit-ge       | presence_lua.go | TestStateSizeLimit|TestStateSizeLimitMerged|FuzzStateMerge | if #st > maxbytes then return nil end | if #st >= maxbytes then return nil end
resume-no-size-check | presence_lua.go | TestStateSizeLimit|TestStateSizeLimitMerged | if newst == nil then return {'too_large'} end\n | ""
rate-no-burst-cap    | limits.go | TestRateBucket|TestRateLimited | b.tokens = min(float64(max(r.Burst, 1)), b.tokens+now.Sub(b.last).Seconds()*r.PerSecond) | b.tokens = b.tokens + now.Sub(b.last).Seconds()*r.PerSecond
rate-refill-10x      | limits.go | TestRateBucket|TestRateLimited | b.tokens+now.Sub(b.last).Seconds()*r.PerSecond) | b.tokens+now.Sub(b.last).Seconds()*r.PerSecond*10)
origin-prefix        | server.go | TestOriginAllowlist|TestOriginAllowlistBothVersions | slices.Contains(s.opts.AllowedOrigins, origin) | slices.ContainsFunc(s.opts.AllowedOrigins, func(a string) bool { return len(origin) >= len(a) && origin[:len(a)] == a })
reaper-leave-seq     | presence_lua.go | TestDisconnectGrace|TestExpiryOfCrashedNode | if remove(cid, reason, now, {h[3], h[4], h[5]}) then | redis.call('INCR', K.seq)\n  if remove(cid, reason, now, {h[3], h[4], h[5]}) then
# Epoch fencing
heartbeat-no-fence   | presence_lua.go | TestHeartbeatEpochsAndPatches|TestResumeFencesOldSocket | elseif ep >= 0 and ep < cur then | elseif false then
patch-no-fence       | presence_lua.go | TestHeartbeatEpochsAndPatches|TestResumeFencesOldSocket | if ep >= 0 and ep < cur then return {2, cur, 0} end | ""
takeover-keeps-owner | presence_lua.go | TestResumeFencesOldSocket|TestResumeAfterDrop | redis.call('HSET', ck, 'own', sid, 'ep', ep) | redis.call('HSET', ck, 'ep', ep)
resume-any-epoch     | presence_lua.go | TestResumeAfterDrop|TestResumeFencesOldSocket | if h[1] == rep then | if true then
# Resume keeps its connId
resume-new-connid    | presence_lua.go | TestResumeAfterDrop|TestResumeFencesOldSocket | return join_reply(rcid, ep, n(minseq), 1) | return join_reply(cid, ep, n(minseq), 1)
resume-never         | presence_lua.go | TestResumeAfterDrop|TestResumeFencesOldSocket | if rcid ~= '' and redis.call('HGET', K.conns, rcid) == uid then | if false then
# userJoined / userLeft, count
user-joined-always   | presence_lua.go | TestJoinSnapshotAndEvents|TestLeaveEmptiesRoomAndRestartsSeq | redis.call('HINCRBY', K.members, uid, 1) == 1 | redis.call('HINCRBY', K.members, uid, 1) >= 1
user-left-never      | presence_lua.go | TestJoinSnapshotAndEvents|TestLeaveEmptiesRoomAndRestartsSeq|TestDisconnectGrace | redis.call('HINCRBY', K.members, uid, -1) <= 0 | redis.call('HINCRBY', K.members, uid, -1) < 0
count-swapped        | presence_lua.go | TestJoinSnapshotAndEvents|TestLeaveEmptiesRoomAndRestartsSeq | return redis.call('HLEN', K.conns), redis.call('HLEN', K.members) | return redis.call('HLEN', K.members), redis.call('HLEN', K.conns)
# The snapshot/event boundary
join-minseq-late     | presence_lua.go | TestJoinMinSeq|TestJoinSnapshotAndEvents | return join_reply(cid, '1', n(seq), 0) | return join_reply(cid, '1', n(seq + 1), 0)
join-minseq-early    | presence_lua.go | TestJoinMinSeq|TestJoinSnapshotAndEvents | return join_reply(cid, '1', n(seq), 0) | return join_reply(cid, '1', n(seq - 1), 0)
resume-minseq-late   | presence_lua.go | TestJoinMinSeq|TestResumeAfterDrop | local minseq = tonumber(redis.call('GET', K.seq) or '0') + 1 | local minseq = tonumber(redis.call('GET', K.seq) or '0') + 2
resume-minseq-early  | presence_lua.go | TestJoinMinSeq|TestResumeAfterDrop | local minseq = tonumber(redis.call('GET', K.seq) or '0') + 1 | local minseq = tonumber(redis.call('GET', K.seq) or '0')
hub-minseq-early     | hub.go | TestStaleEventsDropped|TestJoinSnapshotAndEvents | if e.Seq < m.minSeq { | if e.Seq < m.minSeq-1 {
# JWT claims
jwt-rooms-ignored    | auth.go | TestJWTForbidden | case c.rooms != nil && !c.rooms[room]: | case false:
jwt-sub-ignored      | auth.go | TestJWTForbidden | case userID != c.sub: | case false:
# Origin exact match
origin-any-scheme    | server.go | TestOriginAllowlist|TestOriginAllowlistBothVersions | slices.Contains(s.opts.AllowedOrigins, origin) | slices.ContainsFunc(s.opts.AllowedOrigins, func(a string) bool { ia, io := len(a), len(origin); for i := range a { if a[i] == ':' { ia = i; break } }; for i := range origin { if origin[i] == ':' { io = i; break } }; return a[ia:] == origin[io:] })
# Input hardening (issue 12)
lone-surrogate       | payload.go | TestDecodeObjectSurrogates|TestUnicodeNotRewritten|FuzzPayload | if hasLoneSurrogate(raw) { | if false {
line-separator       | payload.go | TestCanonicalJSONLineSeparators|TestUnicodeNotRewritten|FuzzPayload | 0x2028+rune(b[i+5]-'8') | rune(0x2000+(int(b[i+4]-'0')*10+int(b[i+5]-'0')))
metrics-open         | api.go | TestMetricsToken | s.metricsGuard(s.metrics.handler()) | s.metrics.handler()
# The engine (issue 8) and its security probes (issue 12)
binary-decoded       | engine_codec.go | TestEngineCodec|FuzzDecodeSIO | case sioBinaryAck:\n\t\treturn p, errBinaryPacket | case sioBinaryAck:
abandoned-kept       | engine_session.go | TestAbandonedHandshakesReclaimed | return s.created.Add(s.eng.opts.pingTimeout) | return s.created.Add(time.Hour)
per-ip-slot-kept     | engine.go | TestSocketsPerIPCapHeldUntilGone | if e.perIP[s.ip]--; e.perIP[s.ip] <= 0 { | if e.perIP[s.ip] <= 0 {
disconnect-ignored   | engine_packet.go | TestDisconnectPacketClosesTransport | if !e.leaveRoot(s) { | if false && !e.leaveRoot(s) {
silent-kept          | engine_session.go | TestPingTimeout | if !now.Before(s.deadlineLocked()) { | if false {
no-v4-pings          | engine_session.go | TestPingTimeout | if s.proto == 4 && !now.Before(s.nextPing) { | if false {
slow-client-kept     | engine_session.go | TestSlowClientDropped | if s.queued+n > s.eng.opts.maxQueueBytes && s.notReadingLocked() { | if false {
burst-drops-reader   | engine_session.go | TestBurstDoesNotDropAReader | if s.queued+n > s.eng.opts.maxQueueBytes && s.notReadingLocked() { | if s.queued+n > s.eng.opts.maxQueueBytes {
flood-never-dropped  | socket.go | TestUnknownEventFlood | return s.strikes > maxStrikes | return false
v4-auth-ignored      | server.go | TestConnectAuthBothVersions | cl, err := verifyToken(s.opts.JWTSecret, token) | cl, err := &claims{sub: token[:0] + "alice"}, error(nil)
poll-one-per-answer  | engine_polling.go | TestPollingClientInBusyRoom | for _, f := range frames {\n\t\tadd(f)\n\t} | if len(frames) > 0 {\n\t\tadd(frames[0])\n\t}
upgrade-no-release   | engine_websocket.go | TestUpgradeKeepsOrder | s.upgrading = true\n\ts.wakeLocked() | s.upgrading = true
# RFC 6455 rules and the Engine.IO test suite's findings (issue 20)
ws-utf8-unchecked    | engine_websocket.go | TestWSReaderRefuses | if !utf8.Valid(payload) { | if false {
ws-utf8-fragments-unchecked | engine_websocket.go | TestWSReaderRefuses | if !utf8.Valid(r.msg.Bytes()) { | if false {
ws-close-1-byte      | engine_websocket.go | TestWSReaderRefuses | if len(payload) == 1 {\n\t\treturn errWSProtocol\n\t} | ""
ws-close-any-code    | engine_websocket.go | TestWSReaderRefuses | if !validCloseCode(binary.BigEndian.Uint16(payload)) || !utf8.Valid(payload[2:]) { | if !utf8.Valid(payload[2:]) {
ws-close-any-reason  | engine_websocket.go | TestWSReaderRefuses | if !validCloseCode(binary.BigEndian.Uint16(payload)) || !utf8.Valid(payload[2:]) { | if !validCloseCode(binary.BigEndian.Uint16(payload)) {
ws-close-reserved-ok | engine_websocket.go | TestWSReaderRefuses | case c >= 3000 && c <= 4999: | case c >= 1015 && c <= 4999:
ws-close-not-echoed  | engine_websocket.go | TestWSReaderCloseHandshake | _ = r.nc.writeControl(wsClose, payload)\n\treturn errWSClosed | return errWSClosed
ws-data-after-close  | engine_websocket.go | TestNoDataFrameAfterClose|TestWSReaderCloseHandshake | return errWSCloseSent\n\t}\n\t_ = c.SetWriteDeadline | _ = errWSCloseSent\n\t}\n\t_ = c.SetWriteDeadline
poll-close-no-noop   | engine_polling.go | TestPollingCloseAndUpgradeRaces | polling := s.ws == nil && s.probe == nil | polling := false
poll-during-probe-answered | engine_polling.go | TestPollingCloseAndUpgradeRaces | if s.probe != nil && !e.awaitProbeLocked(r, s) { | if false {
ws-binary-accepted   | engine_websocket.go | TestWSReaderRefuses | if op == wsBinary && !r.binary { | if false {
binary-packet-accepted | engine_binary.go | TestMalformedPacketClosesOnlyItsSocket | if pb == nil {\n\t\treturn errBadPacket | if pb == nil {\n\t\treturn nil
# Reliability (issue 9)
pool-keeps-stale     | redis.go | TestQuietNodeRecoversFromRedisRestart | if tc, ok := c.(*trackedConn); ok && tc.born <= h.lostAt.Load() { | if false {
no-resync            | presence.go | TestResyncAfterSubscriptionGap | told += p.hub.resyncRoom(room, seqs[i], gens[i]) | _, _, _ = room, seqs[i], gens[i]
restarted-room-kept  | hub.go | TestRestartedRoomStopsStaleSockets | if m.lastSeq == 0 || seq > m.lastSeq { | if true {
not-joined-first     | presence_handlers.go | TestOversizedPatchOutranksNotJoined | if st := stateJSON(patch); len(st) > p.opts.MaxStateBytes { | if st := stateJSON(patch); false && len(st) > p.opts.MaxStateBytes {
# Per-bucket subscriptions (issue 11)
linger-none          | pubsub.go | TestNodeHearsOnlyItsBuckets | want := bk.refs > 0 || !bk.idle.IsZero() && now.Sub(bk.idle) < m.linger | want := bk.refs > 0 || !bk.idle.IsZero() && now.Sub(bk.idle) < 0
bucket-never-dropped | hub.go | TestNodeHearsOnlyItsBuckets | h.subs.release(roomBucket(room)) | _ = room
gap-not-marked       | pubsub.go | TestResyncAfterSubscriptionGap | if len(gapped) > 0 {\n\t\tm.onGap(gapped)\n\t} | _ = gapped
join-no-wait         | presence_handlers.go | TestJoinWaitsForItsSubscription | if err := p.hub.ready(ctx, room); err != nil { | if err := error(nil); err != nil {
stale-resync-applied | hub_resync.go | TestStaleResyncAfterSecondGap | if ok && gap.gen != gen { | if false {
script-key-moved-ignored | cluster.go | TestClusterServerSurvivesReshard | return strings.Contains(msg, "Script attempted to access a non local key") | return false
backlog-ignored      | dispatcher.go | TestBackloggedNodeShedsPatches | (class == classPatch || class == classChat) && s.eng.backlogged() | (class == classPatch || class == classChat) && false
# Routing (rooms, users, sockets, broadcasts)
route-no-dedupe      | hub.go | TestRoutingRooms | 	if len(e.All) == 0 {\n\t\treturn true\n\t} | 	if true {\n\t\treturn true\n\t}
route-except-socket  | hub.go | TestRoutingRooms | return slices.Contains(e.ExceptSockets, s.id) | return slices.Contains(e.ExceptSockets, "")
route-except-room    | hub.go | TestRoutingRooms | 		if in[room] != nil {\n\t\t\treturn true | 		if in[room] == nil && false {\n\t\t\treturn true
route-no-user-room   | server.go | TestRoutingUsersAndSockets | 		rooms = append(rooms, userRoom(u)) | 		_ = u
route-leave-kept     | hub.go | TestRoutingRooms|TestModuleAndPresenceShareARoom | 	m.joined = false\n | ""
route-drop-kept      | server.go | TestRoutingOnlyWhereNeeded | func (s *Server) gone(sock *Socket) { s.hub.drop(sock) } | func (s *Server) gone(sock *Socket) {}
emitter-user-room    | emitter/emitter.go | TestEmitterMatchesServerWire|TestEmitterFromAnotherProcess | "{u}"+u | "{U}"+u
# Large rooms
batched-sent-each    | hub_batch.go | TestPresenceEventModes | 	case modeBatched:\n\t\tm.batch = append(m.batch, e) | 	case modeBatched:\n\t\ts.sendFrame(e.frame)
count-stale          | hub_batch.go | TestPresenceEventModes | 		m.countEv = e\n | 		if m.countEv == nil {\n\t\t\tm.countEv = e\n\t\t}\n
page-ids-kept        | presence_lua.go | TestMemberPages | \n  redis.call('ZREM', K.ids, cid) | ""
page-next-off        | presence_lua.go | TestMemberPages | nextj = '"' .. cids[#cids] .. '"' | nextj = '"' .. cids[1] .. '"'
slow-big-frame       | engine_session.go | TestBigFrameToIdleClient | 		s.lastTake = time.Now()\n\t}\n\t// Checked | 	}\n\t// Checked
# Tests that used to pass vacuously (issue 22)
sid-counter          | broadcast.go | TestSessionIDsUnguessable | 	_, _ = rand.Read(b[:15]) // crypto/rand.Read never fails | 	_, _ = rand.Read(b[:1]) // crypto/rand.Read never fails
jwt-empty-rooms-any  | auth.go | TestJWTForbidden | 		c.rooms = make(map[string]bool, len(list)) | 		if len(list) > 0 {\n\t\t\tc.rooms = make(map[string]bool, len(list))\n\t\t}
v3-pings-ignored     | engine_packet.go | TestPingTimeout | 	s.seen()\n\tswitch p[0] { | 	if p[0] != eioPing {\n\t\ts.seen()\n\t}\n\tswitch p[0] {
http-conn-cap-off    | server.go | TestHTTPConnsPerIPCap | 		if s.httpIP[ip] >= limit { | 		if false {
# Namespaces and binary events (issue 20)
attach-count-unbounded | engine_binary.go | TestBinaryLimits | if p.attached > maxAttachments { | if false {
attach-size-unbounded | engine_binary.go | TestBinaryLimits | if pb.size+base64.StdEncoding.DecodedLen(len(enc)) > e.opts.maxMessage+3 { | if false {
attach-size-unbounded | engine_binary.go | TestBinaryLimits | if pb.size += len(data); pb.size > e.opts.maxMessage { | if pb.size += len(data); false {
namespace-cap-off    | engine_namespace.go | TestNamespacesPerSessionBounded | if s.namespaceCount() >= maxNamespaces { | if false {
connect-timeout-off  | engine_session.go | TestConnectTimeout | if s.connected || len(s.nsps) > 0 || s.eng.opts.echo { | if true {
# Recovery (issue 21) and big rooms' counts
hist-epoch-ignored   | history_lua.go | TestRecoverRoomRestarted|TestRecoverHistoryLost|TestRecoverAfterRedisLostItsData | if not hist_on or redis.call('HGET', HM, 'ep') ~= sep then return nil end | if not hist_on then return nil end
hist-reach-unchecked | history_lua.go | TestRecoverTooLate | if fq > sq or fq == sq and fs > ss + 1 then return nil end | ""
hist-age-untrimmed   | history_lua.go | TestHistoryBounded | if not e or tonumber(e[2][2]) >= ts - hist_ttl then break end | break
counts-not-spread    | hub_batch.go | TestBigRoomCountsSpread | if m.countEv != nil && (h.tick+m.slot)%every != 0 { | if m.countEv != nil && (h.tick+m.slot)%every != 0 && false {
hist-ahead-unchecked | history_lua.go | TestRecoverFromAhead|TestRecoverAfterFailoverLostHistory | if lq < sq or lq == sq and ls < ss then return nil end | ""
hist-rid-ignored     | history_lua.go | TestRecoverAfterFailoverLostHistory | if fresh or not ep or check and h[2] ~= hist_rid() then | if fresh or not ep then
beat-not-refreshed   | presence_lua.go | TestHeartbeatsKeepAlive | redis.call('ZADD', dk, now + lookback, cid) | redis.call('ZADD', dk, 'NX', now + lookback, cid)
replay-dups-kept     | history.go | TestReplayThenLiveInTheHub|TestRecoverWhileLive | if at, ok := e.position(); ok && (jh.recovered == 1 || joined && e.Seq == 0) && !at.after(jh.end) { | if at, ok := e.position(); ok && false && !at.after(jh.end) {
old-room-events-kept | history.go | TestOldRoomEventsBeforeOwnJoinDropped | 	m.buf = sinceOwnEvent(m.buf, connID, minSeq)\n | ""
TABLE
)

GO=${GO:-go}
root=$(git rev-parse --show-toplevel) || exit 1
cd "$root" || exit 1

# trim strips surrounding spaces.
trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; printf '%s' "${s%"${s##*[![:space:]]}"}"; }

# replace_once FILE OLD NEW: replace the only occurrence of OLD in FILE
# (\n in OLD and NEW meaning newline, \t tab). Exit 3 when OLD is missing, 4 when it
# occurs more than once; FILE is then left alone.
replace_once() {
	OLD=$2 NEW=$3 perl -e '
		my ($f) = @ARGV;
		my ($old, $new) = ($ENV{OLD}, $ENV{NEW});
		s/\\n/\n/g for $old, $new;
		s/\\t/\t/g for $old, $new;
		open(my $in, "<", $f) or exit 3;
		local $/; my $text = <$in>; close $in;
		my $at = index($text, $old);
		exit 3 if $at < 0;
		exit 4 if index($text, $old, $at + 1) >= 0;
		substr($text, $at, length $old) = $new;
		open(my $out, ">", $f) or exit 5;
		print $out $text; close $out;' "$1"
}

# Collect the mutants in table order.
declare -a names=()
declare -A tests=() rows=()
while IFS= read -r line; do
	[[ -z ${line// /} || $line == \#* ]] && continue
	name=$(trim "${line%%|*}"); rest=${line#*|}
	file=$(trim "${rest%% | *}"); rest=${rest#* | }
	# tests may contain '|' (a -run alternation): it ends at the next " | ".
	t=$(trim "${rest%% | *}"); rest=${rest#* | }
	old=$(trim "${rest%% | *}"); new=$(trim "${rest#* | }")
	[[ $rest == *" | "* ]] || { echo "mutant $name: a row needs five columns" >&2; exit 2; }
	[[ $new != '""' ]] || new=""
	if [[ -z ${tests[$name]+x} ]]; then names+=("$name"); fi
	tests[$name]=$t
	rows[$name]+="$file"$'\x1f'"$old"$'\x1f'"$new"$'\x1e'
done <<<"$MUTANTS"

if (($# > 0)); then
	for n in "$@"; do
		[[ -n ${tests[$n]+x} ]] || { echo "no mutant named $n" >&2; exit 2; }
	done
	names=("$@")
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/rtm-mutants.XXXXXX") || exit 1
[[ -n ${KEEP:-} ]] || trap 'rm -rf "$work"' EXIT
echo "mutants: ${#names[@]}, work dir $work"

# copy_tree DIR copies the tracked files, as they are in the work tree, to DIR.
copy_tree() { mkdir -p "$1" && git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$1"; }

# The baseline: the unmutated tree must pass every test the mutants run, or
# a failure under a mutant would prove nothing.
all=$(for name in "${names[@]}"; do printf '%s|' "${tests[$name]}"; done)
copy_tree "$work/baseline"
if ! (cd "$work/baseline" && $GO test -count=1 -timeout 600s -v -run "^(${all%|})\$" .) >"$work/baseline.log" 2>&1; then
	echo "FAIL: the unmutated tree fails the mutants' tests; fix that first:" >&2
	grep -- '--- FAIL' "$work/baseline.log" >&2
	KEEP=1
	exit 1
fi
echo "baseline: the unmutated tree passes the mutants' $(grep -c -- '^--- PASS' "$work/baseline.log") tests"

bad=0
declare -a report=()
for name in "${names[@]}"; do
	dir=$work/$name
	copy_tree "$dir"
	status=""
	IFS=$'\x1e' read -r -d '' -a reps <<<"${rows[$name]}"
	for rep in "${reps[@]}"; do
		[[ $rep == *$'\x1f'* ]] || continue
		IFS=$'\x1f' read -r file old new <<<"$rep"
		replace_once "$dir/$file" "$old" "$new"
		case $? in
		0) ;;
		3) status="NOT APPLICABLE ($file: text not found: $old)" ;;
		4) status="NOT APPLICABLE ($file: text found more than once: $old)" ;;
		*) status="NOT APPLICABLE ($file: cannot rewrite)" ;;
		esac
		[[ -z $status ]] || break
	done
	run="^(${tests[$name]})\$"
	log=$dir.log
	if [[ -z $status ]]; then
		if ! (cd "$dir" && $GO test -count=1 -run '^$' .) >"$log" 2>&1; then
			status="BROKEN (does not build; see $log)"
		elif (cd "$dir" && $GO test -count=1 -timeout 300s -run "$run" .) >>"$log" 2>&1; then
			status="SURVIVED"
		else
			killers=$(grep -o -- '--- FAIL: [A-Z][A-Za-z0-9_]*' "$log" | sed 's/--- FAIL: //' | sort -u | paste -sd, -)
			status="killed by ${killers:-a failing run (see $log)}"
		fi
	fi
	[[ $status == killed* ]] || bad=1
	printf '%-22s %s\n' "$name" "$status"
	report+=("$(printf '%-22s %s' "$name" "$status")")
	[[ -n ${KEEP:-} ]] || rm -rf "$dir"
done

echo
echo "mutant                 result (tests run: the mutant's own)"
printf '%s\n' "${report[@]}"
if ((bad)); then
	echo "FAIL: some mutants survived, did not apply or did not build"
	exit 1
fi
echo "ok: every mutant killed"
