package hub_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/hub/hubtest"
)

// flakyLog is a link to a Bus that fails as the link to a real engine does while its
// connection drops: an Append that reaches the engine but loses its answer, Appends refused
// before the hub hears of the loss, Reads that fail, deliveries lost or held until the link
// is back.
type flakyLog struct {
	hub.Log
	mu       sync.Mutex
	r        hub.Receiver
	doubt    int  // the next doubt Appends append, then fail
	fail     int  // the next fail Appends fail, appending nothing, but not with ErrLinkDown
	down     bool // Append fails with ErrLinkDown, appending nothing
	hold     bool // deliveries wait in held until up
	held     []hub.Envelope
	drop     int // the next drop deliveries are lost
	readErrs int // the next readErrs Reads fail
}

var errLost = errors.New("connection lost while waiting for the answer")

func (f *flakyLog) Open(r hub.Receiver) error {
	f.r = r
	return f.Log.Open(flakyReceiver{f})
}

func (f *flakyLog) Append(ctx context.Context, e hub.Envelope, lim hub.Limits) (hub.Position, error) {
	f.mu.Lock()
	down, doubt, fail := f.down, f.doubt > 0, f.fail > 0
	if doubt {
		f.doubt--
	}
	if fail {
		f.fail--
	}
	f.mu.Unlock()
	switch {
	case down:
		return hub.Position{}, hub.ErrLinkDown
	case fail:
		return hub.Position{}, errLost
	}
	pos, err := f.Log.Append(ctx, e, lim)
	if err == nil && doubt {
		return hub.Position{}, errLost
	}
	return pos, err
}

func (f *flakyLog) Read(ctx context.Context, topic string, after hub.Position, n int) ([]hub.Envelope, error) {
	f.mu.Lock()
	fail := f.readErrs > 0
	if fail {
		f.readErrs--
	}
	f.mu.Unlock()
	if fail {
		return nil, errLost
	}
	return f.Log.Read(ctx, topic, after, n)
}

func (f *flakyLog) set(change func(f *flakyLog)) {
	f.mu.Lock()
	change(f)
	f.mu.Unlock()
}

// linkDown reports the lost link to the hub.
func (f *flakyLog) linkDown() { f.r.LinkDown(errLost) }

// up ends the outage: Appends work again, what was held is delivered, and the hub hears
// that the link is back.
func (f *flakyLog) up() {
	f.mu.Lock()
	f.down, f.hold = false, false
	held := f.held
	f.held = nil
	f.mu.Unlock()
	for _, e := range held {
		f.r.Receive(e)
	}
	f.r.LinkUp()
}

type flakyReceiver struct{ f *flakyLog }

func (r flakyReceiver) Receive(e hub.Envelope) {
	f := r.f
	f.mu.Lock()
	switch {
	case f.drop > 0:
		f.drop--
		f.mu.Unlock()
		return
	case f.hold:
		e.Payload = slices.Clone(e.Payload)
		f.held = append(f.held, e)
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	f.r.Receive(e)
}

func (r flakyReceiver) LinkDown(err error) { r.f.r.LinkDown(err) }
func (r flakyReceiver) LinkUp()            { r.f.r.LinkUp() }

// flakyNodes returns two hubs with history on one Bus, each through a flakyLog, and a member
// of room "r" on each; the test fails if either reports a gap.
func flakyNodes(t *testing.T) (a, b *hub.Hub, la, lb *flakyLog, ca, cb *hubtest.Collector) {
	bus := hub.NewBus()
	node := func(id string) (*hub.Hub, *flakyLog, *hubtest.Collector) {
		l := &flakyLog{Log: bus.Link().(hub.Log)}
		h := newHub(t, &hub.Options{
			NodeID: id, Broker: l, QueueLen: -1, History: historyOpts(nil),
			OnGap: func(g hub.Gap) { t.Errorf("node %s: gap %+v", id, g) },
		})
		c, s := hubtest.Pipe(t, nil)
		col := hubtest.Collect(t, c)
		if err := h.Join(s, "r"); err != nil {
			t.Fatal(err)
		}
		return h, l, col
	}
	a, la, ca = node("a")
	b, lb, cb = node("b")
	return
}

// expect fails the test unless col gets exactly messages first..last of node a, in order.
func expect(t *testing.T, col *hubtest.Collector, who string, first, last int) {
	t.Helper()
	for want := first; want <= last; want++ {
		if m := col.Next(t); m.From != "a" || m.N != want {
			t.Fatalf("%s got %+v, want a's message %d", who, m, want)
		}
	}
}

// An Append whose answer is lost may have added the message: the node's later messages wait
// behind it, even when the next Appends are refused before the hub hears that the link is
// down, and each member gets it once, in order.
func TestHistoryAppendInDoubt(t *testing.T) {
	a, _, la, _, ca, cb := flakyNodes(t)
	publish := func(n int) error {
		_, err := a.Publish("r", frame.OpText, hubtest.Number("a", n))
		return err
	}
	for n := 1; n <= 2; n++ {
		if err := publish(n); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, ca, "a's member", 1, 2)
	expect(t, cb, "b's member", 1, 2)

	la.set(func(f *flakyLog) { f.doubt, f.hold = 1, true }) // 3 reaches the log; its answer and delivery to a do not
	if err := publish(3); err == nil || errors.Is(err, hub.ErrLinkDown) {
		t.Fatalf("an Append in doubt: %v", err)
	}
	expect(t, cb, "b's member", 3, 3)
	la.set(func(f *flakyLog) { f.down = true }) // refused before the hub hears of it
	if err := publish(4); !errors.Is(err, hub.ErrLinkDown) {
		t.Fatalf("link down: %v", err)
	}
	la.linkDown()
	if err := publish(5); !errors.Is(err, hub.ErrLinkDown) {
		t.Fatalf("link down: %v", err)
	}
	ca.None(t, 50*time.Millisecond) // 4 and 5 wait behind 3, which may be in the log
	la.up()
	expect(t, ca, "a's member", 3, 5)
	expect(t, cb, "b's member", 4, 5)
	if err := publish(6); err != nil {
		t.Fatal(err)
	}
	expect(t, ca, "a's member", 6, 6)
	expect(t, cb, "b's member", 6, 6)
	ca.None(t, 50*time.Millisecond)
	cb.None(t, 50*time.Millisecond)
}

// A message whose Append failed in doubt is appended again by the hub itself, though nothing
// else is published, and every member gets it once.
func TestHistoryOutboxRetry(t *testing.T) {
	for _, c := range []struct {
		name        string
		doubt, fail int
	}{{"lost", 0, 3}, {"appended", 1, 0}} {
		t.Run(c.name, func(t *testing.T) {
			a, _, la, _, ca, cb := flakyNodes(t)
			la.set(func(f *flakyLog) { f.doubt, f.fail = c.doubt, c.fail })
			if _, err := a.Publish("r", frame.OpText, hubtest.Number("a", 1)); err == nil || errors.Is(err, hub.ErrLinkDown) {
				t.Fatalf("an Append in doubt: %v", err)
			}
			expect(t, ca, "a's member", 1, 1)
			expect(t, cb, "b's member", 1, 1)
			ca.None(t, 300*time.Millisecond) // the copy appended again, dropped
			cb.None(t, 50*time.Millisecond)
		})
	}
}

// A node that missed deliveries and cannot read the log for a while delivers what it missed
// once it can, in order, rather than reporting what the log still holds as a gap.
func TestHistoryReadFails(t *testing.T) {
	a, _, _, lb, ca, cb := flakyNodes(t)
	publish := func(n int) {
		if _, err := a.Publish("r", frame.OpText, hubtest.Number("a", n)); err != nil {
			t.Fatal(err)
		}
	}
	publish(1)
	expect(t, cb, "b's member", 1, 1)
	lb.set(func(f *flakyLog) { f.drop, f.readErrs = 3, 4 })
	for n := 2; n <= 6; n++ {
		publish(n)
	}
	expect(t, ca, "a's member", 1, 6)
	expect(t, cb, "b's member", 2, 6)
	cb.None(t, 50*time.Millisecond)
}

// A hub whose log cannot be read closes all the same, its retries with it.
func TestHistoryReadFailsClose(t *testing.T) {
	a, b, _, lb, _, cb := flakyNodes(t)
	if _, err := a.Publish("r", frame.OpText, hubtest.Number("a", 1)); err != nil {
		t.Fatal(err)
	}
	expect(t, cb, "b's member", 1, 1)
	lb.set(func(f *flakyLog) { f.drop, f.readErrs = 1, 1<<30 })
	a.Publish("r", frame.OpText, hubtest.Number("a", 2))
	a.Publish("r", frame.OpText, hubtest.Number("a", 3))
	cb.None(t, 200*time.Millisecond)
	done := make(chan struct{})
	go func() {
		b.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for the retries")
	}
}
