package wstest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingTB is a testing.TB whose cleanups run when end is called and whose errors are
// recorded, so that a test can see what a helper does to the test using it.
type recordingTB struct {
	testing.TB
	cleanups []func()
	errs     []string
}

func (r *recordingTB) Helper()          {}
func (r *recordingTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recordingTB) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// end runs the cleanups as testing does, last registered first.
func (r *recordingTB) end() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// leakedGoroutine blocks until stop is closed; its name shows in the stacks of a failure.
func leakedGoroutine(stop <-chan struct{}) { <-stop }

func TestCheckGoroutines(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(tb *recordingTB, stop chan struct{}) // the test body, given stop to end its goroutine
		leak bool
	}{
		{"none started", func(*recordingTB, chan struct{}) {}, false},
		{"ended in a later cleanup", func(tb *recordingTB, stop chan struct{}) {
			go leakedGoroutine(stop)
			tb.Cleanup(func() { close(stop) })
		}, false},
		{"still running", func(tb *recordingTB, stop chan struct{}) {
			// Ten, to outnumber the goroutines of earlier tests that may end meanwhile.
			for range 10 {
				go leakedGoroutine(stop)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			CheckGoroutines(t) // the real check: the leaked goroutine ends before the next case
			tb := &recordingTB{TB: t}
			stop := make(chan struct{})
			checkGoroutines(tb, 100*time.Millisecond)
			tc.run(tb, stop)
			tb.end()
			if !tc.leak {
				if len(tb.errs) != 0 {
					t.Fatalf("errors without a leak: %q", tb.errs)
				}
				return
			}
			close(stop)
			if len(tb.errs) != 1 || !strings.Contains(tb.errs[0], "wstest.leakedGoroutine") {
				t.Fatalf("errors %q, want one naming the leaked goroutine", tb.errs)
			}
		})
	}
}

func TestWaitGoroutines(t *testing.T) {
	CheckGoroutines(t)
	// The count never falls to zero (this goroutine runs): the wait ends at its bound.
	if n, ok := WaitGoroutines(0, 50*time.Millisecond); ok || n < 1 {
		t.Fatalf("waiting for no goroutine at all: %d, %v", n, ok)
	}
	before := runtime.NumGoroutine()
	stop := make(chan struct{})
	go leakedGoroutine(stop)
	time.AfterFunc(50*time.Millisecond, func() { close(stop) })
	if n, ok := WaitGoroutines(before, wait); !ok || n > before {
		t.Fatalf("after the extra goroutine ended: %d, %v", n, ok)
	}
}

// LiveHeap counts what is reachable and nothing that only a sync.Pool holds (which one
// collection alone would still count).
func TestLiveHeap(t *testing.T) {
	const size = 8 << 20
	before := int64(LiveHeap())
	held := new([]byte)
	*held = make([]byte, size)
	if got := int64(LiveHeap()) - before; got < size-(1<<20) || got > size+(1<<20) {
		t.Errorf("holding %d bytes, the live heap grew by %d", size, got)
	}
	var pool sync.Pool
	pool.Put(held)
	held = nil
	if got := int64(LiveHeap()) - before; got > 1<<20 {
		t.Errorf("with %d bytes only in a pool, the live heap grew by %d", size, got)
	}
}

// The sampler sees what is live when it starts, and its goroutine ends at Stop or, without
// one, with the test.
func TestSampleHeap(t *testing.T) {
	const size = 8 << 20
	for _, stop := range []bool{true, false} {
		t.Run(fmt.Sprint("stop ", stop), func(t *testing.T) {
			CheckGoroutines(t)
			tb := &recordingTB{TB: t}
			held := make([]byte, size)
			s := SampleHeap(tb, time.Millisecond)
			if stop {
				peak := s.Stop()
				if peak < size {
					t.Errorf("peak %d with %d bytes held", peak, size)
				}
				if again := s.Stop(); again != peak {
					t.Errorf("Stop again: peak %d, then %d", peak, again)
				}
			}
			runtime.KeepAlive(held)
			tb.end()
		})
	}
}

// The example of RFC 6455 section 1.3.
func TestAcceptKey(t *testing.T) {
	if got := AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("got %q", got)
	}
}

func TestTCPPair(t *testing.T) {
	CheckGoroutines(t)
	tb := &recordingTB{TB: t}
	client, server := TCPPair(tb)
	if client.RemoteAddr().String() != server.LocalAddr().String() || !strings.HasPrefix(client.LocalAddr().String(), "127.0.0.1:") {
		t.Fatalf("client %v -> %v, server %v <- %v", client.LocalAddr(), client.RemoteAddr(), server.LocalAddr(), server.RemoteAddr())
	}
	for _, c := range [][2]net.Conn{{client, server}, {server, client}} {
		c[1].SetReadDeadline(time.Now().Add(wait))
		if _, err := c[0].Write([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		var b [2]byte
		if _, err := io.ReadFull(c[1], b[:]); err != nil || string(b[:]) != "hi" {
			t.Fatalf("read %q, %v", b, err)
		}
	}
	tb.end()
	for _, c := range []net.Conn{client, server} {
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write after the test ended: %v", err)
		}
	}
}

// Writers and a reader at once: the race detector fails this test if Buffer is not safe for it.
func TestBufferConcurrent(t *testing.T) {
	CheckGoroutines(t)
	var b Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Write([]byte("line\n"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := strings.Count(b.String(), "line\n"); n != 400 {
		t.Fatalf("%d lines, want 400", n)
	}
	b.Reset()
	b.Write([]byte("next"))
	if got := b.String(); got != "next" {
		t.Fatalf("after Reset: %q", got)
	}
}
