package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Subscriber timing. The health check PINGs the subscription connection every
// subPingPeriod; a read that sees nothing (not even the PONG) for
// subReadTimeout means the subscription is dead. Must be more than
// subPingPeriod. Reconnection backs off from subBackoffMin, doubling up to
// subBackoffMax: a node without its subscription misses events, so it comes
// back within subBackoffMax of Redis accepting connections again; a refused
// dial to a local Redis costs next to nothing, so the cap is kept low.
const (
	subPingPeriod  = 2 * time.Second
	subReadTimeout = 5 * time.Second
	subBackoffMin  = 10 * time.Millisecond
	subBackoffMax  = 100 * time.Millisecond
)

// subscriber holds this node's one pub/sub connection and hands every message
// of the events channel, in order, to deliver. It follows redigo's
// listenPubSubChannels pattern: one goroutine receives, the owner health-checks
// with PING and unsubscribes to stop it. It reconnects with exponential
// backoff whenever the connection fails (a Redis restart, say) and
// re-subscribes by itself; after every subscription but the first it calls
// onResubscribe, since events published while it was deaf reached nobody.
type subscriber struct {
	dial    func(ctx context.Context) (redis.Conn, error)
	channel string
	deliver func([]byte)
	log     *slog.Logger
	// onState, when set, is told whether the subscription is up.
	onState func(up bool)
	// onResubscribe, when set, runs on the owner goroutine once a
	// subscription after a gap is up (messages flow again meanwhile).
	onResubscribe func(ctx context.Context)

	subscribedOnce bool // owned by run's goroutine
}

// run subscribes until ctx ends. It blocks; the server runs it on its wait group.
func (s *subscriber) run(ctx context.Context) {
	backoff := subBackoffMin
	var lostAt time.Time // start of the current gap; zero before the first failure
	for ctx.Err() == nil {
		subscribed, err := s.listen(ctx)
		if s.onState != nil {
			s.onState(false)
		}
		if ctx.Err() != nil {
			return
		}
		if subscribed {
			backoff, lostAt = subBackoffMin, time.Now()
			s.log.Warn("pub/sub connection lost; reconnecting", "err", err)
		} else if lostAt.IsZero() {
			lostAt = time.Now()
			s.log.Warn("pub/sub connection failed; retrying", "err", err)
		} else { // every subBackoffMax while Redis is down: not worth a warning each
			s.log.Debug("pub/sub reconnect failed", "err", err, "in", backoff, "down", time.Since(lostAt))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, subBackoffMax)
	}
}

// listen runs one subscription until it fails or ctx ends. It reports
// whether the subscription was ever up.
func (s *subscriber) listen(ctx context.Context) (subscribed bool, err error) {
	c, err := s.dial(ctx)
	if err != nil {
		return false, fmt.Errorf("dial: %w", err)
	}
	psc := redis.PubSubConn{Conn: c}
	defer psc.Close()
	// A channel with glob characters (the buckets' channels, see
	// Presence.channel) is a pattern.
	pattern := strings.ContainsAny(strings.ReplaceAll(s.channel, `\*`, ""), "*?[")
	subscribe, unsubscribe := psc.Subscribe, psc.Unsubscribe
	if pattern {
		subscribe, unsubscribe = psc.PSubscribe, psc.PUnsubscribe
	}
	if err := subscribe(s.channel); err != nil {
		return false, fmt.Errorf("subscribe: %w", err)
	}

	up := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() { // owned by listen: ends when psc fails or is unsubscribed/closed
		for {
			switch v := psc.ReceiveWithTimeout(subReadTimeout).(type) {
			case error:
				done <- v
				return
			case redis.Message:
				s.deliver(v.Data)
			case redis.Subscription:
				switch v.Count {
				case 1:
					if s.onState != nil {
						s.onState(true)
					}
					up <- struct{}{}
				case 0:
					done <- nil
					return
				}
			}
		}
	}()

	tick := time.NewTicker(subPingPeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = unsubscribe()
			select { // wait for the receiver, but not for a dead server
			case <-done:
			case <-time.After(subReadTimeout):
				_ = psc.Close()
				<-done
			}
			return subscribed, ctx.Err()
		case <-up:
			subscribed = true
			s.log.Info("subscribed to events channel", "channel", s.channel)
			if s.subscribedOnce && s.onResubscribe != nil {
				s.onResubscribe(ctx)
			}
			s.subscribedOnce = true
		case err := <-done:
			if err == nil {
				err = errors.New("unsubscribed")
			}
			return subscribed, err
		case <-tick.C:
			if err := psc.Ping(""); err != nil {
				_ = psc.Close()
				return subscribed, fmt.Errorf("ping: %w", <-done)
			}
		}
	}
}

// startSubscriber runs the node's events subscriber on the server's wait
// group until ctx ends. The returned channel is closed once the subscription
// is first up.
func (s *Server) startSubscriber(ctx context.Context) <-chan struct{} {
	ready := make(chan struct{})
	var readyOnce sync.Once
	sub := &subscriber{
		// The pool's dialer: a subscription that finds Redis gone tells the
		// pool, whose idle connections are then known to be dead too.
		dial:    s.pool.DialContext,
		channel: s.channel, deliver: s.hub.deliver, log: s.log,
		onResubscribe: s.presence.resync,
		onState: func(up bool) {
			s.mu.Lock()
			s.redisSub = up
			s.mu.Unlock()
			if !up {
				s.hub.markGap()
			}
			if up {
				readyOnce.Do(func() { close(ready) })
			}
		},
	}
	s.spawn(func() { sub.run(ctx) })
	return ready
}
