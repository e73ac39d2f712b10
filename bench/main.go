// Command bench is the load generator of the rtm presence server: it opens
// many Socket.IO connections (through rtm/client) spread over one or several
// nodes, joins them to rooms, drives heartbeats, state patches and chat at
// fixed rates, and reports latencies, event delivery, errors and the
// server's own RSS, goroutines and CPU. See bench/README.md.
//
// Every target must be a loopback address: the generator refuses anything else.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// config is the whole command line.
type config struct {
	targets      []string
	eio          int // Engine.IO version: 3 or 4
	rooms        int
	users        int // per room
	connsPerUser int
	hbInterval   time.Duration // per connection
	hbRate       float64       // total per second; overrides hbInterval when > 0
	patchShare   float64
	chatRate     float64 // total per second
	ramp         time.Duration
	duration     time.Duration
	drain        time.Duration
	timeout      time.Duration
	dialConc     int
	maxInflight  int
	sources      int
	sourceBase   string
	perSource    int
	redisAddr    string
	leave        bool
	silenceAt    time.Duration
	expireWithin time.Duration
	jsonOut      bool
	quiet        bool
	smoke        bool

	// -scenario overload (see overload.go).
	scenario      string
	members       int
	patchEvery    time.Duration
	offered       float64 // deliveries per second; overrides patchEvery when > 0
	probeOK       time.Duration
	recoveryLimit time.Duration

	// -scenario emit (see emit.go).
	emitVia string
	msgRate float64 // messages per second into the room

	// -scenario bigroom (see bigroom.go).
	joinRate       float64 // joins per second
	bigEvents      string  // the join's events option; "": not sent
	bigSnapshot    string  // the join's snapshot option; "": not sent
	pageSize       int
	oldShare       float64 // share of members that send no option
	otherRooms     int
	otherUsers     int // per other room
	otherHBEvery   time.Duration
	baseline       time.Duration
	convergeWithin time.Duration
	settle         time.Duration

	// Redis helpers (no sockets).
	luaFile      string
	prefix       string
	seed         int
	seedLookback time.Duration
	seedSID      string
	beatCmd      int
	observe      time.Duration
}

// env helpers: the flag's default comes from the environment when set.
func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}

func envDur(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	target := fs.String("target", envStr("TARGET_URL", "http://127.0.0.1:3000"),
		"server base URL(s), comma-separated; connections are spread round-robin (env TARGET_URL)")
	fs.IntVar(&c.eio, "eio", envInt("EIO", 4),
		"Engine.IO version to speak: 3 (socket.io-client 2.x) or 4 (socket.io-client 3.x/4.x) (env EIO)")
	fs.IntVar(&c.rooms, "rooms", envInt("ROOM_COUNT", 10), "number of rooms (env ROOM_COUNT)")
	fs.IntVar(&c.users, "users", envInt("USERS_PER_ROOM", 10), "users per room (env USERS_PER_ROOM)")
	fs.IntVar(&c.connsPerUser, "conns-per-user", envInt("CONNS_PER_USER", 1), "connections per user (env CONNS_PER_USER)")
	fs.DurationVar(&c.hbInterval, "hb-interval", envDur("HEARTBEAT_INTERVAL", 10*time.Second),
		"heartbeat interval per connection (env HEARTBEAT_INTERVAL)")
	fs.Float64Var(&c.hbRate, "hb-rate", envFloat("HEARTBEATS_PER_SEC", 0),
		"total heartbeats per second over all connections; overrides -hb-interval when > 0 (env HEARTBEATS_PER_SEC)")
	fs.Float64Var(&c.patchShare, "patch-share", envFloat("PATCH_SHARE", 0),
		"share of heartbeats carrying a state patch, 0..1 (env PATCH_SHARE)")
	fs.Float64Var(&c.chatRate, "chat-rate", envFloat("CHAT_PER_SEC", 0), "total chat messages per second (env CHAT_PER_SEC)")
	fs.DurationVar(&c.ramp, "ramp", envDur("RAMP", 5*time.Second), "time over which connections are opened (env RAMP)")
	fs.DurationVar(&c.duration, "duration", envDur("DURATION", 30*time.Second), "steady phase after the ramp (env DURATION)")
	fs.DurationVar(&c.drain, "drain", 2*time.Second, "wait for late events after the steady phase")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "deadline of one dial or request")
	fs.IntVar(&c.dialConc, "dial-concurrency", 64, "connections dialled and joined at once")
	fs.IntVar(&c.maxInflight, "max-inflight", 20000, "requests in flight at once; beyond, scheduled requests are skipped and counted")
	fs.IntVar(&c.sources, "sources", 0, "source addresses 127.0.0.x to spread connections over; 0: one per -per-source connections")
	fs.StringVar(&c.sourceBase, "source-base", "127.0.0.1", "first source address")
	fs.IntVar(&c.perSource, "per-source", 25000, "connections per source address when -sources is 0")
	fs.StringVar(&c.redisAddr, "redis", envStr("REDIS_ADDR", ""),
		"host:port of the server's Redis: report INFO commandstats deltas per phase (env REDIS_ADDR)")
	fs.BoolVar(&c.leave, "leave", true, "send presence:leave on every connection at the end (else only close)")
	fs.DurationVar(&c.silenceAt, "silence-at", 0,
		"reaper test: this far into the steady phase, every connection but the first of each room stops heartbeating; their expired leaves are timed")
	fs.DurationVar(&c.expireWithin, "expire-within", 0, "with -silence-at: fail unless every silenced connection's leave arrived within this long after its last heartbeat")
	fs.BoolVar(&c.jsonOut, "json", false, "print the final report as JSON on stdout instead of the table")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress lines")
	fs.BoolVar(&c.smoke, "smoke", false, "smoke test: 50 connections for 5 s within the default rate limits; exit 1 on any error or missing event")
	fs.StringVar(&c.scenario, "scenario", envStr("SCENARIO", ""),
		"scenario: empty for the rooms/users load; overload: -members in one room on one node, each patching every -patch-every; emit: -members over the -target nodes in one room, -msg-rate messages/s into it; bigroom: -members join one room over the -target nodes at -join-rate while -other-rooms heartbeat (env SCENARIO)")
	fs.IntVar(&c.members, "members", envInt("MEMBERS", 1000), "overload, emit, bigroom: members of the one room (env MEMBERS)")
	fs.DurationVar(&c.patchEvery, "patch-every", envDur("PATCH_EVERY", 500*time.Millisecond),
		"overload: time between two patches of one member (env PATCH_EVERY)")
	fs.Float64Var(&c.offered, "offered", envFloat("OFFERED_DELIVERIES", 0),
		"overload: offered deliveries per second (patches/s × members); overrides -patch-every when > 0 (env OFFERED_DELIVERIES)")
	fs.DurationVar(&c.probeOK, "probe-ok", 50*time.Millisecond,
		"overload: the node has recovered once a fresh join and heartbeat are each acked within this")
	fs.DurationVar(&c.recoveryLimit, "recovery-limit", time.Minute, "overload: give up waiting for recovery after this long")
	fs.StringVar(&c.emitVia, "emit-via", envStr("EMIT_VIA", "auto"),
		"emit: auto, topic (subscribe to a topic, publish with rtm/emitter through -redis) or chat (join a presence room, members send chat:message) (env EMIT_VIA)")
	fs.Float64Var(&c.msgRate, "msg-rate", envFloat("MSG_PER_SEC", 0), "emit: messages per second into the room (env MSG_PER_SEC)")
	fs.Float64Var(&c.joinRate, "join-rate", envFloat("JOIN_RATE", 500), "bigroom: joins per second into the room (env JOIN_RATE)")
	fs.StringVar(&c.bigEvents, "events", envStr("JOIN_EVENTS", ""),
		"bigroom: the members' join option events: each, batched, count, none, or empty to send none (env JOIN_EVENTS)")
	fs.StringVar(&c.bigSnapshot, "snapshot", envStr("JOIN_SNAPSHOT", ""),
		"bigroom: the members' join option snapshot: full, count, page, or empty to send none (env JOIN_SNAPSHOT)")
	fs.IntVar(&c.pageSize, "page-size", envInt("PAGE_SIZE", 0), "bigroom: pageSize of -snapshot page, 1..1000; 0: the server's default (env PAGE_SIZE)")
	fs.Float64Var(&c.oldShare, "old-share", envFloat("OLD_SHARE", 0),
		"bigroom: share of the members, 0..1, that join old-style (no -events, -snapshot or -page-size) (env OLD_SHARE)")
	fs.IntVar(&c.otherRooms, "other-rooms", envInt("OTHER_ROOMS", 100), "bigroom: small rooms heartbeating beside the big one (env OTHER_ROOMS)")
	fs.IntVar(&c.otherUsers, "other-users", envInt("OTHER_USERS", 2), "bigroom: users (one connection each) per other room (env OTHER_USERS)")
	fs.DurationVar(&c.otherHBEvery, "other-hb-every", envDur("OTHER_HB_EVERY", time.Second),
		"bigroom: each other room's connection heartbeats this often; members heartbeat every -hb-interval (env OTHER_HB_EVERY)")
	fs.DurationVar(&c.baseline, "baseline", envDur("BASELINE", 10*time.Second),
		"bigroom: the other rooms heartbeat alone this long before the ramp; 0: as long as the ramp (-members / -join-rate) (env BASELINE)")
	fs.DurationVar(&c.convergeWithin, "converge-within", envDur("CONVERGE_WITHIN", 10*time.Second),
		"bigroom: after the last join, wait at most this long for every member's view of the room's size (env CONVERGE_WITHIN)")
	fs.DurationVar(&c.settle, "settle", envDur("SETTLE", 3*time.Second),
		"bigroom: the nodes' CPU and RSS are read this long after the ramp's end (env SETTLE)")
	fs.StringVar(&c.luaFile, "lua", "presence_lua.go", "the server's presence_lua.go, for -beat-cmd")
	fs.StringVar(&c.prefix, "prefix", "prs:", "the server's PRESENCE_PREFIX, for -seed, -beat-cmd and the emitter of -scenario emit")
	fs.IntVar(&c.seed, "seed", 0, "write this many connections straight into -redis (spread over -rooms, key layout of presence_lua.go) and exit")
	fs.DurationVar(&c.seedLookback, "seed-lookback", time.Hour, "deadline of seeded connections, from now")
	fs.StringVar(&c.seedSID, "seed-sid", "bench-seed", "owner sid of seeded connections")
	fs.IntVar(&c.beatCmd, "beat-cmd", 0, "load the heartbeat script into -redis and print, one per line, the EVALSHA arguments of a batch of this many seeded connections (for redis-benchmark)")
	fs.DurationVar(&c.observe, "observe", 0, "open no connection: report the Redis and server deltas over this long (reaper cost per tick)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, t := range strings.Split(*target, ",") {
		if t = strings.TrimRight(strings.TrimSpace(t), "/"); t != "" {
			c.targets = append(c.targets, t)
		}
	}
	if c.smoke {
		// Within the default per-socket limits: heartbeats 5/s, patches 20/s,
		// chat 10/s, other 20/s. Each socket sends about 0.5 heartbeat, 0.1
		// patch and 0.1 chat per second.
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("rooms", func() { c.rooms = 5 })
		def("users", func() { c.users = 10 })
		def("conns-per-user", func() { c.connsPerUser = 1 })
		def("hb-interval", func() { c.hbInterval = 2 * time.Second })
		def("hb-rate", func() { c.hbRate = 0 })
		def("patch-share", func() { c.patchShare = 0.2 })
		def("chat-rate", func() { c.chatRate = 5 })
		def("ramp", func() { c.ramp = time.Second })
		def("duration", func() { c.duration = 5 * time.Second })
		def("dial-concurrency", func() { c.dialConc = 10 })
		def("silence-at", func() { c.silenceAt = 0 })
	}
	return c, c.validate()
}

func (c *config) validate() error {
	if len(c.targets) == 0 {
		return errors.New("no -target")
	}
	for _, t := range c.targets {
		if err := checkLoopback(t); err != nil {
			return err
		}
	}
	switch c.scenario {
	case "":
	case "overload":
		switch {
		case len(c.targets) != 1:
			return errors.New("-scenario overload loads one node: give one -target")
		case c.members < 1 || c.members > 100_000:
			return errors.New("-members must be within 1..100000")
		case c.offered < 0 || c.offered == 0 && c.patchEvery <= 0:
			return errors.New("-patch-every must be positive (or set -offered)")
		case c.patchInterval() < time.Microsecond:
			return errors.New("-offered is too high for -members")
		case c.probeOK <= 0 || c.recoveryLimit <= 0:
			return errors.New("-probe-ok and -recovery-limit must be positive")
		}
	case "emit":
		if err := c.validateEmit(); err != nil {
			return err
		}
	case "bigroom":
		if err := c.validateBigroom(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("-scenario %q: want overload, emit, bigroom or nothing", c.scenario)
	}
	if c.redisAddr != "" {
		if err := checkLoopback("tcp://" + c.redisAddr); err != nil {
			return fmt.Errorf("-redis: %w", err)
		}
	}
	switch {
	case c.eio != 3 && c.eio != 4:
		return fmt.Errorf("-eio %d: want 3 or 4", c.eio)
	case c.rooms < 1 || c.users < 1 || c.connsPerUser < 1:
		return errors.New("-rooms, -users and -conns-per-user must be at least 1")
	case c.patchShare < 0 || c.patchShare > 1:
		return errors.New("-patch-share must be within 0..1")
	case c.hbRate < 0 || c.chatRate < 0:
		return errors.New("rates must not be negative")
	case c.hbRate == 0 && c.hbInterval <= 0:
		return errors.New("-hb-interval must be positive (or set -hb-rate)")
	case c.dialConc < 1 || c.maxInflight < 1 || c.perSource < 1:
		return errors.New("-dial-concurrency, -max-inflight and -per-source must be at least 1")
	case c.duration < 0 || c.duration > 24*time.Hour || c.ramp < 0 || c.ramp > time.Hour:
		return errors.New("-duration must be within 0..24h and -ramp within 0..1h")
	case c.total() > 1_000_000:
		return errors.New("at most 1,000,000 connections")
	case (c.seed > 0 || c.beatCmd > 0) && c.redisAddr == "":
		return errors.New("-seed and -beat-cmd need -redis")
	}
	if ip := net.ParseIP(c.sourceBase).To4(); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-source-base %q is not an IPv4 loopback address", c.sourceBase)
	}
	return nil
}

// checkLoopback refuses a URL whose host is not a loopback address.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("target %q is not a URL like http://127.0.0.1:3000", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("target %q: only loopback addresses (127.0.0.x, ::1, localhost) may be loaded", raw)
	}
	return nil
}

// total is the number of connections.
func (c *config) total() int { return c.rooms * c.users * c.connsPerUser }

// beatRate is the total heartbeat rate with every connection joined.
func (c *config) beatRate() float64 {
	if c.hbRate > 0 {
		return c.hbRate
	}
	return float64(c.total()) / c.hbInterval.Seconds()
}

func main() {
	c, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	switch {
	case c.seed > 0:
		keyTTL := c.seedLookback + time.Hour
		took, err := seedRedis(seedOptions{addr: c.redisAddr, prefix: c.prefix, conns: c.seed, rooms: c.rooms,
			lookback: c.seedLookback, keyTTL: keyTTL, sid: c.seedSID})
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: seed:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "seeded %d connections in %d rooms in %s\n", c.seed, c.rooms, took.Round(time.Millisecond))
		return
	case c.beatCmd > 0:
		args, err := beatCommand(c.redisAddr, c.luaFile, c.prefix, c.beatCmd, c.seedLookback, c.seedLookback+time.Hour, c.seedSID)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: beat-cmd:", err)
			os.Exit(1)
		}
		fmt.Println(strings.Join(args, "\n"))
		return
	case c.observe > 0:
		if err := observe(c); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	case c.scenario == "overload":
		mainOverload(c)
		return
	case c.scenario == "emit":
		mainEmit(c)
		return
	case c.scenario == "bigroom":
		mainBigroom(c)
		return
	}
	rep, err := run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if c.jsonOut {
		rep.writeJSON(os.Stdout)
	} else {
		rep.writeTable(os.Stdout)
	}
	if problems := rep.problems(c); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "bench: FAIL:", p)
		}
		os.Exit(1)
	}
}

// mainOverload runs -scenario overload, prints its report and exits 1 when
// it missed a criterion.
func mainOverload(c *config) {
	rep, err := runOverload(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	printReport(c.jsonOut, rep)
	if len(rep.Checks) > 0 {
		os.Exit(1)
	}
}

// printReport writes a scenario's report to stdout: indented JSON with
// -json, else its table.
func printReport(jsonOut bool, rep interface{ writeTable(io.Writer) }) {
	if jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
		return
	}
	rep.writeTable(os.Stdout)
}
