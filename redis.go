package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Pool sizing. Redis runs one script at a time, so more connections than a
// few dozen only queue inside Redis instead of in the pool; a bounded pool
// turns a burst into waiting (bounded by each operation's deadline) rather
// than into a storm of dials on a starved machine. MaxIdle equals MaxActive
// so that a busy node does not close and re-dial connections all the time.
const (
	poolMaxActive = 64
	poolMaxIdle   = poolMaxActive
	// poolPingIdle: a connection idle this long is PINGed before use (a
	// firewall may have dropped it without either end noticing).
	poolPingIdle = time.Minute
)

// errStaleConn rejects, in TestOnBorrow, a pooled connection dialed before
// the last sign that Redis went away.
var errStaleConn = errors.New("redis: connection predates a lost Redis")

// redisHealth is what a pool's connections learn about Redis together: the
// last time any of them saw the server go away (EOF, reset, refused). Every
// connection dialed before that moment is presumed dead and is discarded,
// unused, when the pool would hand it out. So after a Redis restart a node
// does not spend one request per idle connection finding out, however many
// it held; the first request after Redis is back dials afresh. Nothing is
// checked on the hot path beyond one atomic load per borrow.
type redisHealth struct {
	base   time.Time    // origin of the monotonic times below
	lostAt atomic.Int64 // the last sign of a lost server, as since(); 0: none
}

func newRedisHealth() *redisHealth { return &redisHealth{base: time.Now()} }

// since returns the monotonic time elapsed since h.base, never 0.
func (h *redisHealth) since() int64 { return int64(time.Since(h.base)) + 1 }

// lost records that Redis went away now.
func (h *redisHealth) lost() { h.lostAt.Store(h.since()) }

// note records a lost server if err says the server closed or refused the
// connection. Timeouts do not count: a slow Redis is not a restarted one, and
// throwing the pool away on a timeout would turn overload into a dial storm.
func (h *redisHealth) note(err error) {
	if err != nil && isConnLost(err) {
		h.lost()
	}
}

// isConnLost reports whether err means the server end of a connection is
// gone: closed, reset or refusing.
func isConnLost(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNREFUSED)
}

// trackedConn is a Redis connection that reports a lost server to its
// redisHealth and remembers when it was dialed. It keeps the context and
// timeout variants that scripts (DoContext) and the subscriptions
// (ReceiveWithTimeout) need.
type trackedConn struct {
	redis.Conn
	h    *redisHealth
	born int64 // when the dial began, as h.since()
}

func (c *trackedConn) Do(cmd string, args ...any) (any, error) {
	r, err := c.Conn.Do(cmd, args...)
	c.h.note(err)
	return r, err
}

func (c *trackedConn) Flush() error {
	err := c.Conn.Flush()
	c.h.note(err)
	return err
}

func (c *trackedConn) Receive() (any, error) {
	r, err := c.Conn.Receive()
	c.h.note(err)
	return r, err
}

func (c *trackedConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	r, err := redis.DoContext(c.Conn, ctx, cmd, args...)
	c.h.note(err)
	return r, err
}

func (c *trackedConn) ReceiveContext(ctx context.Context) (any, error) {
	r, err := redis.ReceiveContext(c.Conn, ctx)
	c.h.note(err)
	return r, err
}

func (c *trackedConn) DoWithTimeout(d time.Duration, cmd string, args ...any) (any, error) {
	r, err := redis.DoWithTimeout(c.Conn, d, cmd, args...)
	c.h.note(err)
	return r, err
}

func (c *trackedConn) ReceiveWithTimeout(d time.Duration) (any, error) {
	r, err := redis.ReceiveWithTimeout(c.Conn, d)
	c.h.note(err)
	return r, err
}

var (
	_ redis.ConnWithContext = (*trackedConn)(nil)
	_ redis.ConnWithTimeout = (*trackedConn)(nil)
)

// newPool returns a bounded pool whose connections time out instead of
// hanging (with Redis unreachable a handler answers unavailable within
// OpTimeout) and whose idle connections from before a lost Redis are
// discarded, not handed out (see redisHealth). Its DialContext is also the
// dialer of the node's subscriptions on a single Redis, so that they, who
// notice a Redis restart first, tell the pool at once.
func newPool(dial func(context.Context) (redis.Conn, error)) *redis.Pool {
	h := newRedisHealth()
	return &redis.Pool{
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			born := h.since()
			c, err := dial(ctx)
			if err != nil {
				h.note(err)
				return nil, err
			}
			return &trackedConn{Conn: c, h: h, born: born}, nil
		},
		MaxIdle:     poolMaxIdle,
		MaxActive:   poolMaxActive,
		Wait:        true, // bounded by the caller's context
		IdleTimeout: 4 * time.Minute,
		TestOnBorrow: func(c redis.Conn, idleSince time.Time) error {
			if tc, ok := c.(*trackedConn); ok && tc.born <= h.lostAt.Load() {
				return errStaleConn
			}
			if time.Since(idleSince) < poolPingIdle {
				return nil
			}
			_, err := c.Do("PING")
			return err
		},
	}
}

// redisDialer returns a dial function for REDIS_URL with bounded timeouts.
// REDIS_URL may list several nodes of a Redis Cluster; whether the server is
// a cluster is detected at the first dial (see redisTarget).
func redisDialer(redisURL string, tlsConf *tls.Config) func(context.Context) (redis.Conn, error) {
	return newRedisTarget(redisURL, tlsConf).dial
}

// newRedisTarget returns the target of REDIS_URL, not yet dialed.
func newRedisTarget(redisURL string, tlsConf *tls.Config) *redisTarget {
	opts := []redis.DialOption{
		redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(2 * time.Second),
		redis.DialWriteTimeout(2 * time.Second),
	}
	if tlsConf != nil {
		opts = append(opts, redis.DialTLSConfig(tlsConf))
	}
	urls, err := splitRedisURL(redisURL)
	if err != nil {
		return &redisTarget{err: err}
	}
	return &redisTarget{urls: urls, dialURL: func(ctx context.Context, u string) (redis.Conn, error) {
		// Clipped: DialURLContext appends to the options, and dials run
		// concurrently.
		return redis.DialURLContext(ctx, u, slices.Clip(opts)...)
	}}
}

// redisTarget dials what REDIS_URL names: a single Redis (plain
// connections, as always) or a Redis Cluster (routed connections of one
// cluster, see cluster.go). The first dial that reaches a node asks it for
// INFO cluster and settles which; dial is safe to call concurrently.
type redisTarget struct {
	err     error    // REDIS_URL does not parse: every dial fails with it
	urls    []string // one per node listed
	dialURL func(ctx context.Context, url string) (redis.Conn, error)

	mu     sync.Mutex // guards the following fields
	single bool       // detected: a single Redis at urls[0]
	cl     *cluster   // detected: a cluster
}

func (t *redisTarget) dial(ctx context.Context) (redis.Conn, error) {
	if t.err != nil {
		return nil, t.err
	}
	t.mu.Lock()
	single, cl := t.single, t.cl
	t.mu.Unlock()
	switch {
	case cl != nil:
		return cl.conn(), nil
	case single:
		return t.dialURL(ctx, t.urls[0])
	}
	return t.detect(ctx)
}

// detect dials the listed nodes in turn and asks the first that answers
// whether cluster mode is on. A node that rejects INFO cluster (miniredis)
// is a single Redis.
func (t *redisTarget) detect(ctx context.Context) (redis.Conn, error) {
	var err error
	for _, u := range t.urls {
		var c redis.Conn
		if c, err = t.dialURL(ctx, u); err != nil {
			continue
		}
		info, ierr := redis.String(redis.DoContext(c, ctx, "INFO", "cluster"))
		if re := redis.Error(""); ierr != nil && !errors.As(ierr, &re) {
			c.Close()
			err = ierr
			continue
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		if !strings.Contains(info, "cluster_enabled:1") {
			if len(t.urls) > 1 {
				c.Close()
				return nil, fmt.Errorf("redis url: several nodes listed but %s is not in cluster mode", u)
			}
			t.single = true
			return c, nil
		}
		c.Close()
		if t.cl == nil {
			t.cl, err = newURLCluster(t.urls, u, t.dialURL)
			if err != nil {
				return nil, err
			}
		}
		return t.cl.conn(), nil
	}
	return nil, err
}

// newURLCluster returns the cluster whose nodes are dialed with the URL
// template (credentials, TLS, options) with each node's address as host.
func newURLCluster(urls []string, template string, dialURL func(context.Context, string) (redis.Conn, error)) (*cluster, error) {
	tu, err := url.Parse(template)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	seeds := make([]string, 0, len(urls))
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("redis url: %w", err)
		}
		seeds = append(seeds, u.Host)
	}
	return newCluster(seeds, func(ctx context.Context, addr string) (redis.Conn, error) {
		u := *tu
		u.Host = addr
		return dialURL(ctx, u.String())
	}), nil
}

// splitRedisURL returns one URL per host of a REDIS_URL that may list
// several (redis://:pw@h1:7000,h2:7001/0): the same scheme, credentials,
// path and query, each with one host.
func splitRedisURL(raw string) ([]string, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || !strings.Contains(rest, ",") {
		return []string{raw}, nil
	}
	auth, hostsAndPath := "", rest
	if i := strings.LastIndexByte(rest[:strings.IndexAny(rest+"/", "/?")], '@'); i >= 0 {
		auth, hostsAndPath = rest[:i+1], rest[i+1:]
	}
	cut := strings.IndexAny(hostsAndPath+"/", "/?")
	hosts, tail := hostsAndPath[:cut], hostsAndPath[cut:]
	var out []string
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		u := scheme + "://" + auth + h + tail
		if _, err := url.Parse(u); err != nil {
			return nil, fmt.Errorf("redis url: %w", err)
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, errors.New("redis url: no host")
	}
	return out, nil
}

// cluster returns the cluster REDIS_URL names, or nil for a single Redis or
// before the first dial.
func (t *redisTarget) cluster() *cluster {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cl
}

// redisSubs is the subBackend of a node: its pool (whose dialer settles
// single or cluster) and the target behind it.
type redisSubs struct {
	t    *redisTarget
	pool *redis.Pool
}

// shardedPubSub asks Redis for its version: shard channels came with Redis
// 7. A server without INFO server (the embedded miniredis) has none.
func (r redisSubs) shardedPubSub(ctx context.Context) (bool, error) {
	c, err := r.pool.GetContext(ctx)
	if err != nil {
		return false, err
	}
	defer c.Close()
	info, err := redis.String(redis.DoContext(c, ctx, "INFO", "server"))
	if re := redis.Error(""); errors.As(err, &re) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if cl := r.t.cluster(); cl != nil {
		cl.maybeRefresh(ctx, true)
	}
	return redisMajor(info) >= 7, nil
}

// redisMajor returns the major version in an INFO server reply, 0 if none.
func redisMajor(info string) int {
	_, v, ok := strings.Cut(info, "redis_version:")
	if !ok {
		return 0
	}
	major, _, _ := strings.Cut(v, ".")
	n, _ := strconv.Atoi(major)
	return n
}

func (r redisSubs) subAddr(channel string, sharded bool) string {
	if cl := r.t.cluster(); cl != nil && sharded {
		return cl.master(keySlot(channel))
	}
	return ""
}

// dialSub dials a subscription connection. On a single Redis it is the
// pool's dialer: a subscription that finds Redis gone tells the pool, whose
// idle connections are then known to be dead too.
func (r redisSubs) dialSub(ctx context.Context, addr string) (redis.Conn, error) {
	cl := r.t.cluster()
	switch {
	case cl == nil:
		return r.pool.DialContext(ctx)
	case addr == "":
		addr = cl.master(-1)
	}
	return cl.dial(ctx, addr)
}

func (r redisSubs) subMoved(slot int, addr string) {
	if cl := r.t.cluster(); cl != nil {
		cl.moveSlot(slot, addr)
	}
}

func (r redisSubs) subLost(ctx context.Context, _ string) {
	if cl := r.t.cluster(); cl != nil {
		cl.markStale()
		cl.maybeRefresh(ctx, true)
	}
}
