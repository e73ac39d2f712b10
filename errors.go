package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Error is a protocol failure, answered to the client as
// {"ok":false,"error":{"code":Code,"message":Message}}. Code is one of the
// codes of PROTOCOL.md.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, errNotJoined) holds for any not_joined error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// The protocol errors. Handlers wrap them with a specific message through
// invalid and friends, or return them as they are.
var (
	errNotJoined     = &Error{Code: "not_joined", Message: "the socket is not in a presence room; join first"}
	errAlreadyJoined = &Error{Code: "already_joined", Message: "the socket is already in a presence room; leave first"}
	errStaleEpoch    = &Error{Code: "stale_epoch", Message: "epoch is older than the connection's current epoch"}
	errUnavailable   = &Error{Code: "unavailable", Message: "the presence store cannot be reached; try again"}
	errInternal      = &Error{Code: "internal", Message: "internal server error"}
	errRateLimited   = &Error{Code: "rate_limited", Message: "too many requests; slow down"}
	errBusy          = &Error{Code: "rate_limited", Message: "the server is busy; try again shortly"}
)

// invalid returns an invalid_payload error with the given message.
func invalid(msg string) *Error { return &Error{Code: "invalid_payload", Message: msg} }

// tooLarge returns a payload_too_large error with the given message.
func tooLarge(msg string) *Error { return &Error{Code: "payload_too_large", Message: msg} }

// forbidden returns a forbidden error with the given message.
func forbidden(msg string) *Error { return &Error{Code: "forbidden", Message: msg} }

// protocolError maps any error to the *Error answered on the wire: protocol
// errors pass through, an overloaded node sheds with rate_limited, Redis and
// network trouble becomes unavailable (the one place where those decisions
// are made), and everything else is internal. The caller logs internal ones
// with err as the cause.
func protocolError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	var oe *overloadError
	if errors.As(err, &oe) {
		return errBusy
	}
	if isUnavailable(err) {
		return errUnavailable
	}
	return errInternal
}

// overloadError is a Redis operation that ran out of time on a node that is
// behind (waiting for a pooled connection, a dial or a reply on a starved
// machine) while Redis itself answers: it is shed as rate_limited, not
// reported as an outage.
type overloadError struct{ err error }

func (e *overloadError) Error() string { return "overloaded: " + e.err.Error() }
func (e *overloadError) Unwrap() error { return e.err }

// redisFailure classifies the failure of a Redis operation. A timeout (of
// the caller's deadline, the pool wait, a dial or a read) while Redis
// answered other calls within redisAliveWindow means the node is overloaded;
// the same timeout with no recent answer means Redis is unreachable. Other
// errors are returned as they are.
func redisFailure(err error, sinceAnswer time.Duration) error {
	if err == nil || !isTimeout(err) || sinceAnswer > redisAliveWindow {
		return err
	}
	return &overloadError{err}
}

// redisAliveWindow is how recent an answer from Redis must be for a timeout
// to count as overload rather than as an unreachable Redis: a Redis that
// hangs is reported unavailable once it has been silent that long. It is well
// under the default OpTimeout (3 s).
const redisAliveWindow = time.Second

// isTimeout reports whether err is a deadline running out, as opposed to
// the server refusing or closing the connection.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, redis.ErrPoolExhausted) || errors.As(err, &ne) && ne.Timeout()
}

// isUnavailable reports whether err means Redis could not be reached or did
// not answer in time, as opposed to a bug (a script error, a bad reply).
func isUnavailable(err error) bool {
	var ne net.Error
	switch {
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, redis.ErrPoolExhausted), errors.Is(err, net.ErrClosed):
		return true
	}
	var re redis.Error
	if errors.As(err, &re) {
		// Replies that mean the server is not serving yet or any more; on
		// a cluster, the ones still there after the retries and
		// redirections of cluster.do (a failover or a migration under way).
		msg := string(re)
		if scriptKeyMoved(msg) {
			return true
		}
		for _, p := range []string{"LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "MOVED", "ASK"} {
			if strings.HasPrefix(msg, p+" ") || msg == p {
				return true
			}
		}
		return false
	}
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "use of closed") ||
		strings.Contains(s, "redigo: get on closed pool") || strings.Contains(s, "broken pipe") ||
		strings.Contains(s, "connection reset")
}
