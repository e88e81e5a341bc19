package hubtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/transport"
)

// Forgetter is implemented by engines that can be restarted without their logs, as an engine
// that does not persist them would be after a crash.
type Forgetter interface {
	// Forget kills the engine, drops every log it kept, and starts it again; the Brokers must
	// reconnect by themselves.
	Forget(t testing.TB)
}

// RunLog runs the suite of rooms with history (hub.Options.History) against e, whose Brokers
// must be hub.Logs, each check a subtest with two nodes on e: every member gets every message
// of 10,000 from each node (1,000 with -short) exactly once and in each node's order, with
// the engine killed and restarted midway when e is a Restarter; a client away for 2 s resumes
// by position with nothing twice and nothing skipped; the history keeps to its bounds by count
// and by age; a node that missed more than the history keeps reports a gap naming exactly the
// positions it could not read, and delivers nothing twice; and, when e is a Forgetter, a history lost with its engine is reported as a gap
// from the last position delivered and makes resuming from before it not recoverable.
func RunLog(t *testing.T, e Engine) {
	t.Run("ExactlyOnce", func(t *testing.T) { testLogExactlyOnce(t, e) })
	t.Run("Resume", func(t *testing.T) { testLogResume(t, e) })
	t.Run("Bounds", func(t *testing.T) { testLogBounds(t, e) })
	t.Run("TrimmedGap", func(t *testing.T) { testLogTrimmedGap(t, e) })
	if f, ok := e.(Forgetter); ok {
		t.Run("LostHistory", func(t *testing.T) { testLogLost(t, e, f) })
	}
}

// Numbered is what the suite broadcasts, JSON with the position hub.StampJSON adds: the
// sending node and a number that counts its messages.
type Numbered struct {
	Pos  hub.Position `json:"pos"`
	From string       `json:"from"`
	N    int          `json:"n"`
}

// Number returns message n of node from, as JSON for a Numbered.
func Number(from string, n int) []byte {
	return fmt.Appendf(nil, `{"from":%q,"n":%d}`, from, n)
}

// logNode is one Hub with history on e, its Log behind a probe that can lose what the
// engine delivers (not what it appends), as a node that falls behind would.
type logNode struct {
	*hub.Hub
	probe *probe
	mu    sync.Mutex
	gaps  []hub.Gap
}

// logProbe is a probe of a Log.
type logProbe struct {
	*probe
	log hub.Log
}

func (p logProbe) Append(ctx context.Context, e hub.Envelope, lim hub.Limits) (hub.Position, error) {
	return p.log.Append(ctx, e, lim)
}

func (p logProbe) Read(ctx context.Context, topic string, after hub.Position, n int) ([]hub.Envelope, error) {
	return p.log.Read(ctx, topic, after, n)
}

func newLogNode(t testing.TB, e Engine, name string, lim hub.HistoryOptions) *logNode {
	t.Helper()
	b := e.Link(t)
	lg, ok := b.(hub.Log)
	if !ok {
		t.Fatalf("the engine's Broker %T is not a hub.Log", b)
	}
	n := &logNode{probe: &probe{Broker: b}}
	lim.Stamp = hub.StampJSON("pos")
	h, err := hub.New(&hub.Options{
		NodeID: name, Broker: logProbe{n.probe, lg}, QueueLen: -1, BlockTimeout: wait, History: &lim,
		OnGap: func(g hub.Gap) {
			n.mu.Lock()
			n.gaps = append(n.gaps, g)
			n.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	n.Hub = h
	t.Cleanup(func() { h.Close() })
	return n
}

func (n *logNode) gapList() []hub.Gap {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]hub.Gap(nil), n.gaps...)
}

// Collector reads a client's Numbered messages into a channel until its connection ends.
type Collector struct {
	c    *transport.Conn
	msgs chan Numbered
}

// Collect starts reading what c receives; the connection is closed when the test ends.
func Collect(t testing.TB, c *transport.Conn) *Collector {
	col := &Collector{c: c, msgs: make(chan Numbered, 1<<16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(col.msgs)
		var buf []byte
		for {
			_, b, err := c.ReadMessage(context.Background(), buf[:0])
			if err != nil {
				return
			}
			var m Numbered
			if err := json.Unmarshal(b, &m); err != nil {
				t.Errorf("not JSON: %q", b)
			}
			col.msgs <- m
			buf = b
		}
	}()
	t.Cleanup(func() {
		c.CloseNow()
		<-done
	})
	return col
}

// join puts a new pipe connection in room on h (from after, unless zero) and returns what
// its client receives.
func join(t testing.TB, h *hub.Hub, room string, after hub.Position) (*Collector, error) {
	t.Helper()
	client, server := Pipe(t, nil)
	col := Collect(t, client)
	return col, h.JoinSince(server, room, after)
}

// Next returns the next message, failing the test after 30 s without one.
func (col *Collector) Next(t testing.TB) Numbered {
	t.Helper()
	select {
	case m, ok := <-col.msgs:
		if !ok {
			t.Fatal("connection ended")
		}
		return m
	case <-time.After(logWait):
		t.Fatalf("no message in %v", logWait)
	}
	return Numbered{}
}

// logWait bounds the wait for a message: longer than wait, since a real engine that was
// killed may take seconds to take its logs back and its clients to reconnect, more on a busy
// machine under the race detector.
const logWait = 30 * time.Second

// None fails the test if a message arrives within d.
func (col *Collector) None(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-col.msgs:
		if ok {
			t.Fatalf("unexpected %+v", m)
		}
	case <-time.After(d):
	}
}

func testLogExactlyOnce(t *testing.T, e Engine) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	r := room(t)
	lim := hub.HistoryOptions{Len: 4 * n, Outbox: 2 * n}
	a, b := newLogNode(t, e, "a", lim), newLogNode(t, e, "b", lim)
	var cols []*Collector
	for _, h := range []*logNode{a, b} {
		for range 2 {
			col, err := join(t, h.Hub, r, hub.Position{})
			if err != nil {
				t.Fatal(err)
			}
			cols = append(cols, col)
		}
	}
	rs, restart := e.(Restarter)
	var faulted atomic.Bool
	var wg sync.WaitGroup
	for _, h := range []*logNode{a, b} {
		wg.Go(func() {
			for i := 1; i <= n; i++ {
				h.Publish(r, frame.OpText, Number(h.Node(), i)) // ErrLinkDown: in the outbox
				if i == n/2 && h == a && restart && !faulted.Swap(true) {
					rs.Kill(t)
					time.Sleep(100 * time.Millisecond)
					rs.Restart(t)
				}
			}
		})
	}
	for i, col := range cols {
		next := map[string]int{"a": 1, "b": 1}
		for got := 0; got < 2*n; got++ {
			m := col.Next(t)
			if m.N != next[m.From] {
				t.Fatalf("member %d: %s's message %d after %d of them", i, m.From, m.N, next[m.From]-1)
			}
			next[m.From]++
		}
	}
	wg.Wait()
	for _, col := range cols {
		col.None(t, 50*time.Millisecond)
	}
	for _, h := range []*logNode{a, b} {
		if g := h.gapList(); len(g) > 0 {
			t.Fatalf("node %s reported gaps %+v", h.Node(), g)
		}
	}
}

func testLogResume(t *testing.T, e Engine) {
	r := room(t)
	a, b := newLogNode(t, e, "a", hub.HistoryOptions{Len: 1000}), newLogNode(t, e, "b", hub.HistoryOptions{Len: 1000})
	const total = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= total; i++ {
			a.Publish(r, frame.OpText, Number("a", i))
			time.Sleep(10 * time.Millisecond)
		}
	}()
	first, err := join(t, b.Hub, r, hub.Position{})
	if err != nil {
		t.Fatal(err)
	}
	var last Numbered
	for range 20 {
		m := first.Next(t)
		if last.N != 0 && (m.N != last.N+1 || m.Pos.Offset != last.Pos.Offset+1) {
			t.Fatalf("n %d at %v after n %d at %v", m.N, m.Pos, last.N, last.Pos)
		}
		last = m
	}
	first.c.CloseNow() // the client goes away for 2 s, while a goes on
	time.Sleep(2 * time.Second)
	back, err := join(t, b.Hub, r, last.Pos)
	if err != nil {
		t.Fatal(err)
	}
	for want := last.N + 1; want <= total; want++ {
		if m := back.Next(t); m.N != want || m.Pos.Offset != last.Pos.Offset+uint64(want-last.N) {
			t.Fatalf("resumed from %v: n %d at %v, want n %d", last.Pos, m.N, m.Pos, want)
		}
	}
	<-done
	back.None(t, 100*time.Millisecond)
}

func testLogBounds(t *testing.T, e Engine) {
	ctx := context.Background()
	r := room(t)
	a := newLogNode(t, e, "a", hub.HistoryOptions{Len: 10})
	var pos []hub.Position
	for i := 1; i <= 25; i++ {
		p, err := a.Publish(r, frame.OpText, Number("a", i))
		if err != nil || p.Offset != uint64(i) {
			t.Fatalf("message %d at %v, %v", i, p, err)
		}
		pos = append(pos, p)
	}
	msgs, err := a.Since(ctx, r, hub.Position{})
	if err != nil || len(msgs) != 10 || msgs[0].Pos != pos[15] || msgs[9].Pos != pos[24] {
		t.Fatalf("the history of 10 holds %d messages, %v", len(msgs), err)
	}
	var nr *hub.NotRecoverableError
	if _, err := a.Since(ctx, r, pos[4]); !errors.As(err, &nr) || nr.Oldest != pos[15] {
		t.Fatalf("Since %v, trimmed: %v", pos[4], err)
	}
	if msgs, err := a.Since(ctx, r, pos[19]); err != nil || len(msgs) != 5 || msgs[0].Pos != pos[20] {
		t.Fatalf("Since %v: %d messages, %v", pos[19], len(msgs), err)
	}

	r = room(t)
	aged := newLogNode(t, e, "b", hub.HistoryOptions{Len: -1, Age: time.Second})
	for i := 1; i <= 3; i++ {
		aged.Publish(r, frame.OpText, Number("b", i))
	}
	time.Sleep(2 * time.Second)
	last, _ := aged.Publish(r, frame.OpText, Number("b", 4))
	if msgs, err := aged.Since(ctx, r, hub.Position{}); err != nil || len(msgs) != 1 || msgs[0].Pos != last {
		t.Fatalf("the history of 1 s holds %d messages 2 s later, %v", len(msgs), err)
	}
}

// A node that misses the deliveries of 20 messages of a room whose history keeps 5 reads the last of them
// from the log and reports the 15 others, exactly, as a gap.
func testLogTrimmedGap(t *testing.T, e Engine) {
	r := room(t)
	lim := hub.HistoryOptions{Len: 5}
	a, b := newLogNode(t, e, "a", lim), newLogNode(t, e, "b", lim)
	col, err := join(t, b.Hub, r, hub.Position{})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := a.Publish(r, frame.OpText, Number("a", 1))
	if m := col.Next(t); m.Pos != first {
		t.Fatalf("got %+v, want n 1 at %v", m, first)
	}
	b.probe.drop.Store(1 << 30) // 2..21 appended, not delivered to b
	for i := 2; i <= 21; i++ {
		a.Publish(r, frame.OpText, Number("a", i))
	}
	// An engine may skip some of them for a node that fell behind (the Bus does): the last
	// is enough.
	eventuallyLog(t, "b to lose the deliveries of 2..21", func() bool { return b.probe.lastOffset.Load() == 21 })
	b.probe.drop.Store(0)
	a.Publish(r, frame.OpText, Number("a", 22)) // b finds 2..21 missing, the log keeps 18..22
	for want := 18; want <= 22; want++ {
		if m := col.Next(t); m.N != want || m.Pos.Epoch != first.Epoch || m.Pos.Offset != uint64(want) {
			t.Fatalf("got %+v, want n %d", m, want)
		}
	}
	col.None(t, 100*time.Millisecond)
	gaps := b.gapList()
	if len(gaps) != 1 || gaps[0].Epoch != first.Epoch || gaps[0].First != 2 || gaps[0].Last != 17 || gaps[0].Topic != r {
		t.Fatalf("gaps %+v, want one naming positions 2..17 of %s", gaps, first.Epoch)
	}
}

// eventuallyLog waits, up to logWait, for cond.
func eventuallyLog(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(logWait); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", logWait, what)
		}
	}
}

func testLogLost(t *testing.T, e Engine, f Forgetter) {
	r := room(t)
	a, b := newLogNode(t, e, "a", hub.HistoryOptions{}), newLogNode(t, e, "b", hub.HistoryOptions{})
	col, err := join(t, b.Hub, r, hub.Position{})
	if err != nil {
		t.Fatal(err)
	}
	var last hub.Position
	for i := 1; i <= 5; i++ {
		last, _ = a.Publish(r, frame.OpText, Number("a", i))
	}
	for i := 1; i <= 5; i++ {
		col.Next(t)
	}
	f.Forget(t)
	a.Publish(r, frame.OpText, Number("a", 6)) // appended now or, from the outbox, once a's link is back
	if m := col.Next(t); m.N != 6 || m.Pos.Epoch == last.Epoch || m.Pos.Offset != 1 {
		t.Fatalf("after the history was lost, got %+v, want n 6 at offset 1 of a new epoch", m)
	}
	var nr *hub.NotRecoverableError
	if _, err := join(t, b.Hub, r, last); !errors.As(err, &nr) {
		t.Fatalf("resuming from %v of the lost history: %v", last, err)
	}
	gaps := b.gapList()
	if len(gaps) != 1 || gaps[0].Epoch != last.Epoch || gaps[0].First != last.Offset+1 || !errors.Is(gaps[0].Err, hub.ErrNotRecoverable) {
		t.Fatalf("gaps %+v, want one from %v on", gaps, last)
	}
}
