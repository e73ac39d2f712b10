package main

import (
	"context"
	"crypto/tls"
	"slices"
	"time"

	"github.com/gomodule/redigo/redis"
)

// newPool returns a pool whose connections time out instead of hanging:
// with Redis unreachable a handler answers unavailable within OpTimeout.
func newPool(dial func(context.Context) (redis.Conn, error)) *redis.Pool {
	return &redis.Pool{
		DialContext: dial,
		MaxIdle:     64,
		MaxActive:   512,
		Wait:        true,
		IdleTimeout: 4 * time.Minute,
		TestOnBorrow: func(c redis.Conn, t time.Time) error {
			if time.Since(t) < time.Minute {
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
