//go:build unix

package main

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"rtm/client"
)

// A Redis Cluster failover to a replica that had not received the room's
// last events loses them from the history (and from the room), and the room
// may number new events at their positions: a member that saw the lost
// ones and comes back is told recovered false, with the snapshot of what
// the new master holds, and nothing is replayed.
func TestRecoverAfterFailoverLostHistory(t *testing.T) {
	t.Parallel()
	rc := ownCluster(t)
	opts := testOptions(t)
	opts.RedisURL = rc.url(0)
	opts.Presence.TTL = 30 * time.Second             // longer than the outage: nobody expires
	opts.Presence.DisconnectGrace = 30 * time.Second // ana's connection waits for her resume
	n1, n2 := startNode(t, opts), startNode(t, opts)
	const room = "failover-history"
	a, b := dial(t, n1), dial(t, n2)
	ackA := join(t, a, room, "ana", nil)
	if ackA.History == nil {
		t.Fatal("no history epoch in the join's acknowledgement")
	}
	join(t, b, room, "bo", nil)
	wantEvent(t, nextPresence(t, a), "join", 1, "ana", ackA.Self.ConnID)
	if e := nextPresence(t, a); e.Type != "join" || e.Seq != 2 || e.UserID != "bo" {
		t.Fatalf("got %+v; want bo's join, seq 2", e)
	}

	_, cl := clusterPool(t, rc.url(0))
	victim := rc.node(cl.master(keySlot(testRoomTag(opts.Presence.Prefix, room))))
	replica := rc.replicaOf(t, victim)
	rc.replicated(t, victim, testRoomTag(opts.Presence.Prefix, room)+"mark") // both joins are on the replica
	// The replica stops taking the master's writes: paused, and its link
	// cut by the master (what was written to the link would still reach it
	// once it runs again), so bo's messages reach ana and the master's
	// history, never the replica.
	rc.nodes[replica].signal(t, syscall.SIGSTOP)
	if n, err := redis.Int(rc.do(victim, "CLIENT", "KILL", "TYPE", "replica")); err != nil || n != 1 {
		rc.nodes[replica].signal(t, syscall.SIGCONT)
		t.Fatalf("CLIENT KILL TYPE replica: %d, %v; want 1", n, err)
	}
	for _, text := range []string{"one", "two", "three"} {
		if _, _, err := b.Chat(tctx(t), text); err != nil {
			rc.nodes[replica].signal(t, syscall.SIGCONT)
			t.Fatal(err)
		}
	}
	var last client.ChatMessage
	for last.Text != "three" {
		m, err := client.ParseChatMessage(nextEvent(t, a, 5*time.Second))
		if err == nil {
			last = *m
		}
	}
	if last.Seq != 2 || last.Sub != 3 {
		rc.nodes[replica].signal(t, syscall.SIGCONT)
		t.Fatalf("ana's last message is at %d.%d; want 2.3", last.Seq, last.Sub)
	}
	rc.nodes[victim].kill()
	rc.nodes[replica].signal(t, syscall.SIGCONT)
	if _, err := rc.do(replica, "CLUSTER", "FAILOVER", "TAKEOVER"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*clusterNodeTimeout, "the replica's promotion, both nodes serving the room", func() bool {
		role, _ := redis.Values(rc.do(replica, "ROLE"))
		if len(role) == 0 {
			return false
		}
		if kind, _ := redis.String(role[0], nil); kind != "master" {
			return false
		}
		_, err := b.Heartbeat(tctx(t), client.HeartbeatRequest{})
		return err == nil && n1.srv.subscribed() && n2.srv.subscribed()
	})

	// Ana drops; meanwhile the room goes on past her position on the new
	// master, numbering other messages 2.1 to 2.4. She comes back from where
	// she stopped: a position this history never had, though it has one of
	// that number now.
	_ = a.Drop()
	for _, text := range []string{"new-1", "new-2", "new-3", "new-4"} {
		if _, _, err := b.Chat(tctx(t), text); err != nil {
			t.Fatal(err)
		}
	}
	a2 := dial(t, n1)
	res, err := a2.Join(tctx(t), client.JoinRequest{RoomID: room, UserID: "ana",
		Resume: &client.Self{ConnID: ackA.Self.ConnID, Epoch: ackA.Self.Epoch},
		Since:  &client.Since{Seq: last.Seq, Sub: last.Sub, Epoch: ackA.History.Epoch}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Recovered == nil || *res.Recovered || res.Replayed != 0 {
		t.Fatalf("recovered %v, replayed %d; want false and 0", res.Recovered, res.Replayed)
	}
	// The snapshot is the new master's room: both joins, nothing after them.
	var conns []string
	for _, c := range res.Snapshot.Connections {
		conns = append(conns, c.UserID)
	}
	slices.Sort(conns)
	if res.Self.ConnID != ackA.Self.ConnID || res.Snapshot.Seq != 2 || !slices.Equal(conns, []string{"ana", "bo"}) {
		t.Fatalf("resumed %s, snapshot seq %d with %v; want %s, seq 2, [ana bo]",
			res.Self.ConnID, res.Snapshot.Seq, conns, ackA.Self.ConnID)
	}
	// Nothing of the lost messages comes after the acknowledgement; the next
	// message is a live one.
	if _, _, err := b.Chat(tctx(t), "after"); err != nil {
		t.Fatal(err)
	}
	for {
		e := nextEvent(t, a2, 5*time.Second)
		if e.Name != "chat:message" {
			continue
		}
		m, err := client.ParseChatMessage(e)
		if err != nil || m.Text != "after" {
			t.Fatalf("got %+v, %v; want the live message, nothing replayed", m, err)
		}
		break
	}
}

// signal sends sig to the server's process (SIGSTOP and SIGCONT pause and
// resume it).
func (rs *redisServer) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.cmd == nil {
		t.Fatal("signal: the server is not running")
	}
	if err := rs.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}
