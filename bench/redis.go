package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
)

// redisConn is a minimal RESP2 client: enough to read INFO, load a script and
// pipeline the commands that seed connections. It is not safe for concurrent
// use.
type redisConn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func dialRedis(addr string) (*redisConn, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	return &redisConn{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 64<<10)}, nil
}

func (rc *redisConn) Close() error { return rc.c.Close() }

// send buffers one command.
func (rc *redisConn) send(args ...string) {
	fmt.Fprintf(rc.w, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(rc.w, "$%d\r\n%s\r\n", len(a), a)
	}
}

// flush sends the buffered commands, within a deadline.
func (rc *redisConn) flush() error {
	_ = rc.c.SetDeadline(time.Now().Add(30 * time.Second))
	return rc.w.Flush()
}

// redisError is an error reply.
type redisError string

func (e redisError) Error() string { return "redis: " + string(e) }

// read reads one reply: string, int64, []any, nil or redisError.
func (rc *redisConn) read() (any, error) {
	line, err := rc.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return nil, errors.New("redis: empty reply line")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return redisError(line[1:]), nil
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(rc.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = rc.read(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("redis: unexpected reply %q", line)
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// do sends one command and reads its reply; an error reply is returned as error.
func (rc *redisConn) do(args ...string) (any, error) {
	rc.send(args...)
	if err := rc.flush(); err != nil {
		return nil, err
	}
	v, err := rc.read()
	if err != nil {
		return nil, err
	}
	if e, ok := v.(redisError); ok {
		return nil, e
	}
	return v, nil
}

// RedisStats is what one INFO read reports.
type RedisStats struct {
	At       time.Time
	Calls    map[string]int64 // commandstats calls by command
	Usec     map[string]int64 // commandstats usec by command
	CPU      float64          // used_cpu_user + used_cpu_sys, seconds
	MemBytes int64            // used_memory
}

// readRedisStats reads INFO commandstats, cpu and memory.
func readRedisStats(addr string) (*RedisStats, error) {
	rc, err := dialRedis(addr)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	v, err := rc.do("INFO", "all")
	if err != nil {
		return nil, err
	}
	text, _ := v.(string)
	s := &RedisStats{At: time.Now(), Calls: map[string]int64{}, Usec: map[string]int64{}}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if name, rest, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(name, "cmdstat_") {
			cmd := strings.TrimPrefix(name, "cmdstat_")
			for _, kv := range strings.Split(rest, ",") {
				k, val, _ := strings.Cut(kv, "=")
				n, _ := strconv.ParseInt(val, 10, 64)
				switch k {
				case "calls":
					s.Calls[cmd] = n
				case "usec":
					s.Usec[cmd] = n
				}
			}
			continue
		}
		if k, val, ok := strings.Cut(line, ":"); ok {
			switch k {
			case "used_cpu_user", "used_cpu_sys":
				f, _ := strconv.ParseFloat(val, 64)
				s.CPU += f
			case "used_memory":
				s.MemBytes, _ = strconv.ParseInt(val, 10, 64)
			}
		}
	}
	return s, nil
}

// roundTripCommands are the commands a client sends itself and a script
// never does: their calls are Redis round trips. Commands run inside a
// script are counted by commandstats too, so they are left out.
var roundTripCommands = []string{"evalsha", "eval", "evalsha_ro", "eval_ro", "ping", "script|load", "multi", "exec"}

// RedisDelta is the difference between two RedisStats.
type RedisDelta struct {
	Seconds    float64          `json:"seconds"`
	RoundTrips int64            `json:"round_trips"`
	Calls      map[string]int64 `json:"calls"`
	UsecPer    map[string]int64 `json:"usec"`
	CPUSeconds float64          `json:"cpu_seconds"`
	CPUPercent float64          `json:"cpu_percent"`
}

func redisDelta(a, b *RedisStats) *RedisDelta {
	if a == nil || b == nil {
		return nil
	}
	d := &RedisDelta{Seconds: b.At.Sub(a.At).Seconds(), Calls: map[string]int64{}, UsecPer: map[string]int64{},
		CPUSeconds: b.CPU - a.CPU}
	if d.Seconds > 0 {
		d.CPUPercent = 100 * d.CPUSeconds / d.Seconds
	}
	for k, v := range b.Calls {
		if n := v - a.Calls[k]; n > 0 && k != "info" {
			d.Calls[k] = n
			d.UsecPer[k] = b.Usec[k] - a.Usec[k]
		}
	}
	for _, k := range roundTripCommands {
		d.RoundTrips += d.Calls[k]
	}
	return d
}

// String lists the calls, largest first.
func (d *RedisDelta) String() string {
	if d == nil {
		return "-"
	}
	type kv struct {
		k string
		v int64
	}
	var l []kv
	for k, v := range d.Calls {
		l = append(l, kv{k, v})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].v > l[j].v || (l[i].v == l[j].v && l[i].k < l[j].k) })
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%d", e.k, e.v)
	}
	return b.String()
}

// luaScript extracts the text of the script variable name (a
// redis.NewScript call whose second argument is a string literal, a string
// constant or a concatenation of them) from the server's presence_lua.go.
func luaScript(file, name string) (string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, 0)
	if err != nil {
		return "", err
	}
	consts := map[string]ast.Expr{}
	var target ast.Expr
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, id := range vs.Names {
			if i < len(vs.Values) {
				consts[id.Name] = vs.Values[i]
				if id.Name == name {
					target = vs.Values[i]
				}
			}
		}
		return true
	})
	if target == nil {
		return "", fmt.Errorf("%s: no variable %s", file, name)
	}
	call, ok := target.(*ast.CallExpr)
	if !ok || len(call.Args) != 2 {
		return "", fmt.Errorf("%s: %s is not redis.NewScript(keys, src)", file, name)
	}
	var eval func(e ast.Expr) (string, error)
	eval = func(e ast.Expr) (string, error) {
		switch e := e.(type) {
		case *ast.BasicLit:
			return strconv.Unquote(e.Value)
		case *ast.Ident:
			if c, ok := consts[e.Name]; ok {
				return eval(c)
			}
		case *ast.BinaryExpr:
			if e.Op == token.ADD {
				a, err := eval(e.X)
				if err != nil {
					return "", err
				}
				b, err := eval(e.Y)
				return a + b, err
			}
		case *ast.ParenExpr:
			return eval(e.X)
		}
		return "", fmt.Errorf("%s: cannot evaluate the source of %s", file, name)
	}
	return eval(call.Args[1])
}

func sha1Hex(s string) string {
	h := sha1.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// seedOptions describe connections written straight into Redis with the
// server's key layout (presence_lua.go), without sockets.
type seedOptions struct {
	addr, prefix string
	conns, rooms int
	lookback     time.Duration // deadline = now + lookback
	keyTTL       time.Duration
	sid          string // owner sid: heartbeats naming it pass the owner check
}

// seedRoom and seedConnID name the seeded rooms and connections. Connection
// ids are 12-digit numbers, the shape redis-benchmark gives __rand_int__.
func seedRoom(i int) string      { return fmt.Sprintf("seed-r%d", i) }
func seedConnID(i int) string    { return fmt.Sprintf("%012d", i) }
func seedUserID(i int) string    { return fmt.Sprintf("seed-u%d", i) }
func roomTag(p, r string) string { return p + "{" + r + "}:" }

// seedRedis writes o.conns connections, spread over o.rooms rooms, exactly as
// the join script lays them out (connection hash with its TTL, conns and
// members hashes, due zset, seq, room index), pipelined.
func seedRedis(o seedOptions) (time.Duration, error) {
	start := time.Now()
	rc, err := dialRedis(o.addr)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	v, err := rc.do("TIME")
	if err != nil {
		return 0, err
	}
	tv, _ := v.([]any)
	if len(tv) != 2 {
		return 0, errors.New("redis: bad TIME reply")
	}
	secs, _ := strconv.ParseInt(tv[0].(string), 10, 64)
	usecs, _ := strconv.ParseInt(tv[1].(string), 10, 64)
	now := secs*1000 + usecs/1000
	deadline := strconv.FormatInt(now+o.lookback.Milliseconds(), 10)
	ttl := strconv.FormatInt(o.keyTTL.Milliseconds(), 10)
	nows := strconv.FormatInt(now, 10)
	const batch = 2000
	pending := 0
	drain := func() error {
		if err := rc.flush(); err != nil {
			return err
		}
		for ; pending > 0; pending-- {
			r, err := rc.read()
			if err != nil {
				return err
			}
			if e, ok := r.(redisError); ok {
				return e
			}
		}
		return nil
	}
	perRoom := make([]int, o.rooms)
	for i := 0; i < o.conns; i++ {
		ri := i % o.rooms
		room, cid, uid := seedRoom(ri), seedConnID(i), seedUserID(i)
		tag := roomTag(o.prefix, room)
		ck := tag + "c:" + cid
		rc.send("HSET", ck, "uid", uid, "uj", `"`+uid+`"`, "own", o.sid, "ep", "1", "st", "{}", "ls", nows, "dr", "expired")
		rc.send("PEXPIRE", ck, ttl)
		rc.send("HSET", tag+"conns", cid, uid)
		rc.send("HINCRBY", tag+"members", uid, "1")
		rc.send("ZADD", tag+"due", deadline, cid)
		perRoom[ri]++
		pending += 5
		if pending >= batch {
			if err := drain(); err != nil {
				return 0, err
			}
		}
	}
	for ri, n := range perRoom {
		if n == 0 {
			continue
		}
		tag := roomTag(o.prefix, seedRoom(ri))
		rc.send("SET", tag+"seq", strconv.Itoa(n))
		rc.send("ZADD", o.prefix+"rooms", deadline, seedRoom(ri))
		pending += 2
		if pending >= batch {
			if err := drain(); err != nil {
				return 0, err
			}
		}
	}
	if err := drain(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// beatCommand loads the server's heartbeat script into Redis and returns the
// arguments of one EVALSHA refreshing k seeded connections of room 0 at
// random (redis-benchmark replaces each __rand_int__ with a 12-digit number
// below its -r), so that redis-benchmark runs exactly the server's batch.
func beatCommand(addr, luaFile, prefix string, k int, lookback, keyTTL time.Duration, sid string) ([]string, error) {
	src, err := luaScript(luaFile, "heartbeatScript")
	if err != nil {
		return nil, err
	}
	rc, err := dialRedis(addr)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	v, err := rc.do("SCRIPT", "LOAD", src)
	if err != nil {
		return nil, err
	}
	sha, _ := v.(string)
	if sha != sha1Hex(src) {
		return nil, fmt.Errorf("SCRIPT LOAD returned %q", sha)
	}
	room := seedRoom(0)
	tag := roomTag(prefix, room)
	args := []string{"EVALSHA", sha, strconv.Itoa(1 + 2*k), prefix + "rooms"}
	for i := 0; i < k; i++ {
		args = append(args, tag+"c:__rand_int__", tag+"due")
	}
	args = append(args, strconv.FormatInt(lookback.Milliseconds(), 10), strconv.FormatInt(keyTTL.Milliseconds(), 10))
	for i := 0; i < k; i++ {
		args = append(args, room, "__rand_int__", sid, "-1")
	}
	return args, nil
}
