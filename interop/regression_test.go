package interop

// Regression tests for ecows bugs the interop tests found: a ReadMessage deadline that no one
// errors.Is check recognised, a data race in the message writer's Close, and a closed message
// writer that came back to life with the next message.

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// TestRegressionReadMessageTimeoutErrorDependsOnTiming: a ReadMessage whose ctx deadline passes is
// reported as os.ErrDeadlineExceeded, as context.DeadlineExceeded, or as both, depending on
// which fires first, so no single errors.Is check recognises the timeout:
//
//   - ctx already expired when the call starts: bindContext returns ctx.Err() alone, which
//     does not match os.ErrDeadlineExceeded (the documented timeout error of RecvFrame, and of
//     ReadMessage when the ctx expires during the call).
//   - ctx expiring during the call: the read deadline (ctx's deadline) can fire before ctx's
//     own timer has marked it done, so contextError sees ctx.Err() == nil and returns the bare
//     net error, which does not match context.DeadlineExceeded. handshake's stepError handles
//     the same race by also comparing time.Now() with ctx.Deadline().
//
// The interop echo test met both under load: a resume loop that retried on one of the two
// errors stopped on the other.
func TestRegressionReadMessageTimeoutErrorDependsOnTiming(t *testing.T) {
	es := startEcowsServer(t, nil)
	c := dial(t, es.url+"/close-by-peer", largeDial()) // the server sends nothing

	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, _, err := c.ReadMessage(expired, nil)
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ctx expired before the call: %v; matches os.ErrDeadlineExceeded: %v, context.DeadlineExceeded: %v",
			err, errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded))
	}

	for i := range 500 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		_, _, err := c.ReadMessage(ctx, nil)
		cancel()
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call %d, ctx expiring during the call: %v (%T); matches os.ErrDeadlineExceeded: %v, context.DeadlineExceeded: %v",
				i, err, err, errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded))
		}
	}
	c.Close(1000, "")
	es.await(t, "/close-by-peer")
}

// TestRegressionNextWriterCloseRace: messageWriter.Close unlocks msgMu and then reads w.op and
// w.utf8 (for the final UTF-8 check). Every NextWriter hands out the same *messageWriter
// (&c.mw), so a NextWriter in another goroutine, which may start as soon as msgMu is free,
// resets those fields under Close: a data race (run with -race), and Close may then check the
// wrong message (skip the check, or miss a truncated character). Concurrent message writers
// are part of the Conn's contract.
func TestRegressionNextWriterCloseRace(t *testing.T) {
	es := startEcowsServer(t, nil)
	c := dial(t, es.url+"/echo", largeDial())
	const writers, each = 4, 50
	errs := make(chan error, writers)
	for range writers {
		go func() {
			for range each {
				w, err := c.NextWriter(context.Background(), frame.OpText)
				if err == nil {
					_, err = w.Write([]byte("ok ✓"))
				}
				if err == nil {
					err = w.Close()
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for range writers * each {
		if _, _, err := read(c); err != nil {
			t.Fatal(err)
		}
	}
	c.Close(1000, "")
	es.await(t, "/echo")
}

// TestRegressionStaleMessageWriterClosesAnotherMessage: since NextWriter always returns &c.mw, a
// writer that has been closed comes back to life as soon as any goroutine starts the next
// message. The common `defer w.Close()` after an explicit Close then ends somebody else's
// message half-written (it goes out as a complete message) and releases msgMu under its
// owner, whose next Write fails with ErrClosed. A closed writer should stay closed.
func TestRegressionStaleMessageWriterClosesAnotherMessage(t *testing.T) {
	es := startEcowsServer(t, nil)
	c := dial(t, es.url+"/echo", largeDial())
	first, err := c.NextWriter(context.Background(), frame.OpText)
	if err != nil {
		t.Fatal(err)
	}
	first.Write([]byte("first"))
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second, err := c.NextWriter(context.Background(), frame.OpText) // another goroutine's message, say
	if err != nil {
		t.Fatal(err)
	}
	second.Write([]byte("hello "))
	if err := first.Close(); err != transport.ErrClosed { // the deferred Close of the first writer
		t.Errorf("Close of a writer already closed = %v, want ErrClosed", err)
	}
	if _, err := second.Write([]byte("world")); err != nil {
		t.Errorf("second writer's Write after the stale Close: %v", err)
	}
	second.Close()
	for _, want := range []string{"first", "hello world"} {
		_, got, err := read(c)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("peer got %q, want %q", got, want)
		}
	}
	c.Close(1000, "")
	es.await(t, "/echo")
}
