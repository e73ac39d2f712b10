package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// clusterNodeTimeout is the cluster-node-timeout of the test clusters: a
// master silent this long is failed over, so a failover takes about twice
// that (detection, then the replica's election).
const clusterNodeTimeout = time.Second

// redisCluster is a real Redis Cluster of 3 masters and 3 replicas, each a
// redis-server on a free loopback port in its own dir under one temp dir.
type redisCluster struct {
	dir   string
	nodes []*redisServer
}

// sharedCluster is the cluster of the tests that leave it usable; the first
// test that needs it starts it, TestMain stops it.
var sharedCluster struct {
	once sync.Once
	c    *redisCluster
	err  error
}

// testCluster returns the shared cluster, starting it at the first call.
func testCluster(t *testing.T) *redisCluster {
	t.Helper()
	sharedCluster.once.Do(func() { sharedCluster.c, sharedCluster.err = startRedisCluster() })
	if sharedCluster.err != nil {
		t.Fatal(sharedCluster.err)
	}
	return sharedCluster.c
}

// stopSharedCluster stops the shared cluster if a test started it.
func stopSharedCluster() {
	if sharedCluster.c != nil {
		sharedCluster.c.stop()
	}
}

// ownCluster starts a cluster for one test (one that kills nodes).
func ownCluster(t *testing.T) *redisCluster {
	t.Helper()
	rc, err := startRedisCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.stop)
	return rc
}

// startRedisCluster starts 6 cluster-enabled redis-servers, joins them
// with redis-cli --cluster create (one replica per master) and waits until
// every node reports cluster_state:ok and every replica is in sync. On any
// failure it stops what it started.
func startRedisCluster() (_ *redisCluster, err error) {
	if _, err := exec.LookPath(*redisServerPath); err != nil {
		return nil, fmt.Errorf("cluster tests need %s (apt-get install redis-server): %w", *redisServerPath, err)
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return nil, fmt.Errorf("cluster tests need redis-cli (apt-get install redis-tools): %w", err)
	}
	dir, err := os.MkdirTemp("", "rtm-cluster-")
	if err != nil {
		return nil, err
	}
	rc := &redisCluster{dir: dir}
	defer func() {
		if err != nil {
			rc.stop()
		}
	}()
	args := []string{"redis-cli", "--cluster", "create"}
	for i := range 6 {
		nd := filepath.Join(dir, "n"+strconv.Itoa(i))
		if err := os.Mkdir(nd, 0o755); err != nil {
			return nil, err
		}
		rs := &redisServer{dir: nd, extra: []string{"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(int(clusterNodeTimeout.Milliseconds())),
			"--cluster-replica-validity-factor", "0",
			// a replica syncs at once, not after the default 5 s wait for more replicas
			"--repl-diskless-sync-delay", "0"}}
		if err := rs.startOnFreePort(freeClusterPort); err != nil {
			return nil, err
		}
		rc.nodes = append(rc.nodes, rs)
		args = append(args, rc.addr(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	return rc, rc.waitReady(ctx)
}

// freeClusterPort returns a free loopback port whose cluster bus port (the
// port + 10000) is free too.
func freeClusterPort() (int, error) {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if port+10000 > 65535 {
			ln.Close()
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		ln.Close()
		if err == nil {
			bus.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port pair for a cluster node")
}

// waitReady waits until every live node says cluster_state:ok and knows 3
// masters, each with a connected replica.
func (rc *redisCluster) waitReady(ctx context.Context) error {
	for {
		err := rc.ready()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis cluster not ready: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (rc *redisCluster) ready() error {
	for i, rs := range rc.nodes {
		if !rs.alive() {
			continue
		}
		info, err := redis.String(rc.do(i, "CLUSTER", "INFO"))
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("node %d: cluster_state not ok", i)
		}
		role, err := redis.Values(rc.do(i, "ROLE"))
		if err != nil {
			return err
		}
		if kind, _ := redis.String(role[0], nil); kind == "slave" {
			if st, _ := redis.String(role[3], nil); st != "connected" {
				return fmt.Errorf("node %d: replica %s", i, st)
			}
		}
	}
	return nil
}

func (rc *redisCluster) addr(i int) string { return "127.0.0.1:" + strconv.Itoa(rc.nodes[i].port) }

// url is a REDIS_URL naming node i only: the rest is discovered.
func (rc *redisCluster) url(i int) string { return "redis://" + rc.addr(i) }

// do runs one command on node i on a connection of its own.
func (rc *redisCluster) do(i int, cmd string, args ...any) (any, error) {
	c, err := redis.Dial("tcp", rc.addr(i), redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(5*time.Second))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Do(cmd, args...)
}

// replicated returns once node i's replica has everything node i had
// written: WAIT counts the writes of its own connection only, so a write to
// key (in a slot of node i) comes first, on the same connection, and is
// acknowledged after every earlier write of the node.
func (rc *redisCluster) replicated(t *testing.T, i int, key string) {
	t.Helper()
	c, err := redis.Dial("tcp", rc.addr(i), redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do("SET", key, "1"); err != nil {
		t.Fatal(err)
	}
	if n, err := redis.Int(c.Do("WAIT", 1, 5000)); err != nil || n < 1 {
		t.Fatalf("WAIT 1: %d replicas acknowledged, %v", n, err)
	}
}

// masters returns the indexes of the live nodes whose role is master.
func (rc *redisCluster) masters() []int {
	var out []int
	for i, rs := range rc.nodes {
		if !rs.alive() {
			continue
		}
		if role, err := redis.Values(rc.do(i, "ROLE")); err == nil {
			if kind, _ := redis.String(role[0], nil); kind == "master" {
				out = append(out, i)
			}
		}
	}
	return out
}

// replicaOf returns the index of the replica of master node m.
func (rc *redisCluster) replicaOf(t *testing.T, m int) int {
	t.Helper()
	for i := range rc.nodes {
		if role, _ := redis.Values(rc.do(i, "ROLE")); len(role) > 2 && i != m {
			kind, _ := redis.String(role[0], nil)
			if port, _ := redis.Int(role[2], nil); kind == "slave" && port == rc.nodes[m].port {
				return i
			}
		}
	}
	t.Fatalf("no replica of node %d", m)
	return -1
}

// node returns the index of the node at addr, or -1.
func (rc *redisCluster) node(addr string) int {
	for i := range rc.nodes {
		if rc.addr(i) == addr {
			return i
		}
	}
	return -1
}

func (rc *redisCluster) stop() {
	for _, rs := range rc.nodes {
		rs.kill()
	}
	_ = os.RemoveAll(rc.dir)
}

// alive reports whether the server process runs (not killed).
func (rs *redisServer) alive() bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.cmd != nil
}

// testRoomTag returns the start of room's keys under prefix (key layout 2).
func testRoomTag(prefix, room string) string {
	return (&Presence{opts: PresenceOptions{Prefix: prefix}}).roomTag(room)
}

// backends runs f against the single Redis (subtest "redis") and against
// the shared cluster (subtest "cluster"), with testOptions pointed at each,
// all three in parallel with the other parallel tests: each case has its
// own key prefix, and the shared cluster's six servers are idle but for
// the tests' own calls.
func backends(t *testing.T, f func(t *testing.T, opts ServerOptions)) {
	t.Parallel()
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		f(t, testOptions(t))
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		opts := testOptions(t)
		opts.RedisURL = testCluster(t).url(0)
		f(t, opts)
	})
}
