package hub

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// A zero option means the default and a negative one none, unlimited or off, as in
// transport.Options.
func TestOptionsZeroAndNegative(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		got  func(h *Hub) time.Duration
		want time.Duration
	}{
		{"QueueLen 0: default", Options{}, func(h *Hub) time.Duration { return time.Duration(h.queueLen) }, defaultQueueLen},
		{"QueueLen -1: unlimited", Options{QueueLen: -1}, func(h *Hub) time.Duration { return time.Duration(h.queueLen) }, -1},
		{"QueueLen 3", Options{QueueLen: 3}, func(h *Hub) time.Duration { return time.Duration(h.queueLen) }, 3},
		{"BlockTimeout 0: default", Options{}, func(h *Hub) time.Duration { return h.blockTimeout }, defaultBlockTimeout},
		{"BlockTimeout -1: none", Options{BlockTimeout: -1}, func(h *Hub) time.Duration { return h.blockTimeout }, -1},
		{"UnsubscribeDelay 0: default", Options{}, func(h *Hub) time.Duration { return h.unsubDelay }, defaultUnsubscribeDelay},
		{"UnsubscribeDelay -1: none", Options{UnsubscribeDelay: -1}, func(h *Hub) time.Duration { return h.unsubDelay }, 0},
		{"BrokerTimeout 0: default", Options{}, func(h *Hub) time.Duration { return h.brokerTimeout }, defaultBrokerTimeout},
		{"BrokerTimeout -1: none", Options{BrokerTimeout: -1}, func(h *Hub) time.Duration { return h.brokerTimeout }, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := New(&tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			if got := tc.got(h); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// stuckMember returns a connection whose peer never reads, joined to room: its writer blocks
// on the first message and the rest wait in its queue.
func stuckMember(t *testing.T, h *Hub, room string) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() }) // before h.Close: unblocks the writer
	c := transport.NewConn(b, transport.Server, transport.Setup{}, &transport.Options{WriteTimeout: time.Minute})
	if err := h.Join(c, room); err != nil {
		t.Fatal(err)
	}
}

// The negative options at work: with no queue limit nothing is dropped, with no block timeout
// no one is evicted, and with no broker timeout the broker gets no deadline.
func TestNegativeOptionsAtWork(t *testing.T) {
	t.Run("QueueLen -1 under SlowDrop", func(t *testing.T) {
		h := newTestHub(t, &Options{QueueLen: -1, OnSlow: SlowDrop})
		stuckMember(t, h, "r")
		for range 3 * defaultQueueLen {
			h.Broadcast("r", frame.OpText, []byte("x"))
		}
		if st := h.Stats(); st.Dropped != 0 || st.Evicted != 0 {
			t.Fatalf("dropped %d, evicted %d", st.Dropped, st.Evicted)
		}
	})
	t.Run("BlockTimeout -1 under SlowBlock", func(t *testing.T) {
		h := newTestHub(t, &Options{QueueLen: 2, BlockTimeout: -1})
		stuckMember(t, h, "r")
		for range 10 {
			h.Broadcast("r", frame.OpText, []byte("x"))
		}
		time.Sleep(defaultBlockTimeout + defaultBlockTimeout/2) // past the default's eviction
		if st := h.Stats(); st.Evicted != 0 || h.Count("r") != 1 {
			t.Fatalf("evicted %d, %d members", st.Evicted, h.Count("r"))
		}
	})
	t.Run("BrokerTimeout -1", func(t *testing.T) {
		b := &deadlineBroker{Broker: NewBus().Link()}
		h := newTestHub(t, &Options{Broker: b, BrokerTimeout: -1})
		stuckMember(t, h, "r")
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.calls != 1 || b.withDeadline != 0 {
			t.Fatalf("%d Subscribe calls, %d with a deadline", b.calls, b.withDeadline)
		}
	})
}

func newTestHub(t *testing.T, opts *Options) *Hub {
	t.Helper()
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// deadlineBroker counts the Subscribe calls it gets and those with a deadline.
type deadlineBroker struct {
	Broker
	mu                  sync.Mutex
	calls, withDeadline int
}

func (b *deadlineBroker) Subscribe(ctx context.Context, topic string) error {
	b.mu.Lock()
	b.calls++
	if _, ok := ctx.Deadline(); ok {
		b.withDeadline++
	}
	b.mu.Unlock()
	return b.Broker.Subscribe(ctx, topic)
}
