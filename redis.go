package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"slices"
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
// timeout variants that scripts (DoContext) and the subscriber
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
// dialer of the node's subscriber, so that the subscriber, which notices a
// Redis restart first, tells the pool at once.
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

// redisDialer returns a dial function for redisURL with bounded timeouts.
func redisDialer(redisURL string, tlsConf *tls.Config) func(context.Context) (redis.Conn, error) {
	opts := []redis.DialOption{
		redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(2 * time.Second),
		redis.DialWriteTimeout(2 * time.Second),
	}
	if tlsConf != nil {
		opts = append(opts, redis.DialTLSConfig(tlsConf))
	}
	return func(ctx context.Context) (redis.Conn, error) {
		// Clipped: DialURLContext appends to the options, and dials run
		// concurrently.
		return redis.DialURLContext(ctx, redisURL, slices.Clip(opts)...)
	}
}
