package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

var redisServerPath = flag.String("redis-server", "redis-server", "redis-server binary used by the tests")

// sharedRedisURL is the Redis every test uses unless it needs one of its own
// (to restart it). TestMain sets it: REDIS_URL from the environment, or a
// redis-server it starts.
var sharedRedisURL string

func TestMain(m *testing.M) {
	if os.Getenv("RTM_TEST_AS_COMMAND") == "1" { // config_test.go runs the command itself
		os.Args = append([]string{"rtm"}, strings.Fields(os.Getenv("RTM_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	flag.Parse()
	os.Exit(func() int {
		defer stopSharedCluster() // started lazily by the tests that need it
		if url := os.Getenv("REDIS_URL"); url != "" {
			sharedRedisURL = url
			return m.Run()
		}
		rs, err := startRedisServer("")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// The server stops however the tests end: normally (the deferred
		// stop), on SIGINT/SIGTERM (stopOnSignal), and on a panic or a
		// SIGKILL of this process (dieWithParent, set on every child).
		defer rs.stop()
		defer stopOnSignal(rs)()
		sharedRedisURL = rs.url()
		// Child test processes (fuzz workers) use this one instead of
		// starting their own, which would outlive a worker that crashes.
		os.Setenv("REDIS_URL", sharedRedisURL)
		return m.Run()
	}())
}

// stopOnSignal stops rs and exits when the test process gets SIGINT or
// SIGTERM. The returned function stops listening.
func stopOnSignal(rs *redisServer) (cancel func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			rs.stop()
			fmt.Fprintf(os.Stderr, "tests stopped by %v\n", sig)
			os.Exit(1)
		case <-done:
		}
	}()
	return func() { signal.Stop(sigs); close(done) }
}

// redisServer is a redis-server process on a free loopback port, in a temp
// dir, with persistence off. kill then start gives a new one on the same
// port with every key gone, as after a crash of a Redis without persistence.
type redisServer struct {
	dir   string
	port  int
	extra []string    // more redis-server arguments
	tls   *tls.Config // set when the port speaks TLS

	mu     sync.Mutex // guards cmd and exited
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

// errRedisExited is the error of a redis-server that exited before it
// answered: most often its port (or its cluster bus port) was taken between
// the free-port probe and its bind, and a new port will do.
var errRedisExited = errors.New("redis-server exited at start")

// startRedisServer starts redis-server in dir (a new temp dir when "") with
// extra arguments.
func startRedisServer(dir string, extra ...string) (*redisServer, error) {
	if _, err := exec.LookPath(*redisServerPath); err != nil {
		return nil, fmt.Errorf("tests need a real Redis: %s not found (run `make test`, which installs redis-server, "+
			"or `apt-get install redis-server`, or set REDIS_URL)", *redisServerPath)
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "rtm-redis-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	rs := &redisServer{dir: dir, extra: extra}
	return rs, rs.startOnFreePort(freePort)
}

// startOnFreePort starts rs on a port from free, and on another one if the
// server exits at start (the port was taken meanwhile).
func (rs *redisServer) startOnFreePort(free func() (int, error)) error {
	var err error
	for range 5 {
		if rs.port, err = free(); err != nil {
			return err
		}
		if err = rs.start(); !errors.Is(err, errRedisExited) {
			return err
		}
		_ = os.Remove(filepath.Join(rs.dir, "nodes.conf")) // a cluster node's, written for the old port

	}
	return err
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (rs *redisServer) url() string { return "redis://127.0.0.1:" + strconv.Itoa(rs.port) }

func (rs *redisServer) start() error {
	portFlag := "--port"
	if rs.tls != nil {
		portFlag = "--tls-port"
	}
	args := append([]string{portFlag, strconv.Itoa(rs.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", rs.dir, "--logfile", filepath.Join(rs.dir, "redis.log")}, rs.extra...)
	cmd := exec.Command(*redisServerPath, args...)
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }() // kill waits for it
	rs.mu.Lock()
	rs.cmd, rs.exited = cmd, exited
	rs.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			rs.kill()
			logTail, _ := os.ReadFile(filepath.Join(rs.dir, "redis.log"))
			if len(logTail) > 500 {
				logTail = logTail[len(logTail)-500:]
			}
			return fmt.Errorf("%w (port %d): %s", errRedisExited, rs.port, logTail)
		default:
		}
		c, err := redis.Dial("tcp", "127.0.0.1:"+strconv.Itoa(rs.port), redis.DialConnectTimeout(time.Second),
			redis.DialReadTimeout(time.Second), redis.DialUseTLS(rs.tls != nil), redis.DialTLSConfig(rs.tls))
		if err == nil {
			_, err = c.Do("PING")
			if err != nil && strings.HasPrefix(err.Error(), "NOAUTH") {
				err = nil // up, and wants a password
			}
			c.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			rs.kill()
			return fmt.Errorf("redis-server on port %d not ready after 10 s: %v", rs.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (rs *redisServer) kill() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.cmd != nil {
		_ = rs.cmd.Process.Kill()
		<-rs.exited
		rs.cmd = nil
	}
}

func (rs *redisServer) stop() {
	rs.kill()
	_ = os.RemoveAll(rs.dir)
}

// ownRedis starts a redis-server for one test.
func ownRedis(t *testing.T) *redisServer {
	t.Helper()
	rs, err := startRedisServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.kill)
	return rs
}

// redisDo runs one command on url, failing the test on error.
func redisDo(t *testing.T, url, cmd string, args ...any) any {
	t.Helper()
	c, err := redisDialer(url, nil)(context.Background()) // routed on a cluster
	if err != nil {
		t.Fatalf("dial redis: %v", err)
	}
	defer c.Close()
	r, err := c.Do(cmd, args...)
	if err != nil && !errors.Is(err, redis.ErrNil) {
		t.Fatalf("redis %s: %v", cmd, err)
	}
	return r
}

// keysWithPrefix lists the Redis keys under prefix (on a cluster, on every
// master).
func keysWithPrefix(t *testing.T, url, prefix string) []string {
	t.Helper()
	c, err := redisDialer(url, nil)(context.Background())
	if err != nil {
		t.Fatalf("dial redis: %v", err)
	}
	defer c.Close()
	if _, err := c.Do("PING"); err != nil {
		t.Fatal(err)
	}
	addrs := []string{""}
	cc, isCluster := c.(*clusterConn)
	if isCluster {
		addrs = cc.cl.masters()
	}
	var keys []string
	for _, addr := range addrs {
		var r any
		if isCluster {
			r, err = cc.cl.doAt(context.Background(), addr, false, "KEYS", []any{prefix + "*"})
		} else {
			r, err = c.Do("KEYS", prefix+"*")
		}
		more, err := redis.Strings(r, err)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, more...)
	}
	return keys
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	waitForEvery(t, timeout, 10*time.Millisecond, what, cond)
}

// waitForEvery is waitFor trying cond every interval.
func waitForEvery(t testing.TB, timeout, every time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-time.After(every):
		}
	}
}

// logWriter sends log lines to t.Log until the test ends.
type logWriter struct {
	t testing.TB

	mu   sync.Mutex // guards done
	done bool
}

func newLogWriter(t testing.TB) *logWriter {
	w := &logWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return w
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		sc := bufio.NewScanner(bytes.NewReader(p))
		for sc.Scan() {
			w.t.Log(sc.Text())
		}
	}
	return len(p), nil
}
