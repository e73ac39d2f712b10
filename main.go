// Command rtm is a realtime presence server: Socket.IO in both protocol
// generations (Engine.IO 4, socket.io-client 3.x and 4.x; Engine.IO 3,
// socket.io-client 2.x) in front of Redis or a Redis Cluster, answering "who
// is in this room right now" correctly across many nodes, crashes and
// reconnects.
//
// Run it with `go run .`; with no REDIS_URL it serves on an embedded
// in-process Redis. `rtm -h` lists every setting. The wire protocol is
// PROTOCOL.md; the README summarises it and describes the architecture.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/alicebob/miniredis/v2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "rtm:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "rtm:", err)
		os.Exit(1)
	}
}

// run starts the server and serves until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	cfg.Server.Logger = log

	if cfg.RedisURL == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("embedded redis: %w", err)
		}
		defer mr.Close()
		cfg.RedisURL = "redis://" + mr.Addr()
		log.Warn("REDIS_URL is not set: using an embedded in-process Redis; this node is single-node and keeps nothing across restarts")
	}
	cfg.Server.RedisURL = cfg.RedisURL
	if len(cfg.Server.JWTSecret) == 0 {
		log.Warn("JWT_SECRET is not set: client-supplied user ids are trusted (development mode)")
	}
	if len(cfg.Server.AllowedOrigins) == 0 {
		log.Info("ALLOWED_ORIGINS is not set: browsers from any origin may connect")
	}

	srv, err := New(cfg.Server)
	if err != nil {
		return err
	}
	for _, m := range []Module{NewChat(srv.Presence()), NewTopics()} {
		if err := srv.Use(m); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(cfg.Port)))
	if err != nil {
		return err
	}
	if cfg.PProf {
		srv.HandleExtra("/debug/pprof/", http.HandlerFunc(pprof.Index))
		srv.HandleExtra("/debug/pprof/profile", http.HandlerFunc(pprof.Profile))
		srv.HandleExtra("/debug/pprof/heap", pprof.Handler("heap"))
		srv.HandleExtra("/debug/pprof/goroutine", pprof.Handler("goroutine"))
	}
	return srv.Run(ctx, ln)
}
