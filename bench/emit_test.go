package main

import (
	"context"
	"errors"
	"math"
	"testing"

	"rtm/client"
)

func TestChooseVia(t *testing.T) {
	ackErr := &client.AckError{Code: "invalid_payload", Message: "unknown event"}
	for _, tc := range []struct {
		flag     string
		probeErr error
		want     string
		fails    bool
	}{
		{flag: "topic", probeErr: ackErr, want: "topic"},
		{flag: "chat", want: "chat"},
		{flag: "auto", want: "topic"},
		{flag: "auto", probeErr: ackErr, want: "chat"},
		{flag: "auto", probeErr: context.DeadlineExceeded, fails: true},
		{flag: "http", fails: true},
	} {
		got, err := chooseVia(tc.flag, tc.probeErr)
		if (err != nil) != tc.fails || got != tc.want {
			t.Errorf("chooseVia(%q, %v) = %q, %v; want %q, fails %v", tc.flag, tc.probeErr, got, err, tc.want, tc.fails)
		}
	}
}

func TestDeliveryTS(t *testing.T) {
	for _, tc := range []struct {
		data string
		want int64
		ok   bool
	}{
		{`["bench:emit",{"n":7,"ts":1764950000123}]`, 1764950000123, true},
		{`["chat:message",{"id":"x","roomId":"r","userId":"u","connId":"c","text":"\"ts\":1","ts":42}]`, 42, true},
		{`["bench:emit",null]`, 0, false},
	} {
		got, ok := deliveryTS([]byte(tc.data))
		if got != tc.want || ok != tc.ok {
			t.Errorf("deliveryTS(%s) = %d, %v; want %d, %v", tc.data, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCPUMicrosPerDelivery(t *testing.T) {
	if got := cpuMicrosPerDelivery(19, 10_000_000); math.Abs(got-1.9) > 1e-9 {
		t.Errorf("19 s over 10M deliveries = %v us, want 1.9", got)
	}
	if got := cpuMicrosPerDelivery(1, 0); got != 0 {
		t.Errorf("nothing delivered: %v, want 0", got)
	}
}

func TestEmitFlags(t *testing.T) {
	c, err := parseFlags([]string{"-scenario", "emit", "-target", "http://127.0.0.1:3001,http://127.0.0.1:3002", "-msg-rate", "200"})
	if err != nil || c.emitVia != "auto" || c.msgRate != 200 || len(c.targets) != 2 {
		t.Fatalf("parseFlags: %+v, %v", c, err)
	}
	for _, args := range [][]string{
		{"-scenario", "emit"}, // no -msg-rate
		{"-scenario", "emit", "-msg-rate", "10", "-emit-via", "http"},
		{"-scenario", "emit", "-msg-rate", "10", "-members", "0"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%v): no error", args)
		}
	}
	if _, err := chooseVia("auto", errors.New("dial")); err == nil {
		t.Error("auto with an unanswered probe: no error")
	}
}

func TestEmitCheck(t *testing.T) {
	rep := &EmitReport{Members: 10, MembersJoined: 10, Sends: map[string]int64{"ok": 5}}
	if p := rep.check(); len(p) != 0 {
		t.Errorf("clean run: %v", p)
	}
	rep.MissingDeliveries, rep.Sends["rate_limited"] = 3, 2
	if p := rep.check(); len(p) != 2 {
		t.Errorf("missing and rate_limited: %v", p)
	}
}
