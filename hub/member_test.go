package hub

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

// An idle member holds nothing large: once its writer has sent everything, its queue has let
// go of an array grown by a burst, and no message it was sent is kept alive, by the queue
// or by the writer waiting for more. The burst overflows the queue, under SlowBlock, and is read
// all the same.
func TestIdleMemberHoldsNothing(t *testing.T) {
	for _, tc := range []struct {
		name      string
		n         int // messages sent at once
		queueLen  int
		payloadKB int
	}{
		{"OneMessage", 1, 16, 1},
		{"BurstWithinQueue", 200, 256, 1},
		{"BurstPastQueue", 200, 16, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			baseline := runtime.NumGoroutine()
			h, err := New(&Options{QueueLen: tc.queueLen, BlockTimeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			a, b := net.Pipe()
			client := transport.NewConn(a, transport.Client, transport.Setup{}, &transport.Options{CloseTimeout: 100 * time.Millisecond})
			server := transport.NewConn(b, transport.Server, transport.Setup{}, &transport.Options{CloseTimeout: 100 * time.Millisecond})
			m, err := h.lookup(server)
			if err != nil {
				t.Fatal(err)
			}
			var freed atomic.Int64
			payload := bytes.Repeat([]byte("x"), tc.payloadKB<<10)
			for range tc.n {
				p, err := transport.NewPrepared(frame.OpBinary, payload)
				if err != nil {
					t.Fatal(err)
				}
				runtime.SetFinalizer(p, func(*transport.Prepared) { freed.Add(1) })
				if h.push(m, p) {
					t.Fatal("a member that reads was to be evicted")
				}
			}
			for i := range tc.n {
				if _, msg, err := client.ReadMessage(context.Background(), nil); err != nil || len(msg) != len(payload) {
					t.Fatalf("message %d: %d bytes, %v", i, len(msg), err)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for h.Stats().Written != uint64(tc.n) || freed.Load() != int64(tc.n) {
				if time.Now().After(deadline) {
					t.Fatalf("idle member: %d of %d messages written, %d of them still alive", h.Stats().Written, tc.n, int64(tc.n)-freed.Load())
				}
				runtime.GC()
				time.Sleep(time.Millisecond)
			}
			m.mu.Lock()
			queued, capacity, armed := len(m.queue)-m.head, cap(m.queue), m.armed
			m.mu.Unlock()
			if queued != 0 || capacity > keepQueue || armed {
				t.Errorf("idle member: %d queued, queue array of %d (keeps at most %d), Block timer pending: %v", queued, capacity, keepQueue, armed)
			}
			if st := h.Stats(); st.Evicted != 0 || st.Dropped != 0 {
				t.Errorf("%+v", st)
			}
			client.CloseNow()
			server.CloseNow()
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
			if n, ok := wstest.WaitGoroutines(baseline, 10*time.Second); !ok {
				t.Fatalf("%d goroutines after Close, %d before", n, baseline)
			}
		})
	}
}
