package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/hub/hubtest"
	"github.com/ecows/ecows/internal/wstest"
)

func TestPosition(t *testing.T) {
	for _, p := range []hub.Position{{}, {Epoch: "k3x", Offset: 1}, {Epoch: "a:b", Offset: 1 << 60}} {
		q, err := hub.ParsePosition(p.String())
		if err != nil || q != p {
			t.Errorf("%+v: %q parses to %+v, %v", p, p.String(), q, err)
		}
		b, _ := json.Marshal(struct{ P hub.Position }{p})
		var back struct{ P hub.Position }
		if err := json.Unmarshal(b, &back); err != nil || back.P != p {
			t.Errorf("%+v: JSON %s gives %+v, %v", p, b, back.P, err)
		}
	}
	for _, s := range []string{"x", "x:", "x:-1", "x:+1", "x:1a", ":"} {
		if _, err := hub.ParsePosition(s); !errors.Is(err, hub.ErrPosition) {
			t.Errorf("%q: %v", s, err)
		}
	}
}

func TestStampJSON(t *testing.T) {
	stamp := hub.StampJSON("pos")
	p := hub.Position{Epoch: "e1", Offset: 7}
	for _, c := range []struct{ in, want string }{
		{`{"x":1}`, `{"pos":"e1:7","x":1}`},
		{` { "x" : 1 }`, `{"pos":"e1:7","x" : 1 }`},
		{`{}`, `{"pos":"e1:7"}`},
		{`{ }`, `{"pos":"e1:7"}`},
		{`[1]`, `[1]`},
		{`hello`, `hello`},
		{``, ``},
	} {
		if got := string(stamp(p, frame.OpText, []byte(c.in))); got != c.want {
			t.Errorf("%q stamped: %q, want %q", c.in, got, c.want)
		}
	}
	if got := string(stamp(hub.Position{}, frame.OpText, []byte(`{"x":1}`))); got != `{"x":1}` {
		t.Errorf("zero position stamped: %q", got)
	}
}

func historyOpts(h *hub.HistoryOptions) *hub.HistoryOptions {
	if h == nil {
		h = &hub.HistoryOptions{}
	}
	h.Stamp = hub.StampJSON("pos")
	return h
}

// TestHistoryPositions checks Publish's positions, what members receive, and Since.
func TestHistoryPositions(t *testing.T) {
	h := newHub(t, &hub.Options{History: historyOpts(nil)})
	c, s := hubtest.Pipe(t, nil)
	if err := h.Join(s, "r"); err != nil {
		t.Fatal(err)
	}
	col := hubtest.Collect(t, c)
	var pos []hub.Position
	for i := 1; i <= 10; i++ {
		p, err := h.Publish("r", frame.OpText, hubtest.Number("a", i))
		if err != nil || p.Offset != uint64(i) || (i > 1 && p.Epoch != pos[0].Epoch) {
			t.Fatalf("message %d at %+v, %v", i, p, err)
		}
		pos = append(pos, p)
	}
	for i := 1; i <= 10; i++ {
		if m := col.Next(t); m.N != i || m.Pos != pos[i-1] {
			t.Fatalf("got %+v, want n %d at %v", m, i, pos[i-1])
		}
	}
	msgs, err := h.Since(context.Background(), "r", pos[3])
	if err != nil || len(msgs) != 6 {
		t.Fatalf("Since %v: %d messages, %v", pos[3], len(msgs), err)
	}
	for i, m := range msgs {
		if m.Pos != pos[4+i] || string(m.Payload) != string(hubtest.Number("a", 5+i)) {
			t.Fatalf("Since: %d: %+v %s", i, m.Pos, m.Payload)
		}
	}
	if _, err := newHubErr(&hub.Options{}).Since(context.Background(), "r", hub.Position{}); !errors.Is(err, hub.ErrNoHistory) {
		t.Fatalf("Since without history: %v", err)
	}
}

func newHubErr(opts *hub.Options) *hub.Hub {
	h, err := hub.New(opts)
	if err != nil {
		panic(err)
	}
	return h
}

// TestHistoryNotRecoverable checks bounds by count and age, and what a position they no
// longer reach gives.
func TestHistoryNotRecoverable(t *testing.T) {
	ctx := context.Background()
	h := newHub(t, &hub.Options{History: historyOpts(&hub.HistoryOptions{Len: 10})})
	var pos []hub.Position
	for i := 1; i <= 25; i++ {
		p, _ := h.Publish("r", frame.OpText, hubtest.Number("a", i))
		pos = append(pos, p)
	}
	if msgs, err := h.Since(ctx, "r", hub.Position{}); err != nil || len(msgs) != 10 || msgs[0].Pos != pos[15] {
		t.Fatalf("Since the start: %d messages, %v", len(msgs), err)
	}
	var nr *hub.NotRecoverableError
	if _, err := h.Since(ctx, "r", pos[4]); !errors.As(err, &nr) || nr.Oldest != pos[15] || !errors.Is(err, hub.ErrNotRecoverable) {
		t.Fatalf("Since %v: %v", pos[4], err)
	}
	if _, err := h.Since(ctx, "r", hub.Position{Epoch: "other", Offset: 20}); !errors.As(err, &nr) {
		t.Fatalf("Since another epoch: %v", err)
	}
	// A client that resumes from too far back joins all the same and gets the live messages.
	c, s := hubtest.Pipe(t, nil)
	col := hubtest.Collect(t, c)
	if err := h.JoinSince(s, "r", pos[4]); !errors.As(err, &nr) {
		t.Fatalf("JoinSince %v: %v", pos[4], err)
	}
	h.Publish("r", frame.OpText, hubtest.Number("a", 26))
	if m := col.Next(t); m.N != 26 {
		t.Fatalf("got %+v", m)
	}

	aged := newHub(t, &hub.Options{History: historyOpts(&hub.HistoryOptions{Len: -1, Age: 100 * time.Millisecond})})
	for i := 1; i <= 3; i++ {
		aged.Publish("r", frame.OpText, hubtest.Number("a", i))
	}
	time.Sleep(300 * time.Millisecond)
	aged.Publish("r", frame.OpText, hubtest.Number("a", 4))
	if msgs, err := aged.Since(ctx, "r", hub.Position{}); err != nil || len(msgs) != 1 || msgs[0].Pos.Offset != 4 {
		t.Fatalf("Since with Age: %d messages, %v", len(msgs), err)
	}

	if _, err := hub.New(&hub.Options{History: &hub.HistoryOptions{Len: -1, Age: -1}}); !errors.Is(err, hub.ErrHistoryOptions) {
		t.Fatalf("no bound: %v", err)
	}
	if _, err := hub.New(&hub.Options{History: &hub.HistoryOptions{}, Broker: publishOnly{hub.NewBus().Link()}}); !errors.Is(err, hub.ErrNotLog) {
		t.Fatalf("a Broker that is not a Log: %v", err)
	}
}

// publishOnly hides the Log methods of a Broker.
type publishOnly struct{ hub.Broker }

// TestHistoryMemory checks that a room's history holds what its bounds allow and no more:
// 10,000 messages of 1 KiB through a history of 100.
func TestHistoryMemory(t *testing.T) {
	h := newHub(t, &hub.Options{History: &hub.HistoryOptions{Len: 100}})
	msg := make([]byte, 1024)
	h.Publish("r", frame.OpBinary, msg)
	before := wstest.LiveHeap()
	for range 10000 {
		h.Publish("r", frame.OpBinary, msg)
	}
	grown := int64(wstest.LiveHeap()) - int64(before)
	t.Logf("heap grown by %d B for 10,000 messages through a history of 100", grown)
	// 100 messages of 1 KiB and their entries, with room for the race detector's own; the
	// 10,000 would be 10 MiB.
	if grown > 1<<20 {
		t.Fatalf("the history holds %d B more after 10,000 messages of 1 KiB, bound 100", grown)
	}
}

// TestHistoryLog runs hubtest's suite of rooms with history on the Bus and on the Fake,
// which is killed and restarted, and loses its logs.
func TestHistoryLog(t *testing.T) {
	t.Run("bus", func(t *testing.T) { hubtest.RunLog(t, busEngine{hub.NewBus()}) })
	t.Run("fake", func(t *testing.T) { hubtest.RunLog(t, hubtest.NewFake()) })
}

// TestHistoryGap: a history too short to cover what a node missed yields a gap report naming
// the lost positions, and nothing twice.
func TestHistoryGap(t *testing.T) {
	var mu sync.Mutex
	var gaps []hub.Gap
	f := hubtest.NewFake()
	opts := func(id string) *hub.Options {
		return &hub.Options{NodeID: id, Broker: f.Link(t), QueueLen: -1,
			History: historyOpts(&hub.HistoryOptions{Len: 5}),
			OnGap: func(g hub.Gap) {
				mu.Lock()
				gaps = append(gaps, g)
				mu.Unlock()
			}}
	}
	a, b := newHub(t, opts("a")), newHub(t, opts("b"))
	c, s := hubtest.Pipe(t, nil)
	b.Join(s, "r")
	col := hubtest.Collect(t, c)
	p1, _ := a.Publish("r", frame.OpText, hubtest.Number("a", 1))
	if m := col.Next(t); m.Pos != p1 {
		t.Fatalf("got %+v", m)
	}
	f.DropNext(20) // appended, not delivered: b reads them from the log, which keeps 5
	for i := 2; i <= 22; i++ {
		a.Publish("r", frame.OpText, hubtest.Number("a", i))
	}
	for want := 18; want <= 22; want++ {
		if m := col.Next(t); m.N != want {
			t.Fatalf("got %+v, want n %d", m, want)
		}
	}
	col.None(t, 100*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(gaps) != 1 || gaps[0].Epoch != p1.Epoch || gaps[0].First != 2 || gaps[0].Last != 17 || gaps[0].Topic != "r" {
		t.Fatalf("gaps %+v, want positions 2..17 of epoch %s", gaps, p1.Epoch)
	}
}
