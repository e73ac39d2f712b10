package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// REDIS_URL may carry a password and a database number.
func TestRedisURLPasswordAndDB(t *testing.T) {
	t.Parallel()
	rs, err := startRedisServer(t.TempDir(), "--requirepass", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.kill)
	addr := "127.0.0.1:" + strconv.Itoa(rs.port)
	opts := testOptions(t)
	opts.RedisURL = "redis://:s3cret@" + addr + "/3"
	n := startNode(t, opts)
	join(t, dial(t, n), "r", "alice", nil)
	keys, err := redis.Strings(redisDo(t, "redis://:s3cret@"+addr+"/3", "KEYS", "*"), nil)
	if err != nil || len(keys) == 0 {
		t.Fatalf("database 3 holds %v, %v; want the presence keys", keys, err)
	}
	if keys, _ := redis.Strings(redisDo(t, "redis://:s3cret@"+addr+"/0", "KEYS", "*"), nil); len(keys) != 0 {
		t.Fatalf("database 0 holds %v; want nothing", keys)
	}

	wrong := testOptions(t)
	wrong.RedisURL = "redis://:nope@" + addr + "/3"
	if code := httpStatus(t, startNode(t, wrong).url+"/healthz"); code != http.StatusServiceUnavailable {
		t.Fatalf("healthz with a wrong password: got %d; want 503", code)
	}
}

// rediss:// speaks TLS, trusting the CA given.
func TestRedisTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caPool := writeTestCerts(t, dir)
	rs := &redisServer{dir: dir, tls: &tls.Config{RootCAs: caPool}, extra: []string{"--port", "0",
		"--tls-cert-file", filepath.Join(dir, "server.pem"), "--tls-key-file", filepath.Join(dir, "server.key"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.pem"), "--tls-auth-clients", "no"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if err := rs.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.kill)
	opts := testOptions(t)
	opts.RedisURL = "rediss://127.0.0.1:" + strconv.Itoa(rs.port)
	opts.RedisTLS = &tls.Config{RootCAs: caPool, MinVersion: tls.VersionTLS12}
	n := startNode(t, opts)
	a, b := dial(t, n), dial(t, n)
	join(t, a, "r", "alice", nil)
	join(t, b, "r", "bob", nil)
	if e := nextPresence(t, a); e.UserID != "alice" {
		t.Fatalf("got %+v", e)
	}
	if e := nextPresence(t, a); e.UserID != "bob" { // events flow through the TLS subscription
		t.Fatalf("got %+v", e)
	}
	untrusted := testOptions(t)
	untrusted.RedisURL = opts.RedisURL
	if code := httpStatus(t, startNode(t, untrusted).url+"/healthz"); code != http.StatusServiceUnavailable {
		t.Fatalf("healthz without the CA: got %d; want 503", code)
	}
}

// writeTestCerts writes ca.pem, server.pem and server.key (for 127.0.0.1)
// into dir and returns a pool holding the CA.
func writeTestCerts(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", "CERTIFICATE", caDER)
	write("server.pem", "CERTIFICATE", leafDER)
	write("server.key", "EC PRIVATE KEY", keyDER)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool
}
