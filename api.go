package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Handler returns the node's HTTP handler: Socket.IO at /socket.io/, and the
// health, metrics and presence endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", s.eng)
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.Handle("GET /metrics", s.metricsGuard(s.metrics.handler()))
	mux.HandleFunc("GET /v1/rooms/{roomId}/presence", s.serveRoomPresence)
	for _, kind := range []string{"rooms", "users", "sockets"} {
		target := "/v1/" + kind + "/{id}/"
		mux.Handle("POST "+target+"emit", s.apiGuard(s.serveEmit(kind)))
		mux.Handle("POST "+target+"disconnect", s.apiGuard(s.serveDisconnect(kind)))
	}
	s.mu.Lock()
	for pattern, h := range s.extra {
		mux.Handle(pattern, h)
	}
	s.mu.Unlock()
	return mux
}

// HandleExtra adds a route to the node's HTTP handler (pprof, say). Call it
// before Run.
func (s *Server) HandleExtra(pattern string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.extra == nil {
		s.extra = make(map[string]http.Handler)
	}
	s.extra[pattern] = h
}

// serveHealth answers 200 when this node can reach Redis (on a cluster:
// and the cluster says its state is ok), else 503.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	err := func() error {
		c, err := s.pool.GetContext(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		if s.target.cluster() == nil {
			_, err = redis.DoContext(c, ctx, "PING")
			return err
		}
		info, err := redis.String(redis.DoContext(c, ctx, "CLUSTER", "INFO"))
		if err == nil && !strings.Contains(info, "cluster_state:ok") {
			err = errors.New("cluster state is not ok")
		}
		return err
	}()
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"unavailable"}`))
		return
	}
	_, _ = w.Write([]byte(`{"status":"ok"}`))
}

// serveRoomPresence answers GET /v1/rooms/{roomId}/presence with the room's
// snapshot, the same object as in the join ack.
func (s *Server) serveRoomPresence(w http.ResponseWriter, r *http.Request) {
	if !s.apiAuthorized(r.Header.Get("Authorization")) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="presence"`)
		writeJSONError(w, http.StatusUnauthorized, "unauthorized")
		return
	}
	room := r.PathValue("roomId")
	if !validID(room) {
		writeJSONError(w, http.StatusBadRequest, "invalid roomId")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.Presence.OpTimeout)
	defer cancel()
	snap, err := s.presence.Snapshot(ctx, room)
	if err != nil {
		pe := protocolError(err)
		status := http.StatusInternalServerError
		if pe == errUnavailable {
			status = http.StatusServiceUnavailable
		} else {
			s.log.Error("presence API failed", "room", room, "err", err)
		}
		writeJSONError(w, status, pe.Message)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(snap)
}

// apiGuard answers 401 to a request without the API token (apiAuthorized)
// and lets the others through to h.
func (s *Server) apiGuard(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.apiAuthorized(r.Header.Get("Authorization")) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
			writeJSONError(w, http.StatusUnauthorized, "unauthorized")
			return
		}
		h(w, r)
	})
}

// apiAuthorized checks the API token: "Bearer <API_TOKEN>". With no API
// token the API is open, unless JWT auth is on, when it is closed to everyone.
func (s *Server) apiAuthorized(header string) bool {
	if s.opts.APIToken == "" {
		return len(s.opts.JWTSecret) == 0
	}
	return bearerMatches(header, s.opts.APIToken)
}

// metricsGuard lets a request through to h when it carries "Bearer
// <METRICS_TOKEN>", or when no metrics token is set (metrics are then open,
// as Prometheus expects by default; put the port behind a firewall).
func (s *Server) metricsGuard(h http.Handler) http.Handler {
	if s.opts.MetricsToken == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !bearerMatches(r.Header.Get("Authorization"), s.opts.MetricsToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			writeJSONError(w, http.StatusUnauthorized, "unauthorized")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// bearerMatches reports whether header is "Bearer <token>", the scheme in any
// case, the token compared in constant time. An empty token matches nothing.
func bearerMatches(header, token string) bool {
	scheme, got, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) == 1
}

// writeJSONError answers an HTTP error as JSON: {"code":status,"message":msg}.
func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(canonicalJSON(map[string]any{"code": status, "message": msg}))
}
