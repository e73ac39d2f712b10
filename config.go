package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the command's configuration. Each setting comes from its flag,
// else its environment variable, else its default; load checks them all.
type Config struct {
	// Port to listen on (PORT, -port); default 3000, 0 picks a free port.
	Port int
	// RedisURL (REDIS_URL, -redis-url): redis:// or rediss:// URL with
	// optional password and database. Empty: an embedded in-process Redis,
	// single-node and keeping nothing across restarts.
	RedisURL string
	// LogLevel (LOG_LEVEL, -log-level): debug, info, warn or error; default info.
	LogLevel slog.Level
	// PProf (PPROF, -pprof) serves /debug/pprof/ on the same port; default off.
	PProf bool
	// Server holds everything else; see ServerOptions for each field.
	Server ServerOptions
}

// setting is one configuration value: its flag, its environment variable,
// its default (as text) and how to parse and apply it.
type setting struct {
	flag, env, def, help string
	apply                parser
}

// parser applies a setting's text; typ names its type in the help ("int",
// "duration", "bool"...).
type parser struct {
	typ string
	set func(string) error
}

// flagValue holds a setting's text until the flags are parsed. A "bool"
// setting is a boolean flag: -pprof alone means true.
type flagValue struct {
	text   string
	isBool bool
}

func (v *flagValue) String() string     { return v.text }
func (v *flagValue) Set(s string) error { v.text = s; return nil }
func (v *flagValue) IsBoolFlag() bool   { return v.isBool }

// errUsage marks a configuration error: the command exits with status 2.
var errUsage = errors.New("usage")

// loadConfig reads the configuration from args and getenv. It returns
// flag.ErrHelp after printing the help for -h, and an error wrapping errUsage,
// naming the setting, for a bad value.
func loadConfig(args []string, getenv func(string) string, out io.Writer) (*Config, error) {
	c := &Config{}
	var ttl, lookback time.Duration
	var rawLookback string
	settings := []setting{
		{"port", "PORT", "3000", "port to listen on", intTo(&c.Port, 0, 65535)},
		{"redis-url", "REDIS_URL", "", "Redis URL (redis:// or rediss://); empty: embedded in-process Redis", parser{"url", strTo(&c.RedisURL).set}},
		{"redis-ca-file", "REDIS_CA_FILE", "", "PEM file of the CA(s) to trust for rediss:// (default: the system's)", parser{"file", func(v string) error {
			if v == "" {
				return nil
			}
			pem, err := os.ReadFile(v)
			if err != nil {
				return err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("no certificate in %s", v)
			}
			c.Server.RedisTLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			return nil
		}}},
		{"log-level", "LOG_LEVEL", "info", "debug, info, warn or error", parser{"level", func(v string) error {
			return c.LogLevel.UnmarshalText([]byte(v))
		}}},
		{"presence-ttl-ms", "PRESENCE_TTL_MS", "30000", "heartbeat window; also the grace on graceful shutdown", msTo(&ttl, 1000)},
		{"presence-reaper-interval-ms", "PRESENCE_REAPER_INTERVAL_MS", "3000", "how often the reaper runs", msTo(&c.Server.Presence.ReaperInterval, 10)},
		{"presence-reaper-lookback-ms", "PRESENCE_REAPER_LOOKBACK_MS", "", "age of the last heartbeat at which a connection expires (default 2 x TTL)", parser{"duration", strTo(&rawLookback).set}},
		{"presence-disconnect-grace-ms", "PRESENCE_DISCONNECT_GRACE_MS", "5000", "how long a dropped socket's connection waits for a resume; 0 removes at once", msTo(&c.Server.Presence.DisconnectGrace, 0)},
		{"presence-max-snapshot", "PRESENCE_MAX_SNAPSHOT", "0", "most connections a full snapshot lists; a larger room answers the first page, marked truncated; 0: no cap", intTo(&c.Server.Presence.MaxSnapshot, 0, 1<<30)},
		{"presence-batch-ms", "PRESENCE_BATCH_MS", "200", "tick of batched presence events and counts (the join's events option)", msTo(&c.Server.Presence.BatchInterval, 10)},
		{"history-ttl-ms", "HISTORY_TTL_MS", "120000", "how long a room's events stay in its history, for clients that come back; 0: no history", msTo(&c.Server.Presence.History.TTL, 0)},
		{"history-max", "HISTORY_MAX", "1000", "most events a room's history holds; 0: no history", intTo(&c.Server.Presence.History.Max, 0, 1<<20)},
		{"presence-prefix", "PRESENCE_PREFIX", "prs:", "prefix of every Redis key", strTo(&c.Server.Presence.Prefix)},
		{"jwt-secret", "JWT_SECRET", "", "HS256 secret; when set every handshake needs a token", parser{"string", func(v string) error {
			c.Server.JWTSecret = []byte(v)
			return nil
		}}},
		{"api-token", "API_TOKEN", "", "bearer token for the HTTP presence API", strTo(&c.Server.APIToken)},
		{"metrics-token", "METRICS_TOKEN", "", "bearer token for GET /metrics; empty: metrics open", strTo(&c.Server.MetricsToken)},
		{"allowed-origins", "ALLOWED_ORIGINS", "", "comma-separated browser origins allowed; empty: any", parser{"list", func(v string) error {
			for _, o := range strings.Split(v, ",") {
				if o = strings.TrimSpace(o); o != "" {
					c.Server.AllowedOrigins = append(c.Server.AllowedOrigins, o)
				}
			}
			return nil
		}}},
		{"max-message-bytes", "MAX_MESSAGE_BYTES", "65536", "largest Socket.IO message accepted", intTo(&c.Server.MaxMessageBytes, 1024, 64<<20)},
		{"max-sockets-per-ip", "MAX_SOCKETS_PER_IP", "0", "sessions allowed per client IP, from handshake until gone; 0: no cap", intTo(&c.Server.MaxSocketsPerIP, 0, 1<<30)},
		{"max-http-conns-per-ip", "MAX_HTTP_CONNS_PER_IP", "0", "HTTP connections per client IP that are not websockets; 0: 4 x max-sockets-per-ip, or no cap", intTo(&c.Server.MaxHTTPConnsPerIP, 0, 1<<30)},
		{"rate-heartbeat", "RATE_HEARTBEAT", "5:20", "plain heartbeats per socket: per-second:burst; 0: unlimited", rateTo(&c.Server.Rates.Heartbeat)},
		{"rate-patch", "RATE_PATCH", "20:40", "state patches per socket: per-second:burst; 0: unlimited", rateTo(&c.Server.Rates.Patch)},
		{"rate-chat", "RATE_CHAT", "10:20", "chat messages per socket: per-second:burst; 0: unlimited", rateTo(&c.Server.Rates.Chat)},
		{"rate-other", "RATE_OTHER", "20:40", "other events per socket: per-second:burst; 0: unlimited", rateTo(&c.Server.Rates.Other)},
		{"outbound-queue-bytes", "OUTBOUND_QUEUE_BYTES", "4194304", "bytes queued for a client that does not read before it is dropped", intTo(&c.Server.OutboundQueueBytes, 1024, 1<<30)},
		{"connect-timeout-ms", "CONNECT_TIMEOUT_MS", "20000", "how long a session may stay connected to no namespace before it is closed", msTo(&c.Server.ConnectTimeout, 1)},
		{"shutdown-timeout-ms", "SHUTDOWN_TIMEOUT_MS", "10000", "deadline of a graceful shutdown", msTo(&c.Server.ShutdownTimeout, 1)},
		{"pprof", "PPROF", "false", "serve /debug/pprof/", parser{"bool", func(v string) (err error) {
			c.PProf, err = strconv.ParseBool(v)
			return err
		}}},
	}

	fs := flag.NewFlagSet("rtm", flag.ContinueOnError)
	fs.SetOutput(out)
	values := make([]*flagValue, len(settings))
	for i, st := range settings {
		values[i] = &flagValue{text: st.def, isBool: st.apply.typ == "bool"}
		if v := getenv(st.env); v != "" {
			values[i].text = v
		}
		fs.Var(values[i], st.flag, fmt.Sprintf("%s (env %s)", st.help, st.env))
	}
	fs.Usage = func() {
		fmt.Fprintln(out, "Usage: rtm [flags]\n\nEvery flag may also be set by the environment variable named; the flag wins.\n"+
			"A duration is a whole number of milliseconds or a Go duration such as 1.5s.")
		printDefaults(out, settings, values)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	for i, st := range settings {
		if err := st.apply.set(strings.TrimSpace(values[i].text)); err != nil {
			return nil, fmt.Errorf("%w: %s (-%s): %v", errUsage, st.env, st.flag, err)
		}
	}
	lookback = 2 * ttl
	if rawLookback != "" {
		if err := msTo(&lookback, 1).set(rawLookback); err != nil {
			return nil, fmt.Errorf("%w: PRESENCE_REAPER_LOOKBACK_MS (-presence-reaper-lookback-ms): %v", errUsage, err)
		}
	}
	if lookback < ttl {
		return nil, fmt.Errorf("%w: PRESENCE_REAPER_LOOKBACK_MS (%d) must be at least PRESENCE_TTL_MS (%d)",
			errUsage, lookback.Milliseconds(), ttl.Milliseconds())
	}
	c.Server.Presence.TTL, c.Server.Presence.ReaperLookback = ttl, lookback
	if c.Server.Presence.History.TTL == 0 || c.Server.Presence.History.Max == 0 {
		c.Server.Presence.History = HistoryOptions{TTL: -1, Max: -1} // 0 in the config means off
	}
	if c.Server.Presence.DisconnectGrace == 0 {
		c.Server.Presence.DisconnectGrace = -1 // 0 in the config means at once
	}
	return c, nil
}

// printDefaults writes each flag with its type, help and default, in the
// layout of flag.PrintDefaults.
func printDefaults(out io.Writer, settings []setting, values []*flagValue) {
	for i, st := range settings {
		line := "  -" + st.flag
		if st.apply.typ != "bool" {
			line += " " + st.apply.typ
		}
		line += "\n    \t" + st.help + " (env " + st.env + ")"
		if d := values[i].text; d != "" && d != "false" {
			if st.apply.typ == "string" || st.apply.typ == "url" || st.apply.typ == "file" || st.apply.typ == "list" {
				d = strconv.Quote(d)
			}
			line += " (default " + d + ")"
		}
		fmt.Fprintln(out, line)
	}
}

func strTo(p *string) parser {
	return parser{"string", func(v string) error { *p = v; return nil }}
}

func intTo(p *int, lo, hi int) parser {
	return parser{"int", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		if n < lo || n > hi {
			return fmt.Errorf("%d is outside %d..%d", n, lo, hi)
		}
		*p = n
		return nil
	}}
}

// msTo parses a duration of at least lo milliseconds: a whole number of
// milliseconds, or a Go duration such as "1.5s" (whole milliseconds).
func msTo(p *time.Duration, lo int) parser {
	return parser{"duration", func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			n, nerr := strconv.Atoi(v)
			if nerr != nil {
				return fmt.Errorf("%q is neither milliseconds nor a duration", v)
			}
			d = time.Duration(n) * time.Millisecond
		}
		if d%time.Millisecond != 0 || d < time.Duration(lo)*time.Millisecond || d > (1<<31-1)*time.Millisecond {
			return fmt.Errorf("%v is not a whole number of milliseconds from %d ms on", d, lo)
		}
		*p = d
		return nil
	}}
}

// rateTo parses "per-second:burst", "per-second" (burst = 2 × rate) or "0".
func rateTo(p *Rate) parser {
	return parser{"rate", func(v string) error {
		rs, bs, hasBurst := strings.Cut(v, ":")
		r, err := strconv.ParseFloat(rs, 64)
		if err != nil || r < 0 {
			return fmt.Errorf("%q is not per-second:burst", v)
		}
		b := int(2 * r)
		if hasBurst {
			if b, err = strconv.Atoi(bs); err != nil || b < 1 {
				return fmt.Errorf("%q is not per-second:burst", v)
			}
		}
		*p = Rate{PerSecond: r, Burst: max(b, 1)}
		return nil
	}}
}
