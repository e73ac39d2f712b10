package main

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// waiter is a module whose "wait" handler blocks until its context ends
// and reports why it ended.
type waiter struct {
	entered chan struct{}
	ended   chan error
}

func (w *waiter) Name() string { return "waiter" }

func (w *waiter) Register(mc *ModuleContext) error {
	mc.Handle("wait", func(ctx context.Context, _ *Socket, _ json.RawMessage) (any, error) {
		w.entered <- struct{}{}
		<-ctx.Done()
		w.ended <- ctx.Err()
		return nil, ctx.Err()
	})
	return nil
}

// Handler calls in flight are cancelled when shutdown starts, not at its
// end: a call that waits on its context does not hold the shutdown up
// until its deadline.
func TestShutdownCancelsHandlersAtStart(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.Presence.OpTimeout = time.Minute // the call's own deadline is far away
	opts.ShutdownTimeout = 5 * time.Second
	w := &waiter{entered: make(chan struct{}, 1), ended: make(chan error, 1)}
	n := startNode(t, opts, w)
	c := dial(t, n)
	if err := c.Emit("wait"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler was not called")
	}
	start := time.Now()
	n.stop() // reports an error if the shutdown ran out of time
	if d := time.Since(start); d >= opts.ShutdownTimeout {
		t.Errorf("shutdown took %v; want well within its %v deadline", d, opts.ShutdownTimeout)
	}
	select {
	case err := <-w.ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the handler's context ended with %v; want context.Canceled", err)
		}
	default:
		t.Error("the handler still runs after the shutdown")
	}
}
