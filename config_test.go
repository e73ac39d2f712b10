package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestConfigDefaults(t *testing.T) {
	c, err := loadConfig(nil, env(), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	p := c.Server.Presence
	if c.Port != 3000 || c.RedisURL != "" || p.TTL != 30*time.Second || p.ReaperInterval != 3*time.Second ||
		p.ReaperLookback != 60*time.Second || p.DisconnectGrace != 5*time.Second || p.Prefix != "prs:" {
		t.Fatalf("got %+v", c)
	}
}

func TestConfigPrecedence(t *testing.T) {
	c, err := loadConfig([]string{"-port", "4000", "-presence-ttl-ms", "10000"},
		env("PORT", "5000", "PRESENCE_TTL_MS", "20000", "REDIS_URL", "redis://x:1/2", "PRESENCE_DISCONNECT_GRACE_MS", "0",
			"ALLOWED_ORIGINS", "https://a.example, https://b.example", "RATE_CHAT", "3:7", "JWT_SECRET", "s"),
		&bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	p := c.Server.Presence
	switch {
	case c.Port != 4000: // flag over env
		t.Errorf("port %d; want 4000", c.Port)
	case p.TTL != 10*time.Second || p.ReaperLookback != 20*time.Second: // lookback follows the TTL in force
		t.Errorf("ttl %v lookback %v", p.TTL, p.ReaperLookback)
	case c.RedisURL != "redis://x:1/2": // env over default
		t.Errorf("redis %q", c.RedisURL)
	case p.DisconnectGrace >= 0: // 0 means at once
		t.Errorf("grace %v", p.DisconnectGrace)
	case len(c.Server.AllowedOrigins) != 2 || c.Server.AllowedOrigins[1] != "https://b.example":
		t.Errorf("origins %q", c.Server.AllowedOrigins)
	case c.Server.Rates.Chat != (Rate{PerSecond: 3, Burst: 7}):
		t.Errorf("chat rate %+v", c.Server.Rates.Chat)
	case string(c.Server.JWTSecret) != "s":
		t.Errorf("secret %q", c.Server.JWTSecret)
	}
}

func TestConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  []string
		want string
	}{
		"port not a number": {nil, []string{"PORT", "abc"}, "PORT (-port)"},
		"port out of range": {[]string{"-port", "70000"}, nil, "PORT (-port)"},
		"ttl too small":     {nil, []string{"PRESENCE_TTL_MS", "5"}, "PRESENCE_TTL_MS"},
		"negative interval": {nil, []string{"PRESENCE_REAPER_INTERVAL_MS", "-1"}, "PRESENCE_REAPER_INTERVAL_MS"},
		"lookback below ttl": {nil, []string{"PRESENCE_TTL_MS", "30000", "PRESENCE_REAPER_LOOKBACK_MS", "1000"},
			"PRESENCE_REAPER_LOOKBACK_MS"},
		"bad log level":  {nil, []string{"LOG_LEVEL", "loud"}, "LOG_LEVEL"},
		"bad rate":       {[]string{"-rate-chat", "x:y"}, nil, "RATE_CHAT"},
		"unknown flag":   {[]string{"-nope"}, nil, "nope"},
		"stray argument": {[]string{"extra"}, nil, "extra"},
	} {
		_, err := loadConfig(tc.args, env(tc.env...), &bytes.Buffer{})
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v; want a usage error naming %s", name, err, tc.want)
		}
	}
}

func TestConfigHelpListsEnv(t *testing.T) {
	var out bytes.Buffer
	_, err := loadConfig([]string{"-h"}, env(), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v", err)
	}
	for _, name := range []string{"PORT", "REDIS_URL", "PRESENCE_TTL_MS", "PRESENCE_REAPER_INTERVAL_MS",
		"PRESENCE_REAPER_LOOKBACK_MS", "PRESENCE_DISCONNECT_GRACE_MS", "LOG_LEVEL", "JWT_SECRET", "API_TOKEN",
		"ALLOWED_ORIGINS", "MAX_MESSAGE_BYTES", "MAX_SOCKETS_PER_IP"} {
		if !strings.Contains(out.String(), "env "+name+")") {
			t.Errorf("help does not list %s", name)
		}
	}
}

// The command exits with status 2 and names the setting on a bad value.
func TestCommandExitStatusOnBadSetting(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "RTM_TEST_AS_COMMAND=1", "RTM_TEST_ARGS=-presence-ttl-ms nope")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "PRESENCE_TTL_MS") {
		t.Fatalf("got %v, %q; want exit status 2 naming PRESENCE_TTL_MS", err, out)
	}
}
