package main

// The node's pub/sub: it subscribes only to the buckets of the rooms it has
// local sockets in.
//
// Room events are published on their bucket's channel (P{bk}:events, see
// presence_lua.go). A node subscribes to a bucket's channel when the first
// local socket joins a room of that bucket, and unsubscribes subLinger after
// the last local room of the bucket is gone (so that a room whose only member
// reloads its page does not unsubscribe and subscribe again), so it hears the
// events of the rooms it serves and no others. On Redis 7 and later the
// channels are shard channels (SPUBLISH, SSUBSCRIBE): on a Redis Cluster each
// is served by the master of its slot, and an event does not cross the
// cluster bus to the other shards. Earlier versions and the embedded
// miniredis use PUBLISH and SUBSCRIBE on the same channels.
//
// One goroutine (run) owns the connections, called links: one per Redis node
// that holds subscriptions (a single one except for shard channels on a
// cluster). It is the only one that writes to them. Each link has a receiver
// goroutine that hands messages to deliver in the order Redis sent them (a
// bucket lives on one link, so a room's events keep their order) and reports
// confirmations and failures.
//
// A join waits until its bucket's subscription is confirmed before its script
// runs (wait), so that no event after its snapshot is missed. When a link
// fails, or Redis moves a bucket's slot to another master (a reshard; Redis
// then sends sunsubscribe), the bucket is in a gap: the hub is told (onGap),
// the bucket is subscribed again (on the slot's new master), and once that is
// confirmed the rooms of the bucket are resynced (onBack).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Subscription timing. Each link is PINGed every subPingPeriod; a read that
// sees nothing (not even the PONG) for subReadTimeout means the link is dead.
// A node address that cannot be dialed is tried again after a backoff from
// subBackoffMin, doubling up to subBackoffMax: a node without its
// subscriptions misses events, so it comes back within subBackoffMax of
// Redis accepting connections again, and a refused dial to a local Redis
// costs next to nothing. subLinger is how long a bucket without local rooms
// stays subscribed.
const (
	subPingPeriod  = 2 * time.Second
	subReadTimeout = 5 * time.Second
	subBackoffMin  = 10 * time.Millisecond
	subBackoffMax  = 100 * time.Millisecond
	subLinger      = 30 * time.Second
)

// subState is where a bucket's subscription stands.
type subState uint8

const (
	subNone    subState = iota // not subscribed
	subAsking                  // SUBSCRIBE sent, not yet confirmed
	subUp                      // confirmed: its events arrive
	subLeaving                 // UNSUBSCRIBE sent
)

// subBucket is one bucket's subscription.
type subBucket struct {
	refs  int       // local rooms of the bucket (counted by the hub)
	idle  time.Time // when refs last fell to 0
	state subState
	link  *subLink      // the link it is asked or up on
	ready chan struct{} // closed while the state is subUp
	gap   bool          // it was up and was lost: resync its rooms once it is back
}

// subLink is one pub/sub connection to one Redis node.
type subLink struct {
	addr    string
	conn    redis.Conn
	closing chan struct{} // closed by run when it closes the link itself
	done    chan struct{} // closed when the receiver has ended
	alive   atomic.Bool   // Redis has answered on it
}

type linkFailure struct {
	link *subLink
	err  error
}

// subBackend is what the subscriptions need of the Redis deployment.
type subBackend interface {
	// shardedPubSub reports whether Redis has shard channels (Redis 7+).
	shardedPubSub(ctx context.Context) (bool, error)
	// subAddr is the node a channel is subscribed on: the master of the
	// channel's slot for shard channels on a cluster, else "" (any node).
	subAddr(channel string, sharded bool) string
	// dialSub opens a connection for subscriptions to the node at addr.
	dialSub(ctx context.Context, addr string) (redis.Conn, error)
	// subLost says that a link to addr failed or had a channel moved away:
	// the routing may have changed.
	subLost(ctx context.Context, addr string)
	// subMoved says that a subscription was refused with MOVED: slot is
	// served at addr now.
	subMoved(slot int, addr string)
}

// subscriptions are the node's pub/sub subscriptions, one per bucket in use.
type subscriptions struct {
	be      subBackend
	channel func(b int) string // the bucket's events channel
	prefix  string             // what every channel starts with, before "{b"
	deliver func([]byte)
	log     *slog.Logger
	spawn   func(func())
	linger  time.Duration

	onSettled func(sharded bool)                       // Redis's pub/sub kind is known
	onState   func(up bool)                            // every bucket in use is subscribed, or not
	onGap     func(buckets []int)                      // the buckets' events are being missed
	onBack    func(ctx context.Context, buckets []int) // and are heard again

	kick     chan struct{} // wakes run; never blocks
	failed   chan linkFailure
	settledC chan struct{} // closed once Redis's pub/sub kind is known

	received atomic.Int64 // messages delivered

	mu      sync.Mutex // guards the following fields
	settled bool
	sharded bool
	down    map[string]bool // node addresses whose last dial failed: waits fail at once
	stale   bool            // a channel moved: refresh the routing before subscribing
	up      bool            // as last reported to onState
	b       [roomBuckets]subBucket
	back    []int // buckets confirmed after a gap, not yet resynced

	// Owned by run's goroutine.
	links   map[string]*subLink
	retryAt map[string]time.Time // node address -> no dial before
	backoff map[string]time.Duration
}

func newSubscriptions(be subBackend, prefix string, channel func(int) string, deliver func([]byte), log *slog.Logger, spawn func(func())) *subscriptions {
	m := &subscriptions{
		be: be, prefix: prefix, channel: channel, deliver: deliver, log: log, spawn: spawn, linger: subLinger,
		onSettled: func(bool) {}, onState: func(bool) {}, onGap: func([]int) {},
		onBack: func(context.Context, []int) {},
		kick:   make(chan struct{}, 1), failed: make(chan linkFailure), settledC: make(chan struct{}),
		down: make(map[string]bool), links: make(map[string]*subLink), retryAt: make(map[string]time.Time),
		backoff: make(map[string]time.Duration),
	}
	for i := range m.b {
		m.b[i].ready = make(chan struct{})
	}
	return m
}

func (m *subscriptions) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// acquire counts one more local room in bucket b; the hub calls it when a
// room gets its first local member.
func (m *subscriptions) acquire(b int) {
	m.mu.Lock()
	m.b[b].refs++
	st := m.b[b].state
	m.mu.Unlock()
	if st == subNone || st == subLeaving {
		m.poke()
	}
}

// release counts one local room of bucket b less.
func (m *subscriptions) release(b int) {
	m.mu.Lock()
	idle := false
	if m.b[b].refs--; m.b[b].refs == 0 {
		m.b[b].idle, idle = time.Now(), true
	}
	m.mu.Unlock()
	if idle {
		m.poke() // run times the linger
	}
}

// wait returns once bucket b's subscription is confirmed; at once with
// unavailable while the Redis node it goes to cannot be reached.
func (m *subscriptions) wait(ctx context.Context, b int) error {
	m.mu.Lock()
	ready, down := m.b[b].ready, m.down[""] || m.down[m.be.subAddr(m.channel(b), m.sharded)]
	m.mu.Unlock()
	select {
	case <-ready:
		return nil
	default:
	}
	if down {
		return errUnavailable
	}
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("events subscription: %w", ctx.Err())
	}
}

// subscribed reports whether every bucket in use is subscribed.
func (m *subscriptions) subscribed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.up
}

// buckets returns how many buckets are subscribed.
func (m *subscriptions) buckets() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for i := range m.b {
		if m.b[i].state == subUp {
			n++
		}
	}
	return n
}

// run keeps the subscriptions in line with the buckets in use until ctx
// ends; it blocks. It is the only goroutine that writes to the links.
func (m *subscriptions) run(ctx context.Context) {
	tick := time.NewTicker(subPingPeriod)
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	defer m.closeAll()
	for {
		if wait := m.reconcile(ctx); wait > 0 {
			retry.Reset(wait)
		}
		if back := m.takeBack(); len(back) > 0 {
			m.spawn(func() { m.onBack(ctx, back) })
		}
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		case <-retry.C:
		case <-tick.C:
			m.ping()
		case f := <-m.failed:
			m.linkFailed(ctx, f.link, f.err)
		}
	}
}

// reconcile subscribes the buckets in use and unsubscribes those unused for
// longer than the linger. It returns when to look again: after a failed
// dial, or when a linger ends (0: no need).
func (m *subscriptions) reconcile(ctx context.Context) time.Duration {
	if !m.isSettled() {
		if d := time.Until(m.retryAt[""]); d > 0 {
			return d
		}
		sharded, err := m.be.shardedPubSub(ctx)
		if err != nil {
			return m.dialFailed("", err)
		}
		m.dialed("")
		m.mu.Lock()
		m.settled, m.sharded = true, sharded
		m.mu.Unlock()
		m.onSettled(sharded)
		close(m.settledC)
		m.log.Info("events channels settled", "sharded", sharded)
	}
	m.mu.Lock()
	stale := m.stale
	m.stale = false
	m.mu.Unlock()
	if stale {
		m.be.subLost(ctx, "")
	}

	// The link to "" (any node) is always open, subscribed or not: it is
	// how a node without rooms notices that Redis went away and came back
	// (the pool hears of it: see redisSubs.dialSub).
	_, retryIn := m.link(ctx, "")

	now := time.Now()
	var lingerEnd time.Duration    // until the first linger ends (0: none)
	subs := make(map[string][]int) // node address -> buckets to subscribe there
	unsubs := make(map[*subLink][]int)
	m.mu.Lock()
	for i := range m.b {
		bk := &m.b[i]
		want := bk.refs > 0 || !bk.idle.IsZero() && now.Sub(bk.idle) < m.linger
		switch {
		case want && bk.state == subNone:
			addr := m.be.subAddr(m.channel(i), m.sharded)
			subs[addr] = append(subs[addr], i)
		case !want && bk.state == subUp:
			bk.state, bk.ready = subLeaving, make(chan struct{})
			unsubs[bk.link] = append(unsubs[bk.link], i)
		case want && bk.refs == 0: // lingering: look again when it ends
			if d := m.linger - now.Sub(bk.idle); lingerEnd == 0 || d < lingerEnd {
				lingerEnd = d
			}
		}
	}
	// A node no longer needed (a master that failed over) does not keep
	// the node down.
	for addr := range m.down {
		if _, need := subs[addr]; !need && addr != "" && m.links[addr] == nil {
			delete(m.down, addr)
			delete(m.retryAt, addr)
			delete(m.backoff, addr)
		}
	}
	m.mu.Unlock()

	for addr, bs := range subs {
		l, wait := m.link(ctx, addr)
		if l == nil {
			if addr != "" { // a master gone: the cluster may have failed over
				m.be.subLost(ctx, addr)
			}
			if retryIn == 0 || wait < retryIn {
				retryIn = wait
			}
			continue
		}
		m.mu.Lock()
		asked := bs[:0]
		for _, b := range bs {
			if bk := &m.b[b]; bk.state == subNone {
				bk.state, bk.link = subAsking, l
				asked = append(asked, b)
			}
		}
		m.mu.Unlock()
		m.send(l, true, asked)
	}
	for l, bs := range unsubs {
		m.send(l, false, bs)
	}
	for addr, l := range m.links {
		if l.alive.Load() {
			m.dialed(addr)
		}
	}
	m.closeUnused()
	m.report()
	if lingerEnd > 0 && (retryIn == 0 || lingerEnd < retryIn) {
		retryIn = lingerEnd
	}
	return retryIn
}

func (m *subscriptions) isSettled() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.settled
}

func (m *subscriptions) takeBack() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	back := m.back
	m.back = nil
	return back
}

// report tells onState whether every bucket in use is subscribed.
func (m *subscriptions) report() {
	m.mu.Lock()
	up := m.settled && m.links[""] != nil
	for _, down := range m.down {
		up = up && !down
	}
	for i := range m.b {
		if m.b[i].refs > 0 && m.b[i].state == subNone {
			up = false
		}
	}
	changed := up != m.up
	m.up = up
	m.mu.Unlock()
	if changed {
		m.onState(up)
	}
}

// link returns the link to the node at addr, dialing it if need be. With no
// link it returns how long until the next dial may be tried.
func (m *subscriptions) link(ctx context.Context, addr string) (*subLink, time.Duration) {
	if l := m.links[addr]; l != nil {
		return l, 0
	}
	if d := time.Until(m.retryAt[addr]); d > 0 {
		return nil, d
	}
	c, err := m.be.dialSub(ctx, addr)
	if err != nil {
		return nil, m.dialFailed(addr, err)
	}
	l := &subLink{addr: addr, conn: c, closing: make(chan struct{}), done: make(chan struct{})}
	m.links[addr] = l
	go m.receive(l) // owned by run: closeLink waits for it
	// A first PING: a server that accepts and closes (a port taken over,
	// maxclients) fails the link at once, and backs it off (linkFailed).
	if err := c.Send("PING"); err != nil || c.Flush() != nil {
		_ = c.Close()
	}
	return l, 0
}

// dialFailed backs off addr and returns the wait before the next dial.
func (m *subscriptions) dialFailed(addr string, err error) time.Duration {
	d, seen := m.backoff[addr]
	if !seen {
		m.log.Warn("pub/sub connection failed; retrying", "node", addr, "err", err)
		d = subBackoffMin
	} else {
		m.log.Debug("pub/sub reconnect failed", "node", addr, "err", err, "in", d)
	}
	m.backoff[addr] = min(d*2, subBackoffMax)
	m.retryAt[addr] = time.Now().Add(d)
	m.mu.Lock()
	m.down[addr] = true
	m.mu.Unlock()
	m.report()
	return d
}

func (m *subscriptions) dialed(addr string) {
	if _, failed := m.backoff[addr]; failed {
		m.log.Info("pub/sub connection back", "node", addr)
	}
	delete(m.backoff, addr)
	delete(m.retryAt, addr)
	m.mu.Lock()
	delete(m.down, addr)
	m.mu.Unlock()
}

// send asks for (or drops) the buckets' subscriptions on l. A failed write
// closes the connection; its receiver then reports the failure.
func (m *subscriptions) send(l *subLink, subscribe bool, bs []int) {
	if len(bs) == 0 {
		return
	}
	m.mu.Lock()
	sharded := m.sharded
	m.mu.Unlock()
	var cmd string
	switch {
	case sharded && subscribe:
		cmd = "SSUBSCRIBE"
	case sharded:
		cmd = "SUNSUBSCRIBE"
	case subscribe:
		cmd = "SUBSCRIBE"
	default:
		cmd = "UNSUBSCRIBE"
	}
	var err error
	if sharded { // a shard command's channels must share a slot: one each
		for _, b := range bs {
			if err = l.conn.Send(cmd, m.channel(b)); err != nil {
				break
			}
		}
	} else {
		args := make([]any, len(bs))
		for i, b := range bs {
			args[i] = m.channel(b)
		}
		err = l.conn.Send(cmd, args...)
	}
	if err == nil {
		err = l.conn.Flush()
	}
	if err != nil {
		_ = l.conn.Close()
	}
}

// ping writes a PING on every link; the receivers' read deadline catches a
// link whose PONG does not come back.
func (m *subscriptions) ping() {
	for _, l := range m.links {
		if err := l.conn.Send("PING"); err != nil || l.conn.Flush() != nil {
			_ = l.conn.Close()
		}
	}
}

// receive reads l until it fails, handing messages to deliver and
// confirmations to the bucket states.
func (m *subscriptions) receive(l *subLink) {
	defer close(l.done)
	for {
		reply, err := redis.ReceiveWithTimeout(l.conn, subReadTimeout)
		if err == nil {
			if !l.alive.Load() {
				l.alive.Store(true)
				m.poke() // run marks the node reachable
			}
			m.handle(l, reply)
			continue
		}
		// A subscription refused with MOVED (its slot moved before the
		// node knew) is asked again where the slot lives now. Any other
		// error reply cannot be matched to its channel: the link starts
		// over, which subscribes all its buckets again.
		if re := redis.Error(""); errors.As(err, &re) {
			if kind, slot, addr := parseRedirect(string(re)); kind == "MOVED" {
				m.refused(l, slot, addr)
				continue
			}
			_ = l.conn.Close()
		}
		select {
		case m.failed <- linkFailure{l, err}:
		case <-l.closing:
		}
		return
	}
}

func (m *subscriptions) handle(l *subLink, reply any) {
	r, ok := reply.([]any)
	if !ok || len(r) < 2 { // PONG outside subscribed mode
		return
	}
	kind, _ := redis.String(r[0], nil)
	switch kind {
	case "message", "smessage":
		if len(r) == 3 {
			if data, err := redis.Bytes(r[2], nil); err == nil {
				m.received.Add(1)
				m.deliver(data)
			}
		}
	case "subscribe", "ssubscribe":
		if b, ok := m.bucketOf(r[1]); ok {
			m.confirmed(l, b)
		}
	case "unsubscribe", "sunsubscribe":
		if b, ok := m.bucketOf(r[1]); ok {
			m.unsubscribed(l, b)
		}
	}
}

// bucketOf parses a bucket's channel name.
func (m *subscriptions) bucketOf(v any) (int, bool) {
	ch, err := redis.String(v, nil)
	if err != nil {
		return 0, false
	}
	rest, ok := strings.CutPrefix(ch, m.prefix+"{b")
	if !ok {
		return 0, false
	}
	num, ok := strings.CutSuffix(rest, "}:events")
	b, err := strconv.Atoi(num)
	if !ok || err != nil || b < 0 || b >= roomBuckets {
		return 0, false
	}
	return b, true
}

func (m *subscriptions) confirmed(l *subLink, b int) {
	m.mu.Lock()
	bk := &m.b[b]
	if bk.link != l || bk.state != subAsking {
		m.mu.Unlock()
		return
	}
	bk.state = subUp
	close(bk.ready)
	if bk.gap {
		bk.gap = false
		m.back = append(m.back, b)
	}
	m.mu.Unlock()
	m.poke()
}

// refused puts the buckets of slot asked on l back to be asked at addr.
func (m *subscriptions) refused(l *subLink, slot int, addr string) {
	m.be.subMoved(slot, addr)
	m.mu.Lock()
	for i := range m.b {
		if bk := &m.b[i]; bk.link == l && bk.state == subAsking && keySlot(m.channel(i)) == slot {
			bk.state, bk.link = subNone, nil
		}
	}
	m.mu.Unlock()
	m.poke()
}

// unsubscribed handles a bucket's unsubscription: the one run asked for, or
// one Redis made because the bucket's slot moved to another master.
func (m *subscriptions) unsubscribed(l *subLink, b int) {
	m.mu.Lock()
	bk := &m.b[b]
	if bk.link != l || bk.state == subNone {
		m.mu.Unlock()
		return
	}
	moved := bk.state != subLeaving
	if bk.state == subUp {
		bk.gap, bk.ready = true, make(chan struct{})
	}
	bk.state, bk.link = subNone, nil
	m.stale = m.stale || moved
	m.mu.Unlock()
	if moved {
		m.log.Info("events channel moved; subscribing where it lives now", "bucket", b, "from", l.addr)
		m.onGap([]int{b})
	}
	m.poke()
}

// linkFailed closes l and puts its buckets back to be subscribed again; those
// that were up are in a gap until then.
func (m *subscriptions) linkFailed(ctx context.Context, l *subLink, err error) {
	m.closeLink(l)
	m.mu.Lock()
	var gapped []int
	n := 0
	for i := range m.b {
		bk := &m.b[i]
		if bk.link != l {
			continue
		}
		n++
		if bk.state == subUp {
			bk.gap, bk.ready = true, make(chan struct{})
		}
		if bk.gap {
			gapped = append(gapped, i)
		}
		bk.state, bk.link = subNone, nil
	}
	m.mu.Unlock()
	if len(gapped) > 0 {
		m.onGap(gapped)
	}
	if !l.alive.Load() { // Redis never answered on it: as a failed dial
		m.dialFailed(l.addr, err)
	} else {
		m.log.Warn("pub/sub connection lost; subscribing again", "node", l.addr, "buckets", n, "err", err)
		m.retryAt[l.addr] = time.Now().Add(subBackoffMin)
	}
	m.be.subLost(ctx, l.addr)
}

// closeUnused closes the links that hold no subscription, but the one to
// any node.
func (m *subscriptions) closeUnused() {
	for addr, l := range m.links {
		if addr == "" {
			continue
		}
		m.mu.Lock()
		used := false
		for i := range m.b {
			if m.b[i].link == l {
				used = true
				break
			}
		}
		m.mu.Unlock()
		if !used {
			m.closeLink(l)
		}
	}
}

func (m *subscriptions) closeLink(l *subLink) {
	if m.links[l.addr] == l {
		delete(m.links, l.addr)
	}
	select {
	case <-l.closing:
	default:
		close(l.closing)
	}
	_ = l.conn.Close()
	<-l.done
}

func (m *subscriptions) closeAll() {
	for _, l := range m.links {
		m.closeLink(l)
	}
}

// startSubscriptions runs the node's subscriptions on the server's wait group
// until ctx ends. The returned channel is closed once Redis's pub/sub kind is
// known (and scripts publish the right way).
func (s *Server) startSubscriptions(ctx context.Context) <-chan struct{} {
	m := s.subs
	m.onSettled = s.presence.shardChannels.Store
	m.onState = func(up bool) {
		s.mu.Lock()
		s.redisSub = up
		s.mu.Unlock()
	}
	m.onGap = s.hub.markGap
	m.onBack = s.presence.resync
	s.spawn(func() { m.run(ctx) })
	return m.settledC
}
