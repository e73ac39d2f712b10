package main

// Redis Cluster routing on redigo.
//
// redigo speaks to one server. A Redis Cluster splits the key space into
// 16384 hash slots, each served by one master; a command sent to the wrong
// master is answered with a redirection. This file makes a cluster look like
// one server to the rest of the package, behind the ordinary redis.Conn
// interface that the pool hands out:
//
//   - cluster holds the slot map (slot -> master address, from CLUSTER SHARDS
//     on Redis 7, CLUSTER SLOTS before) and one redigo pool per master.
//   - clusterConn is a routed connection: each command goes, on a pooled
//     connection of the right master, to the slot of its first key (the
//     first KEYS entry for EVAL/EVALSHA). Keyless commands go to any master.
//   - MOVED updates the slot and marks the map for a refresh; ASK is retried
//     once on the named node after ASKING, without touching the map. TRYAGAIN
//     (keys of one script split by a migration, or a script that read a key
//     that has moved: see parseRedirect) and CLUSTERDOWN (a failover under
//     way) are retried for up to clusterRetryBudget, then returned:
//     isUnavailable classifies them, so clients are answered unavailable.
//   - A connection failure to a master (killed, partitioned) is returned as
//     it is (unavailable) and refreshes the map, so that calls reach the
//     promoted replica once the cluster has failed over.
//
// The map is also refreshed every clusterRefreshEvery, by the first call that
// finds it older; there is no background goroutine, so nothing needs to be
// stopped. The node pools live while at least one routed connection is open
// (the server's pool and subscriber hold them) and are closed with the last.
//
// Pipelines (Send, Flush, Receive) run at Flush as one pipeline per master;
// a command answered with a redirection is run again alone. MULTI/EXEC
// across a pipeline is not supported. Once a
// SUBSCRIBE, PSUBSCRIBE or SSUBSCRIBE is sent, a routed connection pins one
// dedicated connection (to any master; for SSUBSCRIBE, to the channel's
// slot's master) and passes everything through to it, so redis.PubSubConn
// works on it unchanged.
//
// Detection (redisTarget): the first dial asks the first reachable node of
// REDIS_URL for INFO cluster. cluster_enabled:1 selects cluster mode; any
// other answer (a single Redis; the embedded miniredis, which rejects the
// section) keeps the plain single-server connections of before.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Cluster timing and limits. clusterRetryBudget bounds how long one call
// waits out TRYAGAIN/CLUSTERDOWN (well under the default OpTimeout of 3 s,
// so the client hears unavailable rather than a timeout). clusterRefreshMin
// spaces refreshes triggered by errors, so a dead master does not turn every
// call into a CLUSTER SHARDS.
const (
	clusterSlots        = 16384
	clusterMaxRedirects = 5
	clusterRetryBudget  = 500 * time.Millisecond
	clusterRetryPause   = 10 * time.Millisecond
	clusterRefreshEvery = 5 * time.Second
	clusterRefreshMin   = 100 * time.Millisecond
)

var errNoClusterNode = errors.New("redis cluster: no node answered CLUSTER SHARDS or CLUSTER SLOTS")

// cluster is the client side of one Redis Cluster: the slot map and one pool
// per master. Its methods are safe to call concurrently.
type cluster struct {
	seeds []string // host:port from REDIS_URL, tried when no master answers
	dial  func(ctx context.Context, addr string) (redis.Conn, error)
	// every is the period of the map refresh; newCluster sets
	// clusterRefreshEvery.
	every time.Duration

	refreshing atomic.Bool  // one refresh at a time; others use the old map
	moved      atomic.Int64 // MOVED redirections followed
	asked      atomic.Int64 // ASK redirections followed
	retried    atomic.Int64 // TRYAGAIN/CLUSTERDOWN replies waited out

	mu          sync.RWMutex // guards the following fields
	slots       [clusterSlots]string
	pools       map[string]*redis.Pool // by master address
	refreshedAt time.Time              // zero: refresh at the next call
	lastTry     time.Time              // the last refresh attempt
	open        int                    // routed connections not yet closed
}

// newCluster returns a cluster reached through seeds; dial connects to one
// node. The slot map is loaded by the first call.
func newCluster(seeds []string, dial func(ctx context.Context, addr string) (redis.Conn, error)) *cluster {
	return &cluster{seeds: seeds, dial: dial, every: clusterRefreshEvery, pools: make(map[string]*redis.Pool)}
}

// conn returns a routed connection. The caller must close it.
func (cl *cluster) conn() *clusterConn {
	cl.mu.Lock()
	cl.open++
	cl.mu.Unlock()
	return &clusterConn{cl: cl}
}

// release is called once per closed routed connection; the last one closes
// the node pools.
func (cl *cluster) release() {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.open--; cl.open > 0 {
		return
	}
	for addr, p := range cl.pools {
		_ = p.Close()
		delete(cl.pools, addr)
	}
}

// poolAt returns the pool of the node at addr, making it if needed.
func (cl *cluster) poolAt(addr string) *redis.Pool {
	cl.mu.RLock()
	p := cl.pools[addr]
	cl.mu.RUnlock()
	if p != nil {
		return p
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if p = cl.pools[addr]; p == nil {
		p = newPool(func(ctx context.Context) (redis.Conn, error) { return cl.dial(ctx, addr) })
		cl.pools[addr] = p
	}
	return p
}

// master returns the address of the master of slot, or of any master when
// slot is -1 (a keyless command) or unknown.
func (cl *cluster) master(slot int) string {
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	if slot >= 0 && cl.slots[slot] != "" {
		return cl.slots[slot]
	}
	for _, a := range cl.slots {
		if a != "" {
			return a
		}
	}
	return cl.seeds[0]
}

// masters returns the distinct master addresses of the slot map.
func (cl *cluster) masters() []string {
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	var out []string
	for i, a := range cl.slots {
		if a != "" && (i == 0 || a != cl.slots[i-1]) && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// maybeRefresh reloads the slot map when it is older than cl.every, marked
// stale or urgent, unless the last attempt is more recent than
// clusterRefreshMin. Only one caller refreshes at a
// time; the others go on with the map they have.
func (cl *cluster) maybeRefresh(ctx context.Context, urgent bool) {
	cl.mu.RLock()
	due := (urgent || time.Since(cl.refreshedAt) >= cl.every) && time.Since(cl.lastTry) >= clusterRefreshMin
	cl.mu.RUnlock()
	if !due || !cl.refreshing.CompareAndSwap(false, true) {
		return
	}
	defer cl.refreshing.Store(false)
	_ = cl.refresh(ctx) // on failure the old map stays; the next call tries again
}

// moveSlot records a MOVED redirection: slot is served at addr now, and the
// rest of the map is refreshed at the next call.
// An address without a host (see redirectTarget) is taken to be on the
// host the slot was mapped to, where the refused request went.
func (cl *cluster) moveSlot(slot int, addr string) {
	cl.mu.Lock()
	cl.slots[slot], cl.refreshedAt = redirectTarget(cl.slots[slot], addr), time.Time{}
	cl.mu.Unlock()
}

// markStale makes the next call refresh the map.
func (cl *cluster) markStale() {
	cl.mu.Lock()
	cl.refreshedAt = time.Time{}
	cl.mu.Unlock()
}

// refresh loads the slot map from the first node that answers: known masters
// first, then the seeds.
func (cl *cluster) refresh(ctx context.Context) error {
	cl.mu.Lock()
	cl.lastTry = time.Now()
	cl.mu.Unlock()
	err := errNoClusterNode
	for _, addr := range append(cl.masters(), cl.seeds...) {
		var slots *[clusterSlots]string
		if slots, err = cl.loadSlots(ctx, addr); err == nil {
			cl.mu.Lock()
			cl.slots, cl.refreshedAt = *slots, time.Now()
			cl.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("redis cluster: refresh: %w", err)
}

// loadSlots asks the node at addr for the slot map, with CLUSTER SHARDS or,
// before Redis 7, CLUSTER SLOTS.
func (cl *cluster) loadSlots(ctx context.Context, addr string) (*[clusterSlots]string, error) {
	c, err := cl.poolAt(addr).GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var slots [clusterSlots]string
	r, err := redis.Values(redis.DoContext(c, ctx, "CLUSTER", "SHARDS"))
	if err == nil {
		err = parseShards(r, &slots)
	} else if re := (redis.Error("")); errors.As(err, &re) {
		r, err = redis.Values(redis.DoContext(c, ctx, "CLUSTER", "SLOTS"))
		if err == nil {
			err = parseSlots(r, &slots)
		}
	}
	if err != nil {
		return nil, err
	}
	return &slots, nil
}

// parseShards fills slots from a CLUSTER SHARDS reply (RESP2: flat
// key/value arrays). A shard's address is its master's, preferring one
// whose health is online (after a failover the old master is listed too).
func parseShards(shards []any, slots *[clusterSlots]string) error {
	for _, sh := range shards {
		f, err := redis.Values(sh, nil)
		if err != nil {
			return err
		}
		var ranges []int
		var addr string
		for i := 0; i+1 < len(f); i += 2 {
			switch k, _ := redis.String(f[i], nil); k {
			case "slots":
				if ranges, err = redis.Ints(f[i+1], nil); err != nil {
					return err
				}
			case "nodes":
				if addr, err = shardMaster(f[i+1]); err != nil {
					return err
				}
			}
		}
		if err := assignSlots(slots, ranges, addr); err != nil {
			return err
		}
	}
	return nil
}

// shardMaster returns host:port of the master among a shard's nodes.
func shardMaster(nodes any) (string, error) {
	ns, err := redis.Values(nodes, nil)
	if err != nil {
		return "", err
	}
	best := ""
	for _, n := range ns {
		f, err := redis.Values(n, nil)
		if err != nil {
			return "", err
		}
		m := make(map[string]string, len(f)/2)
		for i := 0; i+1 < len(f); i += 2 {
			k, _ := redis.String(f[i], nil)
			m[k] = argString(f[i+1]) // strings are []byte, numbers int64
		}
		if m["role"] != "master" {
			continue
		}
		host, port := m["endpoint"], m["port"]
		if host == "" || host == "?" {
			host = m["ip"]
		}
		if port == "" || port == "0" {
			port = m["tls-port"]
		}
		if best == "" || m["health"] == "online" {
			best = net.JoinHostPort(host, port)
		}
	}
	return best, nil
}

// parseSlots fills slots from a CLUSTER SLOTS reply: [start, end, [host,
// port, id, ...], replicas...] per range.
func parseSlots(ranges []any, slots *[clusterSlots]string) error {
	for _, r := range ranges {
		f, err := redis.Values(r, nil)
		if err != nil || len(f) < 3 {
			return fmt.Errorf("redis cluster: bad CLUSTER SLOTS entry: %v", err)
		}
		start, _ := redis.Int(f[0], nil)
		end, _ := redis.Int(f[1], nil)
		m, err := redis.Values(f[2], nil)
		if err != nil || len(m) < 2 {
			return fmt.Errorf("redis cluster: bad CLUSTER SLOTS node: %v", err)
		}
		host, _ := redis.String(m[0], nil)
		port, _ := redis.Int(m[1], nil)
		if err := assignSlots(slots, []int{start, end}, net.JoinHostPort(host, strconv.Itoa(port))); err != nil {
			return err
		}
	}
	return nil
}

// assignSlots gives addr the inclusive slot ranges [start, end, ...].
func assignSlots(slots *[clusterSlots]string, ranges []int, addr string) error {
	for i := 0; i+1 < len(ranges); i += 2 {
		if ranges[i] < 0 || ranges[i+1] >= clusterSlots || ranges[i] > ranges[i+1] || addr == "" {
			return fmt.Errorf("redis cluster: bad slot range %d-%d for %q", ranges[i], ranges[i+1], addr)
		}
		for s := ranges[i]; s <= ranges[i+1]; s++ {
			slots[s] = addr
		}
	}
	return nil
}

// do runs one command on the cluster, following redirections (see the file
// comment). SCRIPT LOAD goes to every master.
func (cl *cluster) do(ctx context.Context, cmd string, args ...any) (any, error) {
	cl.maybeRefresh(ctx, false)
	if strings.EqualFold(cmd, "SCRIPT") && len(args) > 0 && strings.EqualFold(fmt.Sprint(args[0]), "LOAD") {
		return cl.broadcast(ctx, cmd, args...)
	}
	addr, asking := cl.master(commandSlot(cmd, args)), false
	pause, deadline := clusterRetryPause, time.Now().Add(clusterRetryBudget)
	for redirects := 0; ; {
		reply, err := cl.doAt(ctx, addr, asking, cmd, args)
		var re redis.Error
		if !errors.As(err, &re) {
			if err != nil && isUnavailable(err) && ctx.Err() == nil {
				cl.maybeRefresh(ctx, true) // the master may have failed over
			}
			return reply, err
		}
		kind, slot, to := parseRedirect(string(re))
		switch kind {
		case "MOVED", "ASK":
			to = redirectTarget(addr, to)
			if redirects++; redirects > clusterMaxRedirects {
				return nil, fmt.Errorf("redis cluster: more than %d redirections: %w", clusterMaxRedirects, err)
			}
			if asking = kind == "ASK"; asking {
				cl.asked.Add(1)
			} else {
				cl.moved.Add(1)
				cl.moveSlot(slot, to)
			}
			addr = to
		case "TRYAGAIN", "CLUSTERDOWN":
			if time.Now().Add(pause).After(deadline) {
				return reply, err
			}
			cl.retried.Add(1)
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
			pause *= 2
		default:
			return reply, err
		}
	}
}

// doAt runs cmd on a pooled connection to the node at addr, after ASKING
// when asking.
func (cl *cluster) doAt(ctx context.Context, addr string, asking bool, cmd string, args []any) (any, error) {
	c, err := cl.poolAt(addr).GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if asking {
		if _, err := redis.DoContext(c, ctx, "ASKING"); err != nil {
			return nil, err
		}
	}
	return redis.DoContext(c, ctx, cmd, args...)
}

// broadcast runs cmd on every master and returns the last reply, or the
// first error.
func (cl *cluster) broadcast(ctx context.Context, cmd string, args ...any) (any, error) {
	ms := cl.masters()
	if len(ms) == 0 {
		ms = cl.seeds[:1]
	}
	var last any
	for _, addr := range ms {
		r, err := cl.doAt(ctx, addr, false, cmd, args)
		if err != nil {
			return nil, err
		}
		last = r
	}
	return last, nil
}

// parseRedirect splits "MOVED 3999 127.0.0.1:6381" (or ASK) into its parts;
// for any other error reply it returns the reply's first word as kind,
// except that a script refused for reading a key that a migration has moved
// away is TRYAGAIN: the keys of its slot are split between two masters for
// the moment, and the presence scripts fail that way before they write
// (presence_lua.go).
func parseRedirect(msg string) (kind string, slot int, addr string) {
	f := strings.Fields(msg)
	if len(f) == 0 {
		return "", 0, ""
	}
	if scriptKeyMoved(msg) {
		return "TRYAGAIN", 0, ""
	}
	if (f[0] == "MOVED" || f[0] == "ASK") && len(f) == 3 {
		if s, err := strconv.Atoi(f[1]); err == nil && s >= 0 && s < clusterSlots {
			return f[0], s, f[2]
		}
		return "", 0, ""
	}
	return f[0], 0, ""
}

// redirectTarget returns the address named by a MOVED or ASK reply that
// the node at from sent. An empty host (":6380": Redis 7 with
// cluster-preferred-endpoint-type unknown-endpoint) means from's host.
func redirectTarget(from, to string) string {
	host, port, err := net.SplitHostPort(to)
	if err != nil || host != "" {
		return to
	}
	if fromHost, _, err := net.SplitHostPort(from); err == nil {
		return net.JoinHostPort(fromHost, port)
	}
	return to
}

// scriptKeyMoved reports whether msg is Redis refusing a command of a script
// for a key not declared in KEYS that is not on this node (its slot is being
// migrated and the key has moved).
func scriptKeyMoved(msg string) bool {
	return strings.Contains(msg, "Script attempted to access a non local key")
}

// commandSlot returns the slot of cmd's first key, or -1 for a keyless
// command. The key is args[0], except for scripts and functions (the first
// of KEYS) and the commands listed as keyless.
func commandSlot(cmd string, args []any) int {
	switch strings.ToUpper(cmd) {
	case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
		if len(args) < 3 {
			return -1
		}
		if n, err := strconv.Atoi(argString(args[1])); err != nil || n < 1 {
			return -1
		}
		return keySlot(argString(args[2]))
	case "PING", "ECHO", "INFO", "TIME", "CLUSTER", "SCRIPT", "FUNCTION", "CONFIG", "CLIENT",
		"DBSIZE", "FLUSHDB", "FLUSHALL", "COMMAND", "HELLO", "AUTH", "SELECT", "ASKING", "READONLY",
		"PUBLISH", "SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "MULTI", "EXEC", "DISCARD":
		return -1
	}
	if len(args) == 0 {
		return -1
	}
	return keySlot(argString(args[0]))
}

// argString returns a command argument as redigo would send it, for the
// argument types keys are given as.
func argString(a any) string {
	switch v := a.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	default:
		return fmt.Sprint(v)
	}
}

// keySlot returns the hash slot of key: CRC16 (XMODEM) of the key, or of its
// hash tag (the part between the first '{' and the next '}', if not empty),
// mod 16384.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % clusterSlots
}

// clusterConn is a routed connection (see the file comment). Like a redigo
// connection, it allows one caller of Send/Flush/Do at a time; once pinned
// for pub/sub, one more concurrent caller of Receive.
type clusterConn struct {
	cl      *cluster
	pending []clusterCmd // sent, not yet flushed
	replies []clusterReply
	pinned  redis.Conn // the pub/sub connection, once subscribed
	closed  bool
}

type clusterCmd struct {
	name string
	args []any
}

type clusterReply struct {
	r   any
	err error
}

var (
	_ redis.ConnWithContext = (*clusterConn)(nil)
	_ redis.ConnWithTimeout = (*clusterConn)(nil)
)

var errClusterConnClosed = errors.New("redis cluster: connection closed")

// Close closes the pinned connection, if any, and releases the cluster.
func (c *clusterConn) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	var err error
	if c.pinned != nil {
		err = c.pinned.Close()
	}
	c.cl.release()
	return err
}

func (c *clusterConn) Err() error {
	if c.pinned != nil {
		return c.pinned.Err()
	}
	if c.closed {
		return errClusterConnClosed
	}
	return nil
}

func (c *clusterConn) Do(cmd string, args ...any) (any, error) {
	return c.DoContext(context.Background(), cmd, args...)
}

func (c *clusterConn) DoWithTimeout(d time.Duration, cmd string, args ...any) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return c.DoContext(ctx, cmd, args...)
}

// DoContext runs the pending commands and cmd, and returns cmd's reply and
// the first error reply among them, as redigo's Do does; with cmd "" it
// returns the pending replies.
func (c *clusterConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	if c.pinned != nil {
		return redis.DoContext(c.pinned, ctx, cmd, args...)
	}
	if c.closed {
		return nil, errClusterConnClosed
	}
	if cmd != "" {
		c.pending = append(c.pending, clusterCmd{cmd, args})
	}
	if err := c.flush(ctx); err != nil {
		return nil, err
	}
	rs := c.replies
	c.replies = nil
	if cmd == "" {
		out := make([]any, len(rs))
		for i, r := range rs {
			if out[i] = r.r; r.err != nil {
				out[i] = r.err
			}
		}
		return out, nil
	}
	var firstErr error
	for _, r := range rs {
		if r.err != nil && firstErr == nil {
			firstErr = r.err
		}
	}
	return rs[len(rs)-1].r, firstErr
}

// Send queues cmd; SUBSCRIBE, PSUBSCRIBE and SSUBSCRIBE pin the connection
// first.
func (c *clusterConn) Send(cmd string, args ...any) error {
	if c.closed {
		return errClusterConnClosed
	}
	if c.pinned == nil {
		switch strings.ToUpper(cmd) {
		case "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE":
			if err := c.pin(cmd, args); err != nil {
				return err
			}
		default:
			c.pending = append(c.pending, clusterCmd{cmd, args})
			return nil
		}
	}
	return c.pinned.Send(cmd, args...)
}

// pin dials the dedicated pub/sub connection.
func (c *clusterConn) pin(cmd string, args []any) error {
	if len(c.pending) > 0 || len(c.replies) > 0 {
		return errors.New("redis cluster: subscribe on a connection with pending replies")
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterRetryBudget*4)
	defer cancel()
	c.cl.maybeRefresh(ctx, false)
	slot := -1
	if strings.EqualFold(cmd, "SSUBSCRIBE") {
		slot = commandSlot("GET", args)
	}
	pc, err := c.cl.dial(ctx, c.cl.master(slot))
	if err != nil {
		c.cl.maybeRefresh(ctx, true)
		return err
	}
	c.pinned = pc
	return nil
}

func (c *clusterConn) Flush() error {
	if c.pinned != nil {
		return c.pinned.Flush()
	}
	return c.flush(context.Background())
}

// flush runs the pending commands and queues their replies in order: one
// pipeline per master (the masters one after another), then each command
// answered with a redirection or a retry reply again alone, through do. A
// failure to reach a node is the error reply of each of its commands, as on
// one server, except that the other nodes' commands still run.
func (c *clusterConn) flush(ctx context.Context) error {
	if c.closed {
		return errClusterConnClosed
	}
	c.cl.maybeRefresh(ctx, false)
	base := len(c.replies)
	c.replies = append(c.replies, make([]clusterReply, len(c.pending))...)
	byNode := make(map[string][]int)
	var nodes []string
	for i, cmd := range c.pending {
		addr := c.cl.master(commandSlot(cmd.name, cmd.args))
		if byNode[addr] == nil {
			nodes = append(nodes, addr)
		}
		byNode[addr] = append(byNode[addr], i)
	}
	for _, addr := range nodes {
		c.cl.pipeline(ctx, addr, c.pending, byNode[addr], c.replies[base:])
	}
	c.pending = c.pending[:0]
	return nil
}

// pipeline runs cmds[i] for each i in idx on one connection to addr and
// stores the replies in out[i]; redirected and retried ones go through do.
func (cl *cluster) pipeline(ctx context.Context, addr string, cmds []clusterCmd, idx []int, out []clusterReply) {
	fail := func(err error) {
		for _, i := range idx {
			out[i] = clusterReply{nil, err}
		}
	}
	c, err := cl.poolAt(addr).GetContext(ctx)
	if err != nil {
		fail(err)
		cl.maybeRefresh(ctx, true)
		return
	}
	defer c.Close()
	for _, i := range idx {
		if err := c.Send(cmds[i].name, cmds[i].args...); err != nil {
			fail(err)
			return
		}
	}
	if err := c.Flush(); err != nil {
		fail(err)
		return
	}
	for _, i := range idx {
		r, err := redis.ReceiveContext(c, ctx)
		if err != nil && c.Err() != nil {
			fail(err)
			return
		}
		out[i] = clusterReply{r, err}
	}
	for _, i := range idx {
		var re redis.Error
		if errors.As(out[i].err, &re) {
			switch kind, _, _ := parseRedirect(string(re)); kind {
			case "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN":
				r, err := cl.do(ctx, cmds[i].name, cmds[i].args...)
				out[i] = clusterReply{r, err}
			}
		}
	}
}

func (c *clusterConn) Receive() (any, error) { return c.ReceiveContext(context.Background()) }

func (c *clusterConn) ReceiveWithTimeout(d time.Duration) (any, error) {
	if c.pinned != nil {
		return redis.ReceiveWithTimeout(c.pinned, d)
	}
	return c.ReceiveContext(context.Background())
}

// ReceiveContext returns the next flushed reply (or, pinned, the next
// message).
func (c *clusterConn) ReceiveContext(ctx context.Context) (any, error) {
	if c.pinned != nil {
		return redis.ReceiveContext(c.pinned, ctx)
	}
	if len(c.replies) == 0 {
		return nil, errors.New("redis cluster: receive without a flushed command")
	}
	r := c.replies[0]
	c.replies = c.replies[1:]
	return r.r, r.err
}
