package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"

	"rtm/client"
)

// The bigroom scenario (-scenario bigroom): -members members join ONE
// presence room, member i on node i % len(-target), at -join-rate joins per
// second, while -other-rooms small rooms of -other-users members each
// heartbeat every -other-hb-every. Phases:
//
//  1. setup: the other rooms' connections join (their own rooms, spread over
//     the nodes like the members); when some members are to send the large
//     room options, a probe join checks that the server knows them;
//  2. baseline (-baseline; 0: as long as the ramp will last): only the other
//     rooms heartbeat, and their ack latency is recorded;
//  3. ramp: the members dial and join at -join-rate (at most
//     -dial-concurrency at once); the other rooms' heartbeat latency is
//     recorded apart;
//  4. after the last join: -settle later the nodes' /metrics are read again
//     (CPU, RSS: the ramp's cost), and the generator waits, at most
//     -converge-within after the last join, until every listening member's
//     view of the room's size equals the number of members joined.
//
// Each member is its own user ("big-u<i>") with one connection, heartbeats
// every -hb-interval (10 s by default, what real clients do: the server's
// PRESENCE_TTL_MS is 30 s) and stays until the end; then every connection is
// closed (not left: a leave per member would fan out to every remaining
// member, which measures nothing here and takes long).
//
// A member's view of the room's size (countView) is the room's number of
// CONNECTIONS, which is what the protocol gives most directly: the
// count.connections of a counts-only or paged snapshot (and of a full
// snapshot the server capped), the length of a full snapshot's connections,
// then the count.connections carried by every presence:event (each one, or
// each one of a presence:batch) and by every presence:count with a higher
// seq. Every bench member is one user with one connection, so it is also
// the number of members (users). See PROTOCOL.md, "Large rooms".

// Phases of a bigroom run: the other rooms' heartbeat latency is recorded
// per phase.
const (
	bigPhaseSetup = iota
	bigPhaseBaseline
	bigPhaseRamp
	bigPhaseAfter
	bigPhases
)

var bigPhaseNames = [bigPhases]string{"setup", "baseline", "ramp", "after"}

// Values of -events and -snapshot (PROTOCOL.md, "Large rooms"); "" sends no
// option at all (a revision 2 client).
var (
	bigEventModes    = map[string]bool{"": true, "each": true, "batched": true, "count": true, "none": true}
	bigSnapshotModes = map[string]bool{"": true, "full": true, "count": true, "page": true}
)

// viewUpdate is what one presence event (or presence:count) tells a member
// about the room's size.
type viewUpdate struct {
	seq      int64
	conns    int64 // the room's connections after seq, when hasCount
	hasCount bool
	delta    int64 // without a count: +1 for a join, -1 for a leave, 0 for an update
}

// countView is one member's view of the room's number of connections: set
// by its join's snapshot (or a sync's), then moved on by every update with
// a higher seq. Updates without a count that arrive before anything set the
// view wait in pending until something does. Not safe for concurrent use.
type countView struct {
	set       bool
	seq       int64
	conns     int64
	changedAt time.Time // when conns last took its current value
	countMode bool      // presence:count: seq jumps are expected, not gaps
	gaps      int64     // updates whose seq was not the view's seq + 1
	pending   []viewUpdate
}

// setConns sets the count, noting when it changed.
func (v *countView) setConns(n int64, at time.Time) {
	if !v.set || n != v.conns {
		v.conns, v.changedAt = n, at
	}
	v.set = true
}

// fromSnapshot applies a snapshot of the room at seq holding conns
// connections; it is ignored when the view is already at seq or later.
func (v *countView) fromSnapshot(seq, conns int64, at time.Time) {
	if v.set && seq <= v.seq {
		return
	}
	v.seq = seq
	v.setConns(conns, at)
	v.flush(at)
}

// apply applies one update received at at.
func (v *countView) apply(u viewUpdate, at time.Time) {
	if !v.set {
		if !u.hasCount {
			v.pending = append(v.pending, u)
			return
		}
		v.seq = u.seq
		v.setConns(u.conns, at)
		v.flush(at)
		return
	}
	if u.seq <= v.seq {
		return // already in the view (the member's own join, events older than its snapshot)
	}
	if !v.countMode && u.seq != v.seq+1 {
		v.gaps++
	}
	v.seq = u.seq
	if u.hasCount {
		v.setConns(u.conns, at)
	} else {
		v.setConns(v.conns+u.delta, at)
	}
}

// flush applies the pending updates once the view is set.
func (v *countView) flush(at time.Time) {
	p := v.pending
	v.pending = nil
	for _, u := range p {
		v.apply(u, at)
	}
}

// Prefixes and keys the generator scans raw frames for.
var (
	rawPresenceEvent  = []byte(`["presence:event",`)
	rawPresenceBatch  = []byte(`["presence:batch",`)
	rawPresenceCount  = []byte(`["presence:count",`)
	rawPresenceResync = []byte(`["presence:resync",`)
	keySeq            = []byte(`"seq":`)
	keyConnections    = []byte(`"connections":`)
	keyType           = []byte(`"type":"`)
	keyEventStart     = []byte(`{"type":"`)
	keyEvents         = []byte(`"events":[`)
	keySnapshot       = []byte(`"snapshot":`)
	keyCountConns     = []byte(`"count":{"connections":`)
	keyLastSeen       = []byte(`"lastSeenMs":`)
	ackOKPrefix       = []byte(`{"ok":true`)
)

// bytesInt returns the integer after key (its first occurrence, or its last
// with last).
func bytesInt(b, key []byte, last bool) (int64, bool) {
	var i int
	if last {
		i = bytes.LastIndex(b, key)
	} else {
		i = bytes.Index(b, key)
	}
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	j := 0
	for j < len(b) && (b[j] >= '0' && b[j] <= '9' || j == 0 && b[j] == '-') {
		j++
	}
	n, err := strconv.ParseInt(string(b[:j]), 10, 64)
	return n, err == nil
}

// scanEventObject reads one presence event's seq, type and count without
// decoding it. The server writes seq before state and count last (the
// generator's members have no state), so the first "seq" and the last
// "connections" are the event's own.
func scanEventObject(ev []byte) (viewUpdate, bool) {
	seq, ok := bytesInt(ev, keySeq, false)
	if !ok {
		return viewUpdate{}, false
	}
	u := viewUpdate{seq: seq}
	if n, ok := bytesInt(ev, keyConnections, true); ok {
		u.conns, u.hasCount = n, true
	}
	if i := bytes.Index(ev, keyType); i >= 0 {
		t := ev[i+len(keyType):]
		switch {
		case bytes.HasPrefix(t, []byte(`join"`)):
			u.delta = 1
		case bytes.HasPrefix(t, []byte(`leave"`)):
			u.delta = -1
		}
	}
	return u, true
}

// Kinds of frame a member receives.
const (
	frameOther = iota
	framePresence
	frameResync
)

// scanViewUpdates appends to dst the updates of one event frame (its JSON
// array, unparsed): one for a presence:event or a presence:count, one per
// event of a presence:batch, in order. kind says whether it was a presence
// frame, a presence:resync or anything else.
func scanViewUpdates(data []byte, dst []viewUpdate) (out []viewUpdate, kind int) {
	switch {
	case bytes.HasPrefix(data, rawPresenceEvent):
		if u, ok := scanEventObject(data[len(rawPresenceEvent):]); ok {
			dst = append(dst, u)
		}
		return dst, framePresence
	case bytes.HasPrefix(data, rawPresenceCount):
		body := data[len(rawPresenceCount):]
		seq, ok1 := bytesInt(body, keySeq, false)
		n, ok2 := bytesInt(body, keyConnections, false) // "count":null has none
		if ok1 && ok2 {
			dst = append(dst, viewUpdate{seq: seq, conns: n, hasCount: true})
		}
		return dst, framePresence
	case bytes.HasPrefix(data, rawPresenceBatch):
		body := data[len(rawPresenceBatch):]
		i := bytes.Index(body, keyEvents)
		if i < 0 {
			return dst, framePresence
		}
		body = body[i+len(keyEvents):]
		for {
			start := bytes.Index(body, keyEventStart)
			if start < 0 {
				break
			}
			body = body[start+1:]
			end := bytes.Index(body, keyEventStart)
			ev := body
			if end >= 0 {
				ev = body[:end]
			}
			if u, ok := scanEventObject(ev); ok {
				dst = append(dst, u)
			}
			if end < 0 {
				break
			}
			body = body[end:]
		}
		return dst, framePresence
	case bytes.HasPrefix(data, rawPresenceResync):
		return dst, frameResync
	}
	return dst, frameOther
}

// errBadAck is an acknowledgement the generator cannot read.
var errBadAck = errors.New("unreadable acknowledgement")

// parseSnapshotAck reads the seq and the number of connections of the
// snapshot in a join or sync acknowledgement without decoding its lists:
// count.connections when the snapshot has a count (counts-only, page, capped
// full snapshot), else the number of connections listed (one lastSeenMs
// each). A refusal is returned as a *client.AckError.
func parseSnapshotAck(raw []byte) (seq, conns int64, err error) {
	if !bytes.HasPrefix(raw, ackOKPrefix) {
		var head struct {
			OK    *bool            `json:"ok"`
			Error *client.AckError `json:"error"`
		}
		if json.Unmarshal(raw, &head) != nil || head.OK == nil {
			return 0, 0, fmt.Errorf("%w: %.100s", errBadAck, raw)
		}
		if !*head.OK {
			if head.Error == nil || head.Error.Code == "" {
				return 0, 0, fmt.Errorf("%w: %.100s", errBadAck, raw)
			}
			return 0, 0, head.Error
		}
	}
	i := bytes.Index(raw, keySnapshot)
	if i < 0 {
		return 0, 0, fmt.Errorf("%w: no snapshot in %.100s", errBadAck, raw)
	}
	snap := raw[i+len(keySnapshot):]
	seq, ok := bytesInt(snap, keySeq, false)
	if !ok {
		return 0, 0, fmt.Errorf("%w: no seq in %.100s", errBadAck, raw)
	}
	if n, ok := bytesInt(snap, keyCountConns, false); ok {
		return seq, n, nil
	}
	return seq, int64(bytes.Count(snap, keyLastSeen)), nil
}

// hasSnapshotCount reports whether an acknowledgement's snapshot carries a
// count: the server knows the large-room options (a server before revision
// 3 ignores them and answers a full snapshot).
func hasSnapshotCount(raw []byte) bool {
	i := bytes.Index(raw, keySnapshot)
	return i >= 0 && bytes.Contains(raw[i:], keyCountConns)
}

// oldStyleMember reports whether the member of rank i joins old-style under
// -old-share share: the old-style members are spread evenly over the ranks.
func oldStyleMember(i int, share float64) bool {
	return math.Floor(float64(i+1)*share) > math.Floor(float64(i)*share)
}

// viewResult is a member's view at the end of the wait for convergence.
type viewResult struct {
	set       bool
	conns     int64
	changedAt time.Time
}

// ConvergenceFigures say how fast the members' views reached the room's
// final size.
type ConvergenceFigures struct {
	// FinalMembers is the number of joins acknowledged: the room's size the
	// views must reach. ServerRoomConnections is the room's count as the
	// server gave it at the end (a sync), -1 when it could not be read.
	FinalMembers          int64 `json:"final_members"`
	ServerRoomConnections int64 `json:"server_room_connections"`
	// Observed: the joined members that receive events (events other than
	// "none"); EventsNone: joined members with events "none", left out.
	Observed     int     `json:"members_observed"`
	EventsNone   int     `json:"members_events_none"`
	Converged    int     `json:"converged"`
	NotConverged int     `json:"not_converged"`
	DeadlineMs   float64 `json:"deadline_ms"`
	// P50Ms, P99Ms and MaxMs: over the converged members, the time from the
	// last join's ack to the moment their view took the final value (0 for
	// a view that had it by then).
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// NoView: members not converged that never had a view; WrongMin and
	// WrongMax: the smallest and largest view of the others not converged.
	NoView   int   `json:"not_converged_without_view"`
	WrongMin int64 `json:"not_converged_view_min"`
	WrongMax int64 `json:"not_converged_view_max"`
	// SeqGaps: events whose seq did not follow the view's (each and
	// batched); Resyncs: presence:resync received; NoneMemberFrames:
	// presence frames received by members that asked for none; Frames:
	// presence frames received by the members, all kinds.
	SeqGaps          int64 `json:"seq_gaps"`
	Resyncs          int64 `json:"resyncs"`
	NoneMemberFrames int64 `json:"frames_received_by_none_members"`
	Frames           int64 `json:"presence_frames_received"`
}

// quantileDur returns the nearest-rank quantile q of sorted (ascending); 0
// when empty.
func quantileDur(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// ratio is a over b, 0 when b is not positive.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// convergence judges the views against final, timing each converged one
// from lastJoin.
func convergence(views []viewResult, final int64, lastJoin time.Time) ConvergenceFigures {
	f := ConvergenceFigures{FinalMembers: final, Observed: len(views), WrongMin: -1, WrongMax: -1}
	var ds []time.Duration
	for _, v := range views {
		switch {
		case v.set && v.conns == final:
			f.Converged++
			ds = append(ds, max(v.changedAt.Sub(lastJoin), 0))
		case !v.set:
			f.NotConverged++
			f.NoView++
		default:
			f.NotConverged++
			if f.WrongMin < 0 || v.conns < f.WrongMin {
				f.WrongMin = v.conns
			}
			f.WrongMax = max(f.WrongMax, v.conns)
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	f.P50Ms, f.P99Ms = msOf(quantileDur(ds, 0.5)), msOf(quantileDur(ds, 0.99))
	if len(ds) > 0 {
		f.MaxMs = msOf(ds[len(ds)-1])
	}
	return f
}

// BigroomNode is one node's cost of the ramp, from its /metrics (CPU, RSS,
// sockets) and from the generator's member connections (bytes).
type BigroomNode struct {
	Target       string  `json:"target"`
	MembersOn    int64   `json:"members_joined_here"`
	SocketsAdded float64 `json:"sockets_added"`
	// CPUSeconds: process CPU from the ramp's start to -settle after its
	// end; CPUMicrosPerJoin is that over every join of the room (each node
	// works for every join: it delivers it to its own members),
	// CPUMicrosPerLocalJoin over the joins made on this node.
	CPUSeconds            float64 `json:"cpu_seconds_ramp_settle"`
	CPUMicrosPerJoin      float64 `json:"cpu_us_per_join"`
	CPUMicrosPerLocalJoin float64 `json:"cpu_us_per_local_join"`
	// BaselineCPUPercent is the node's CPU during the baseline (the other
	// rooms' heartbeats, the reaper, the runtime); CPUMicrosPerJoinNet is
	// CPUMicrosPerJoin less that rate over the same span: the joins' own
	// cost.
	BaselineCPUPercent  float64 `json:"baseline_cpu_percent"`
	CPUMicrosPerJoinNet float64 `json:"cpu_us_per_join_above_baseline"`
	// RSSBefore is read just before the ramp, RSSAfter -settle after it;
	// RSSPerConn is the growth over the sockets added (the members joined
	// here when the node does not report its sockets).
	RSSBefore  float64 `json:"rss_before_bytes"`
	RSSAfter   float64 `json:"rss_after_bytes"`
	RSSPerConn float64 `json:"rss_bytes_per_connection"`
	// BytesReceived: what the generator's member connections to this node
	// read over the same span (TCP payload: websocket frames, acks and
	// Engine.IO pings included); BytesPerJoin is that over the room's joins.
	BytesReceived int64   `json:"member_bytes_received"`
	BytesPerJoin  float64 `json:"member_bytes_received_per_join"`
}

// nodeFigures computes one node's figures from its samples at the
// baseline's start (base), just before the ramp and -settle after it; a nil
// sample (no /metrics) leaves the figures that need it at 0.
func nodeFigures(target string, base, before, after *serverSample, local, joins, bytesIn int64) BigroomNode {
	n := BigroomNode{Target: target, MembersOn: local, BytesReceived: bytesIn}
	if joins > 0 {
		n.BytesPerJoin = float64(bytesIn) / float64(joins)
	}
	if before == nil || after == nil {
		return n
	}
	n.CPUSeconds = cpuDelta(before, after)
	n.CPUMicrosPerJoin = cpuMicrosPerDelivery(n.CPUSeconds, joins)
	n.CPUMicrosPerLocalJoin = cpuMicrosPerDelivery(n.CPUSeconds, local)
	if base != nil {
		if secs := before.At.Sub(base.At).Seconds(); secs > 0 {
			rate := cpuDelta(base, before) / secs
			n.BaselineCPUPercent = 100 * rate
			n.CPUMicrosPerJoinNet = cpuMicrosPerDelivery(n.CPUSeconds-rate*after.At.Sub(before.At).Seconds(), joins)
		}
	}
	n.RSSBefore, n.RSSAfter = before.M["process_resident_memory_bytes"], after.M["process_resident_memory_bytes"]
	n.SocketsAdded = after.M["rtm_sockets"] - before.M["rtm_sockets"]
	conns := n.SocketsAdded
	if conns <= 0 {
		conns = float64(local)
	}
	if conns > 0 {
		n.RSSPerConn = (n.RSSAfter - n.RSSBefore) / conns
	}
	return n
}

// BigroomReport is the result of -scenario bigroom.
type BigroomReport struct {
	Date             string   `json:"date"`
	Targets          []string `json:"targets"`
	EIO              int      `json:"eio"`
	Members          int      `json:"members"`
	Events           string   `json:"events"`
	Snapshot         string   `json:"snapshot"`
	PageSize         int      `json:"page_size,omitempty"`
	OldShare         float64  `json:"old_share"`
	MembersOldStyle  int      `json:"members_old_style"`
	MembersOptedIn   int      `json:"members_opted_in"`
	OptionsProbe     string   `json:"options_probe"`
	JoinRateOffered  float64  `json:"join_rate_offered"`
	JoinRateAchieved float64  `json:"join_rate_achieved"`
	RampSeconds      float64  `json:"ramp_seconds"`
	BaselineSeconds  float64  `json:"baseline_seconds"`
	SettleSeconds    float64  `json:"settle_seconds"`

	Joined           int64            `json:"joined"`
	JoinedPerNode    []int64          `json:"joined_per_node"`
	JoinErrors       map[string]int64 `json:"join_errors_by_code"`
	JoinLatency      Summary          `json:"join_ack_latency"`
	MemberHeartbeats map[string]int64 `json:"member_heartbeats_by_outcome"`
	Disconnected     int64            `json:"members_disconnected_by_server"`

	Convergence ConvergenceFigures `json:"convergence"`

	OtherRooms       int              `json:"other_rooms"`
	OtherUsers       int              `json:"other_users_per_room"`
	OtherJoined      int64            `json:"other_joined"`
	OtherJoinErrors  map[string]int64 `json:"other_join_errors_by_code"`
	OtherHeartbeats  map[string]int64 `json:"other_heartbeats_by_outcome"`
	OtherHBBaseline  Summary          `json:"other_heartbeat_latency_baseline"`
	OtherHBRamp      Summary          `json:"other_heartbeat_latency_ramp"`
	OtherHBP99Ratio  float64          `json:"other_heartbeat_p99_ratio_ramp_to_baseline"`
	OtherHBAfterRamp Summary          `json:"other_heartbeat_latency_after_ramp"`

	Nodes            []BigroomNode `json:"nodes"`
	CPUMicrosPerJoin float64       `json:"cpu_us_per_join_all_nodes"`
	// CPUMicrosPerJoinNet is the sum of the nodes' CPU per join above their
	// baseline rate.
	CPUMicrosPerJoinNet float64  `json:"cpu_us_per_join_above_baseline_all_nodes"`
	BytesPerJoin        float64  `json:"member_bytes_received_per_join_all_nodes"`
	BytesNote           string   `json:"bytes_note"`
	BenchCPU            float64  `json:"bench_cpu_percent_ramp"`
	Checks              []string `json:"failed_checks"`
}

// bytesNote says where the bytes per join come from.
const bytesNote = "the server exports no bytes-sent counter (metrics.go): bytes are those the generator's member connections read from each node, TCP payload, from the ramp's start to -settle after its end"

// bigMember is one member of the big room.
type bigMember struct {
	idx      int
	node     int // index into cfg.targets
	events   string
	snapshot string
	listens  bool // events other than "none"
	c        *client.Conn
	joined   atomic.Bool

	mu      sync.Mutex // guards view
	view    countView
	scratch []viewUpdate // read loop only
}

// otherConn is one connection of the other rooms.
type otherConn struct {
	room, user, node int
	c                *client.Conn
}

// bigRun holds one bigroom run's state and counters.
type bigRun struct {
	cfg      *config
	room     string
	stamp    int64
	members  []*bigMember
	others   []*otherConn
	mDialers []*websocket.Dialer // per node, counting the bytes read into bytesIn
	oDialer  *websocket.Dialer
	bytesIn  []atomic.Int64 // per node
	probe    string

	phase    atomic.Int32
	stopping atomic.Bool
	start    time.Time

	joinOK, attempted atomic.Int64
	lastJoin          atomic.Int64 // unix ns of the latest acknowledged join
	joinedPerNode     []atomic.Int64
	joinErr           *tally
	joinH             *Windowed
	memberBeats       *tally

	otherOK              atomic.Int64
	otherErr, otherBeats *tally
	otherH               [bigPhases]*Histogram
	otherLive            *Windowed

	frames, noneFrames, resyncs atomic.Int64
}

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// countingDialer is d whose connections add the bytes they read to n.
func countingDialer(d *websocket.Dialer, n *atomic.Int64) *websocket.Dialer {
	cd := *d
	inner := d.NetDialContext
	cd.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := inner(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: conn, n: n}, nil
	}
	return &cd
}

// raiseNoFile raises the soft limit of open files to the hard one and
// returns the soft limit in force. (The Go runtime does so at start too,
// since Go 1.19; this makes it explicit and tells the limit.)
func raiseNoFile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return rl.Cur, err
		}
		rl = want
	}
	return rl.Cur, nil
}

// newBigRun lays out the members and the other rooms' connections.
func newBigRun(c *config) *bigRun {
	b := &bigRun{cfg: c, stamp: time.Now().UnixNano(), joinErr: newTally(), joinH: NewWindowed(),
		memberBeats: newTally(), otherErr: newTally(), otherBeats: newTally(), otherLive: NewWindowed(),
		bytesIn: make([]atomic.Int64, len(c.targets)), joinedPerNode: make([]atomic.Int64, len(c.targets))}
	b.room = fmt.Sprintf("bigroom-%d", b.stamp)
	for i := range b.otherH {
		b.otherH[i] = &Histogram{}
	}
	base := (&runner{cfg: c}).dialer(-1)
	b.oDialer = base
	for i := range c.targets {
		b.mDialers = append(b.mDialers, countingDialer(base, &b.bytesIn[i]))
	}
	for i := range c.members {
		m := &bigMember{idx: i, node: i % len(c.targets)}
		// Ranked within its node, so that every node gets its share of
		// old-style members, spread over the ramp.
		if !oldStyleMember(i/len(c.targets), c.oldShare) {
			m.events, m.snapshot = c.bigEvents, c.bigSnapshot
		}
		m.listens = m.events != "none"
		m.view.countMode = m.events == "count"
		b.members = append(b.members, m)
	}
	for r := range c.otherRooms {
		for u := range c.otherUsers {
			j := r*c.otherUsers + u
			b.others = append(b.others, &otherConn{room: r, user: u, node: j % len(c.targets)})
		}
	}
	return b
}

// optedIn reports whether member m sends any large-room option.
func (m *bigMember) optedIn() bool { return m.events != "" || m.snapshot != "" }

// joinRequest is member m's presence:join.
func (b *bigRun) joinRequest(m *bigMember) client.JoinRequest {
	req := client.JoinRequest{RoomID: b.room, UserID: "big-u" + strconv.Itoa(m.idx), Events: m.events, Snapshot: m.snapshot}
	if m.snapshot == "page" && b.cfg.pageSize > 0 {
		req.PageSize = b.cfg.pageSize
	}
	return req
}

// probeOptions checks, when some member is to send the large-room options,
// that the first node knows them: a join with snapshot "count" must answer a
// snapshot with a count. A server before PROTOCOL.md revision 3 ignores the
// options (a full snapshot, presence:event for everyone) or refuses them.
func (b *bigRun) probeOptions(ctx context.Context) error {
	need := false
	for _, m := range b.members {
		need = need || m.optedIn()
	}
	if !need {
		b.probe = "not needed (no member sends the options)"
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
	defer cancel()
	c, err := client.Dial(pctx, b.cfg.targets[0], client.Options{Protocol: b.cfg.eio, Dialer: b.oDialer,
		OnRawEvent: func([]byte, time.Time) {}})
	if err != nil {
		return fmt.Errorf("options probe: %w", err)
	}
	defer c.Close()
	raw, err := c.Call(pctx, "presence:join", client.JoinRequest{RoomID: fmt.Sprintf("bigroom-probe-%d", b.stamp),
		UserID: "big-probe", Events: "count", Snapshot: "count"})
	if err == nil {
		_, _, err = parseSnapshotAck(raw)
	}
	var ae *client.AckError
	switch {
	case errors.As(err, &ae):
		return fmt.Errorf("the server does not know the large-room join options (PROTOCOL.md revision 3): it refused them (%v); run old-style: -events '' -snapshot ''", err)
	case err != nil:
		return fmt.Errorf("options probe: %w", err)
	case !hasSnapshotCount(raw):
		return errors.New("the server does not know the large-room join options (PROTOCOL.md revision 3): it ignored snapshot \"count\" and answered a full snapshot; run old-style: -events '' -snapshot ''")
	}
	b.probe = "supported"
	return nil
}

// every calls f first after first, then every d after f returned, until
// the run stops.
func (b *bigRun) every(first, d time.Duration, f func()) {
	var mu sync.Mutex
	var t *time.Timer
	fire := func() {
		if b.stopping.Load() {
			return
		}
		f()
		mu.Lock()
		defer mu.Unlock()
		if !b.stopping.Load() {
			t.Reset(d)
		}
	}
	mu.Lock()
	t = time.AfterFunc(first, fire)
	mu.Unlock()
}

// joinOthers dials and joins the other rooms' connections, dialConc at a
// time, and starts their heartbeats, spread over -other-hb-every.
func (b *bigRun) joinOthers(ctx context.Context) {
	b.each(len(b.others), func(i int) {
		o := b.others[i]
		dctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
		defer cancel()
		c, err := client.Dial(dctx, b.cfg.targets[o.node], client.Options{Protocol: b.cfg.eio, Dialer: b.oDialer,
			OnRawEvent: func([]byte, time.Time) {}})
		if err != nil {
			b.otherErr.add(dialCode(err))
			return
		}
		o.c = c
		_, err = c.Join(dctx, client.JoinRequest{RoomID: fmt.Sprintf("bigroom-other-%d-%d", b.stamp, o.room),
			UserID: fmt.Sprintf("o%d-%d", o.room, o.user)})
		if err != nil {
			b.otherErr.add(errCode(err))
			return
		}
		b.otherOK.Add(1)
		every := b.cfg.otherHBEvery
		first := time.Duration(float64(every) * float64(i) / float64(len(b.others)))
		b.every(first+time.Millisecond, every, func() { b.otherBeat(o) })
	})
}

// otherBeat sends one heartbeat of an other room's connection and records
// its latency in the histogram of the phase it was sent in.
func (b *bigRun) otherBeat(o *otherConn) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.timeout)
	defer cancel()
	ph := b.phase.Load()
	t0 := time.Now()
	_, err := o.c.Heartbeat(ctx, client.HeartbeatRequest{})
	d := time.Since(t0)
	if b.stopping.Load() {
		return
	}
	code, _ := ackOutcome(err)
	b.otherBeats.add(code)
	if err == nil {
		b.otherH[ph].Record(d)
		b.otherLive.Record(d)
	}
}

// dialCode classifies a failed dial.
func dialCode(err error) string {
	code := errCode(err)
	if code == "other" || code == "timeout" {
		code = "dial"
	}
	return code
}

// each runs f(0..n-1), dialConc at a time, and returns when all are done.
func (b *bigRun) each(n int, f func(i int)) {
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(b.cfg.dialConc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				f(i)
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
}

// ramp hands member i to a worker at start + i/-join-rate (later when every
// worker is busy: the achieved rate is reported) and returns once every
// join was answered or failed.
func (b *bigRun) ramp(ctx context.Context) {
	work := make(chan *bigMember)
	var wg sync.WaitGroup
	for range min(b.cfg.dialConc, len(b.members)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				b.join(ctx, m)
			}
		}()
	}
	start := time.Now()
	for i, m := range b.members {
		due := start.Add(time.Duration(float64(i) / b.cfg.joinRate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		work <- m
	}
	close(work)
	wg.Wait()
}

// join dials member m and joins it to the room; a failure is counted by
// code (dial, the ack's error code, timeout, closed).
func (b *bigRun) join(ctx context.Context, m *bigMember) {
	b.attempted.Add(1)
	dctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
	defer cancel()
	c, err := client.Dial(dctx, b.cfg.targets[m.node], client.Options{Protocol: b.cfg.eio, Dialer: b.mDialers[m.node],
		OnRawEvent: func(data []byte, at time.Time) { b.onMemberFrame(m, data, at) }})
	if err != nil {
		b.joinErr.add(dialCode(err))
		return
	}
	m.c = c
	t0 := time.Now()
	raw, err := c.Call(dctx, "presence:join", b.joinRequest(m))
	var seq, conns int64
	if err == nil {
		seq, conns, err = parseSnapshotAck(raw)
	}
	if err != nil {
		code := errCode(err)
		if errors.Is(err, errBadAck) {
			code = "bad_ack"
		}
		b.joinErr.add(code)
		return
	}
	at := time.Now()
	b.joinH.Record(at.Sub(t0))
	m.mu.Lock()
	m.view.fromSnapshot(seq, conns, at)
	m.mu.Unlock()
	m.joined.Store(true)
	b.joinOK.Add(1)
	b.joinedPerNode[m.node].Add(1)
	for {
		cur := b.lastJoin.Load()
		if at.UnixNano() <= cur || b.lastJoin.CompareAndSwap(cur, at.UnixNano()) {
			break
		}
	}
	b.every(b.cfg.hbInterval, b.cfg.hbInterval, func() { b.memberBeat(m) })
}

// memberBeat sends one plain heartbeat of a member.
func (b *bigRun) memberBeat(m *bigMember) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.timeout)
	defer cancel()
	_, err := m.c.Heartbeat(ctx, client.HeartbeatRequest{})
	if b.stopping.Load() {
		return
	}
	code, _ := ackOutcome(err)
	b.memberBeats.add(code)
}

// onMemberFrame applies a presence frame to member m's view, from its read
// loop.
func (b *bigRun) onMemberFrame(m *bigMember, data []byte, at time.Time) {
	ups, kind := scanViewUpdates(data, m.scratch[:0])
	m.scratch = ups
	switch kind {
	case frameOther:
		return
	case frameResync:
		b.resyncs.Add(1)
		if m.listens {
			go b.resync(m)
		}
		return
	}
	b.frames.Add(1)
	if !m.listens {
		b.noneFrames.Add(1)
		return
	}
	m.mu.Lock()
	for _, u := range ups {
		m.view.apply(u, at)
	}
	m.mu.Unlock()
}

// syncPayload is member m's presence:sync payload: its own snapshot option.
func syncPayload(snapshot string) map[string]any {
	p := map[string]any{}
	if snapshot != "" {
		p["snapshot"] = snapshot
	}
	return p
}

// resync answers a presence:resync with a presence:sync.
func (b *bigRun) resync(m *bigMember) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.timeout)
	defer cancel()
	raw, err := m.c.Call(ctx, "presence:sync", syncPayload(m.snapshot))
	if err != nil {
		return
	}
	if seq, conns, err := parseSnapshotAck(raw); err == nil {
		m.mu.Lock()
		m.view.fromSnapshot(seq, conns, time.Now())
		m.mu.Unlock()
	}
}

// views returns the views of the joined members that listen, and how many
// joined members listen to nothing.
func (b *bigRun) views() (vs []viewResult, none int) {
	for _, m := range b.members {
		if !m.joined.Load() {
			continue
		}
		if !m.listens {
			none++
			continue
		}
		m.mu.Lock()
		vs = append(vs, viewResult{set: m.view.set, conns: m.view.conns, changedAt: m.view.changedAt})
		m.mu.Unlock()
	}
	return vs, none
}

// waitConverged waits until every listening member's view equals final or
// deadline passes.
func (b *bigRun) waitConverged(ctx context.Context, final int64, deadline time.Time) {
	for ctx.Err() == nil && time.Now().Before(deadline) {
		vs, _ := b.views()
		all := true
		for _, v := range vs {
			if !v.set || v.conns != final {
				all = false
				break
			}
		}
		if all {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// roomCount asks the server, through a joined member, for the room's
// number of connections (-1 when no member can ask).
func (b *bigRun) roomCount() int64 {
	for _, m := range b.members {
		if !m.joined.Load() || m.c.Err() != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.timeout)
		snap := ""
		if b.probe == "supported" {
			snap = "count"
		}
		raw, err := m.c.Call(ctx, "presence:sync", syncPayload(snap))
		cancel()
		if err != nil {
			return -1
		}
		_, n, err := parseSnapshotAck(raw)
		if err != nil {
			return -1
		}
		return n
	}
	return -1
}

// closeAll stops the heartbeats and closes every connection, dialConc at a
// time.
func (b *bigRun) closeAll() {
	b.stopping.Store(true)
	var conns []*client.Conn
	for _, m := range b.members {
		if m.c != nil {
			conns = append(conns, m.c)
		}
	}
	for _, o := range b.others {
		if o.c != nil {
			conns = append(conns, o.c)
		}
	}
	b.each(len(conns), func(i int) { conns[i].Close() })
}

// live prints one progress line a second on stderr until stop is called.
func (b *bigRun) live(ctx context.Context) (stop func()) {
	prevJoin, prevFrames := int64(0), int64(0)
	return everySecond(ctx, func(now time.Time) {
		jw, ow := b.joinH.Rotate(), b.otherLive.Rotate()
		joined, frames := b.joinOK.Load(), b.frames.Load()
		if !b.cfg.quiet {
			fmt.Fprintf(os.Stderr, "[%4.0fs %-8s] joined %d/%d (%d/s) failed %d p99 %.1f ms | others %d hb p99 %.2f ms | member frames/s %d\n",
				now.Sub(b.start).Seconds(), bigPhaseNames[b.phase.Load()], joined, b.attempted.Load(), joined-prevJoin,
				b.joinErr.sum(nil), float64(jw.Quantile(0.99))/1000, b.otherOK.Load(), float64(ow.Quantile(0.99))/1000,
				frames-prevFrames)
		}
		prevJoin, prevFrames = joined, frames
	})
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// rampLength is how long the ramp lasts at the offered rate.
func (c *config) rampLength() time.Duration {
	return time.Duration(float64(c.members) / c.joinRate * float64(time.Second))
}

// runBigroom performs the bigroom scenario.
func runBigroom(c *config) (*BigroomReport, error) {
	limit, err := raiseNoFile()
	need := uint64(c.members + c.otherRooms*c.otherUsers + 64)
	if err == nil && limit < need {
		return nil, fmt.Errorf("open files limit %d < %d needed (members, other connections and some spare)", limit, need)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	b := newBigRun(c)
	b.start = time.Now()
	for i, s := range scrapeAll(c.targets) {
		if s == nil {
			fmt.Fprintf(os.Stderr, "bench: cannot read %s/metrics: no server-side figures for it\n", c.targets[i])
		}
	}
	if err := b.probeOptions(ctx); err != nil {
		return nil, err
	}
	stopLive := b.live(ctx)
	defer stopLive()

	b.phase.Store(bigPhaseSetup)
	b.joinOthers(ctx)

	baseline := c.baseline
	if baseline == 0 {
		baseline = c.rampLength()
	}
	b.phase.Store(bigPhaseBaseline)
	base := scrapeAll(c.targets)
	tb := time.Now()
	sleepCtx(ctx, baseline)
	baselineSecs := time.Since(tb).Seconds()

	before := scrapeAll(c.targets)
	bytes0 := make([]int64, len(c.targets))
	for i := range bytes0 {
		bytes0[i] = b.bytesIn[i].Load()
	}
	cpu0, t0 := cpuSeconds(), time.Now()
	b.phase.Store(bigPhaseRamp)
	b.ramp(ctx)
	tRampEnd, cpu1 := time.Now(), cpuSeconds()
	b.phase.Store(bigPhaseAfter)

	// -settle after the ramp: the nodes' cost (in the background, while the
	// views converge).
	var after []*serverSample
	bytes1 := make([]int64, len(c.targets))
	settled := make(chan struct{})
	go func() {
		defer close(settled)
		sleepCtx(ctx, time.Until(tRampEnd.Add(c.settle)))
		after = scrapeAll(c.targets)
		for i := range bytes1 {
			bytes1[i] = b.bytesIn[i].Load()
		}
	}()

	final := b.joinOK.Load()
	lastJoin := tRampEnd
	if ns := b.lastJoin.Load(); ns > 0 {
		lastJoin = time.Unix(0, ns)
	}
	b.waitConverged(ctx, final, lastJoin.Add(c.convergeWithin))
	<-settled
	vs, none := b.views()
	conv := convergence(vs, final, lastJoin)
	conv.EventsNone, conv.DeadlineMs = none, msOf(c.convergeWithin)
	conv.Resyncs, conv.NoneMemberFrames, conv.Frames = b.resyncs.Load(), b.noneFrames.Load(), b.frames.Load()
	for _, m := range b.members {
		m.mu.Lock()
		conv.SeqGaps += m.view.gaps
		m.mu.Unlock()
	}
	conv.ServerRoomConnections = b.roomCount()
	var disconnected int64
	for _, m := range b.members {
		if m.joined.Load() && m.c.Err() != nil {
			disconnected++
		}
	}
	stopLive()
	b.closeAll()

	rep := &BigroomReport{
		Date: time.Now().UTC().Format(time.RFC3339), Targets: c.targets, EIO: c.eio, Members: c.members,
		Events: c.bigEvents, Snapshot: c.bigSnapshot, OldShare: c.oldShare, OptionsProbe: b.probe,
		JoinRateOffered: c.joinRate, RampSeconds: tRampEnd.Sub(t0).Seconds(), BaselineSeconds: baselineSecs,
		SettleSeconds: c.settle.Seconds(), Joined: final, JoinErrors: b.joinErr.snapshot(),
		JoinLatency: b.joinH.Total.Summarize(), MemberHeartbeats: b.memberBeats.snapshot(), Disconnected: disconnected,
		Convergence: conv, OtherRooms: c.otherRooms, OtherUsers: c.otherUsers, OtherJoined: b.otherOK.Load(),
		OtherJoinErrors: b.otherErr.snapshot(), OtherHeartbeats: b.otherBeats.snapshot(),
		OtherHBBaseline: b.otherH[bigPhaseBaseline].Summarize(), OtherHBRamp: b.otherH[bigPhaseRamp].Summarize(),
		OtherHBAfterRamp: b.otherH[bigPhaseAfter].Summarize(), BytesNote: bytesNote,
	}
	if c.bigSnapshot == "page" {
		rep.PageSize = c.pageSize
	}
	for _, m := range b.members {
		if m.optedIn() {
			rep.MembersOptedIn++
		} else {
			rep.MembersOldStyle++
		}
	}
	rep.OtherHBP99Ratio = ratio(rep.OtherHBRamp.P99, rep.OtherHBBaseline.P99)
	if ns := b.lastJoin.Load(); ns > 0 {
		rep.JoinRateAchieved = perSecond(final, time.Unix(0, ns).Sub(t0))
	}
	if secs := rep.RampSeconds; secs > 0 {
		rep.BenchCPU = 100 * (cpu1 - cpu0) / secs
	}
	var cpu, cpuNet float64
	var bytesAll int64
	for i, t := range c.targets {
		n := nodeFigures(t, base[i], before[i], after[i], b.joinedPerNode[i].Load(), final, bytes1[i]-bytes0[i])
		rep.JoinedPerNode = append(rep.JoinedPerNode, n.MembersOn)
		rep.Nodes = append(rep.Nodes, n)
		cpu += n.CPUSeconds
		cpuNet += n.CPUMicrosPerJoinNet
		bytesAll += n.BytesReceived
	}
	rep.CPUMicrosPerJoin, rep.CPUMicrosPerJoinNet = cpuMicrosPerDelivery(cpu, final), cpuNet
	if final > 0 {
		rep.BytesPerJoin = float64(bytesAll) / float64(final)
	}
	rep.Checks = rep.check()
	return rep, ctx.Err()
}

// check lists what went wrong.
func (rep *BigroomReport) check() []string {
	p := []string{}
	if rep.Joined != int64(rep.Members) {
		p = append(p, fmt.Sprintf("%d of %d members joined: %v", rep.Joined, rep.Members, rep.JoinErrors))
	}
	cv := rep.Convergence
	if cv.NotConverged > 0 {
		p = append(p, fmt.Sprintf("%d of %d members' views did not reach %d within %.0f ms", cv.NotConverged, cv.Observed,
			cv.FinalMembers, cv.DeadlineMs))
	}
	if cv.ServerRoomConnections >= 0 && cv.ServerRoomConnections != cv.FinalMembers {
		p = append(p, fmt.Sprintf("the server counts %d connections in the room, %d joins were acknowledged",
			cv.ServerRoomConnections, cv.FinalMembers))
	}
	if cv.SeqGaps > 0 {
		p = append(p, fmt.Sprintf("%d seq gaps", cv.SeqGaps))
	}
	if cv.NoneMemberFrames > 0 {
		p = append(p, fmt.Sprintf("%d presence frames reached members that asked for none", cv.NoneMemberFrames))
	}
	if rep.Disconnected > 0 {
		p = append(p, fmt.Sprintf("%d members disconnected by the server", rep.Disconnected))
	}
	if rep.OtherJoined != int64(rep.OtherRooms*rep.OtherUsers) {
		p = append(p, fmt.Sprintf("%d of %d other connections joined: %v", rep.OtherJoined, rep.OtherRooms*rep.OtherUsers, rep.OtherJoinErrors))
	}
	for _, t := range []map[string]int64{rep.MemberHeartbeats, rep.OtherHeartbeats} {
		for code, n := range t {
			if code != outcomeOK && n > 0 {
				p = append(p, fmt.Sprintf("%d heartbeats answered %s", n, code))
			}
		}
	}
	sort.Strings(p)
	return p
}

// writeTable prints the report for people.
func (rep *BigroomReport) writeTable(w io.Writer) {
	opt := func(s string) string {
		if s == "" {
			return "(not sent)"
		}
		return s
	}
	fmt.Fprintf(w, "\nbigroom report %s: %v, EIO=%d, one room of %d members at %.0f joins/s offered\n",
		rep.Date, rep.Targets, rep.EIO, rep.Members, rep.JoinRateOffered)
	fmt.Fprintf(w, "options: events %s, snapshot %s", opt(rep.Events), opt(rep.Snapshot))
	if rep.PageSize > 0 {
		fmt.Fprintf(w, " (page size %d)", rep.PageSize)
	}
	fmt.Fprintf(w, "; %d members opted in, %d old-style (share %.2f); probe: %s\n",
		rep.MembersOptedIn, rep.MembersOldStyle, rep.OldShare, rep.OptionsProbe)
	fmt.Fprintf(w, "joined: %d %v per node in %.1f s (%.0f joins/s achieved); errors %v; disconnected by the server %d\n",
		rep.Joined, rep.JoinedPerNode, rep.RampSeconds, rep.JoinRateAchieved, rep.JoinErrors, rep.Disconnected)
	fmt.Fprintf(w, "member heartbeats: %v\n", rep.MemberHeartbeats)
	s := rep.JoinLatency
	fmt.Fprintf(w, "join ack latency: count %d  p50 %.2f ms  p99 %.2f ms  max %.2f ms\n", s.Count, s.P50, s.P99, s.Max)
	cv := rep.Convergence
	fmt.Fprintf(w, "convergence (room's connection count, from the last join's ack): %d of %d listening members reached %d (server: %d); p50 %.0f ms  p99 %.0f ms  max %.0f ms; %d not within %.0f ms",
		cv.Converged, cv.Observed, cv.FinalMembers, cv.ServerRoomConnections, cv.P50Ms, cv.P99Ms, cv.MaxMs, cv.NotConverged, cv.DeadlineMs)
	if cv.NotConverged > 0 {
		fmt.Fprintf(w, " (%d without a view; others saw %d..%d)", cv.NoView, cv.WrongMin, cv.WrongMax)
	}
	fmt.Fprintf(w, "\n  events \"none\" members left out: %d (presence frames they received: %d); seq gaps %d, resyncs %d, presence frames received %d\n",
		cv.EventsNone, cv.NoneMemberFrames, cv.SeqGaps, cv.Resyncs, cv.Frames)
	fmt.Fprintf(w, "other rooms: %d x %d users, %d joined %v; heartbeats %v\n",
		rep.OtherRooms, rep.OtherUsers, rep.OtherJoined, rep.OtherJoinErrors, rep.OtherHeartbeats)
	if rep.OtherRooms > 0 {
		for _, x := range []struct {
			name string
			s    Summary
		}{{fmt.Sprintf("baseline %.1fs", rep.BaselineSeconds), rep.OtherHBBaseline}, {"ramp", rep.OtherHBRamp}, {"after ramp", rep.OtherHBAfterRamp}} {
			fmt.Fprintf(w, "  heartbeat ack latency %-14s count %6d  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms\n", x.name, x.s.Count, x.s.P50, x.s.P99, x.s.Max)
		}
		fmt.Fprintf(w, "  p99 ramp / p99 baseline: %.2f\n", rep.OtherHBP99Ratio)
	}
	fmt.Fprintf(w, "servers, from the ramp's start to %.1f s after its end:\n", rep.SettleSeconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "node\tmembers\tsockets+\tCPU s\tCPU us/join\tabove baseline\tCPU us/local join\tbaseline CPU %\tRSS before MiB\tRSS after MiB\tRSS KiB/conn\tbytes in\tbytes/join\t")
	for _, n := range rep.Nodes {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%.0f\t\n", n.Target, n.MembersOn, n.SocketsAdded,
			n.CPUSeconds, n.CPUMicrosPerJoin, n.CPUMicrosPerJoinNet, n.CPUMicrosPerLocalJoin, n.BaselineCPUPercent,
			n.RSSBefore/(1<<20), n.RSSAfter/(1<<20), n.RSSPerConn/1024, n.BytesReceived, n.BytesPerJoin)
	}
	tw.Flush()
	fmt.Fprintf(w, "all nodes: %.1f us CPU per join (%.1f above the baseline), %.0f bytes received by the members per join\n",
		rep.CPUMicrosPerJoin, rep.CPUMicrosPerJoinNet, rep.BytesPerJoin)
	fmt.Fprintf(w, "  (bytes: %s)\n", rep.BytesNote)
	fmt.Fprintf(w, "bench CPU during the ramp: %.0f%%\n", rep.BenchCPU)
	for _, c := range rep.Checks {
		fmt.Fprintln(w, "check failed:", c)
	}
}

// mainBigroom runs -scenario bigroom, prints its report and exits 1 when a
// check failed.
func mainBigroom(c *config) {
	rep, err := runBigroom(c)
	if err != nil && rep == nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	printReport(c.jsonOut, rep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if len(rep.Checks) > 0 {
		os.Exit(1)
	}
}

// validateBigroom checks the flags of -scenario bigroom.
func (c *config) validateBigroom() error {
	switch {
	case c.members < 1 || c.members > 100_000:
		return errors.New("-members must be within 1..100000")
	case c.joinRate <= 0:
		return errors.New("-join-rate must be positive")
	case !bigEventModes[c.bigEvents]:
		return fmt.Errorf("-events %q: want each, batched, count, none or empty (send no option)", c.bigEvents)
	case !bigSnapshotModes[c.bigSnapshot]:
		return fmt.Errorf("-snapshot %q: want full, count, page or empty (send no option)", c.bigSnapshot)
	case c.pageSize < 0 || c.pageSize > 1000:
		return errors.New("-page-size must be within 0..1000 (0: the server's default)")
	case c.oldShare < 0 || c.oldShare > 1:
		return errors.New("-old-share must be within 0..1")
	case c.otherRooms < 0 || c.otherUsers < 1:
		return errors.New("-other-rooms must not be negative and -other-users must be at least 1")
	case c.otherHBEvery <= 0 || c.hbInterval <= 0:
		return errors.New("-other-hb-every and -hb-interval must be positive")
	case c.baseline < 0 || c.settle < 0 || c.convergeWithin <= 0:
		return errors.New("-baseline and -settle must not be negative, -converge-within must be positive")
	}
	return nil
}
