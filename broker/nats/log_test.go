package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/hub"
)

// wait bounds every blocking step of these tests.
const wait = 10 * time.Second

// recorder is a Receiver that keeps what it is given.
type recorder struct {
	mu    sync.Mutex
	got   []hub.Envelope
	ups   chan struct{}
	downs chan error
}

func newRecorder() *recorder {
	return &recorder{ups: make(chan struct{}, 16), downs: make(chan error, 16)}
}

func (r *recorder) Receive(e hub.Envelope) {
	e.Payload = slices.Clone(e.Payload)
	r.mu.Lock()
	r.got = append(r.got, e)
	r.mu.Unlock()
}

func (r *recorder) LinkDown(err error) { r.downs <- err }
func (r *recorder) LinkUp()            { r.ups <- struct{}{} }

func (r *recorder) received() []hub.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// link returns a Broker with history on e, opened with r when r is not nil, and closed
// when the test ends.
func link(t *testing.T, e *engine, r hub.Receiver) *Broker {
	t.Helper()
	b, err := Connect(e.srv.ClientURL(), &Options{History: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if r != nil {
		if err := b.Open(r); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func ctxWait(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(wait); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", wait, what)
		}
	}
}

func envelope(topic, origin string, seq uint64) hub.Envelope {
	return hub.Envelope{
		Topic: topic, Origin: origin, Epoch: 7, Seq: seq, Op: frame.OpText,
		Except: "conn-" + origin, Payload: fmt.Appendf(nil, "%s/%d", origin, seq),
	}
}

// same reports whether got is want as delivered or read from a log at pos.
func same(got, want hub.Envelope, pos hub.Position) bool {
	want.Pos = pos
	return got.Topic == want.Topic && got.Origin == want.Origin && got.Epoch == want.Epoch &&
		got.Seq == want.Seq && got.Op == want.Op && got.Except == want.Except &&
		string(got.Payload) == string(want.Payload) && got.Pos == want.Pos
}

func appendAll(t *testing.T, b *Broker, lim hub.Limits, es ...hub.Envelope) []hub.Position {
	t.Helper()
	var ps []hub.Position
	for _, e := range es {
		p, err := b.Append(ctxWait(t), e, lim)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

func offsets(es []hub.Envelope) []uint64 {
	var offs []uint64
	for _, e := range es {
		offs = append(offs, e.Pos.Offset)
	}
	return offs
}

func span(first, last uint64) []uint64 {
	var offs []uint64
	for o := first; o <= last; o++ {
		offs = append(offs, o)
	}
	return offs
}

// dedup drops the repeats of a delivery, which a Log may make, and fails the test if it
// is out of order.
func dedup(t *testing.T, es []hub.Envelope) []uint64 {
	t.Helper()
	var offs []uint64
	for _, e := range es {
		switch n := len(offs); {
		case n > 0 && e.Pos.Offset == offs[n-1]:
		case n > 0 && e.Pos.Offset < offs[n-1]:
			t.Fatalf("offset %d delivered after %d", e.Pos.Offset, offs[n-1])
		default:
			offs = append(offs, e.Pos.Offset)
		}
	}
	return offs
}

// Two nodes appending at once to one topic get the offsets 1..N, each once, and the log
// holds every envelope at the position its Append returned.
func TestAppendConcurrentOffsets(t *testing.T) {
	e := startJetStream(t)
	nodes := []*Broker{link(t, e, nil), link(t, e, nil)}
	const perWriter = 25
	type put struct {
		e hub.Envelope
		p hub.Position
	}
	var mu sync.Mutex
	var puts []put
	var wg sync.WaitGroup
	for i, b := range nodes {
		for w := range 2 {
			origin := fmt.Sprintf("n%dw%d", i, w)
			wg.Go(func() {
				for seq := uint64(1); seq <= perWriter; seq++ {
					env := envelope("room", origin, seq)
					p, err := b.Append(ctxWait(t), env, hub.Limits{})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					puts = append(puts, put{env, p})
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	n := uint64(len(puts))
	byOffset := make(map[uint64]hub.Envelope)
	for _, p := range puts {
		if p.p.Epoch != puts[0].p.Epoch || p.p.Epoch == "" {
			t.Fatalf("epochs %q and %q", p.p.Epoch, puts[0].p.Epoch)
		}
		if _, dup := byOffset[p.p.Offset]; dup || p.p.Offset < 1 || p.p.Offset > n {
			t.Fatalf("offset %d given twice or out of 1..%d", p.p.Offset, n)
		}
		byOffset[p.p.Offset] = p.e
	}
	got, err := nodes[1].Read(ctxWait(t), "room", hub.Position{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(offsets(got), span(1, n)) {
		t.Fatalf("Read offsets %v, want 1..%d", offsets(got), n)
	}
	for _, g := range got {
		if !same(g, byOffset[g.Pos.Offset], hub.Position{Epoch: puts[0].p.Epoch, Offset: g.Pos.Offset}) {
			t.Fatalf("read %+v at %v, appended %+v", g, g.Pos, byOffset[g.Pos.Offset])
		}
	}
}

// Read returns what follows a position, at most max, and says when the log does not
// reach back to it; after a trim to Len the log holds exactly Len envelopes.
func TestRead(t *testing.T) {
	e := startJetStream(t)
	b := link(t, e, nil)
	var sent []hub.Envelope
	for seq := uint64(1); seq <= 10; seq++ {
		sent = append(sent, envelope("room", "a", seq))
	}
	epoch := appendAll(t, b, hub.Limits{}, sent...)[0].Epoch
	at := func(off uint64) hub.Position { return hub.Position{Epoch: epoch, Offset: off} }
	type readCase struct {
		name   string
		after  hub.Position
		max    int
		want   []uint64
		oldest *hub.Position // a NotRecoverableError with this Oldest
	}
	check := func(t *testing.T, topic string, cases []readCase) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				got, err := b.Read(ctxWait(t), topic, c.after, c.max)
				if c.oldest != nil {
					var nr *hub.NotRecoverableError
					if !errors.As(err, &nr) || !errors.Is(err, hub.ErrNotRecoverable) || nr.Room != topic || nr.After != c.after || nr.Oldest != *c.oldest {
						t.Fatalf("Read: %v, %v; want a NotRecoverableError with Oldest %v", got, err, *c.oldest)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(offsets(got), c.want) {
					t.Fatalf("offsets %v, want %v", offsets(got), c.want)
				}
				for _, g := range got {
					if !same(g, sent[g.Pos.Offset-1], at(g.Pos.Offset)) {
						t.Fatalf("read %+v, appended %+v", g, sent[g.Pos.Offset-1])
					}
				}
			})
		}
	}
	t.Run("Full", func(t *testing.T) {
		check(t, "room", []readCase{
			{name: "FromOldest", after: hub.Position{}, max: 100, want: span(1, 10)},
			{name: "FromOldestMax", after: hub.Position{}, max: 3, want: span(1, 3)},
			{name: "AfterFirst", after: at(1), max: 100, want: span(2, 10)},
			{name: "AfterMiddle", after: at(5), max: 100, want: span(6, 10)},
			{name: "AfterMiddleMax", after: at(3), max: 2, want: span(4, 5)},
			{name: "AfterLast", after: at(10), max: 100},
			{name: "OtherEpoch", after: hub.Position{Epoch: "x", Offset: 3}, max: 100, oldest: new(at(1))},
		})
	})
	// Another topic's envelopes between ours leave Read's search unaffected.
	appendAll(t, b, hub.Limits{}, envelope("other", "a", 1), envelope("other", "a", 2))
	sent = append(sent, envelope("room", "a", 11))
	appendAll(t, b, hub.Limits{Len: 4}, sent[10])
	t.Run("Trimmed", func(t *testing.T) {
		info, err := b.logs.Info(ctxWait(t), jetstream.WithSubjectFilter(b.logSubject("room")))
		if err != nil {
			t.Fatal(err)
		}
		if held := info.State.Subjects[b.logSubject("room")]; held != 4 {
			t.Fatalf("the engine holds %d envelopes of the room, want Len 4", held)
		}
		check(t, "room", []readCase{
			{name: "FromOldest", after: hub.Position{}, max: 100, want: span(8, 11)},
			{name: "BeforeOldest", after: at(6), max: 100, oldest: new(at(8))},
			{name: "JustBeforeOldest", after: at(7), max: 100, want: span(8, 11)},
			{name: "AfterOldest", after: at(9), max: 1, want: span(10, 10)},
			{name: "OtherEpoch", after: hub.Position{Epoch: "x", Offset: 9}, max: 100, oldest: new(at(8))},
		})
	})
	t.Run("EmptyTopic", func(t *testing.T) {
		check(t, "empty", []readCase{
			{name: "FromOldest", after: hub.Position{}, max: 100},
			{name: "After", after: at(3), max: 100, oldest: new(hub.Position{})},
		})
	})
}

// With an Age bound Read returns nothing older, and the offsets go on in the same epoch
// after every envelope expired.
func TestAgeBound(t *testing.T) {
	e := startJetStream(t)
	b := link(t, e, nil)
	lim := hub.Limits{Age: 2 * time.Second} // long enough for the reads between appends on a busy machine
	ps := appendAll(t, b, lim, envelope("room", "a", 1), envelope("room", "a", 2))
	time.Sleep(lim.Age + lim.Age/2)
	ps = append(ps, appendAll(t, b, lim, envelope("room", "a", 3))...)
	got, err := b.Read(ctxWait(t), "room", hub.Position{}, 100)
	if err != nil || !slices.Equal(offsets(got), []uint64{3}) {
		t.Fatalf("Read after the first two aged: %v, %v; want offset 3 only", offsets(got), err)
	}
	var nr *hub.NotRecoverableError
	if _, err := b.Read(ctxWait(t), "room", ps[0], 100); !errors.As(err, &nr) || nr.Oldest != ps[2] {
		t.Fatalf("Read after an aged position: %v, want NotRecoverable with Oldest %v", err, ps[2])
	}
	eventually(t, "every envelope expired", func() bool {
		got, err := b.Read(ctxWait(t), "room", hub.Position{}, 100)
		return err == nil && len(got) == 0
	})
	if got, err := b.Read(ctxWait(t), "room", ps[2], 100); err != nil || len(got) != 0 {
		t.Fatalf("Read after the last offset of an expired log: %v, %v; want nothing", got, err)
	}
	if _, err := b.Read(ctxWait(t), "room", ps[1], 100); !errors.As(err, &nr) || !nr.Oldest.IsZero() {
		t.Fatalf("Read after an expired position: %v, want NotRecoverable with zero Oldest", err)
	}
	// Another node, which never appended to the room, goes on from offset 3 too.
	p := appendAll(t, link(t, e, nil), lim, envelope("room", "b", 1))[0]
	if want := (hub.Position{Epoch: ps[0].Epoch, Offset: 4}); p != want {
		t.Fatalf("Append after the log expired: %v, want %v", p, want)
	}
}

// Every subscribed node, the appender included, receives every envelope in offset order,
// as it was appended, and Close ends every goroutine the Brokers started.
func TestDelivery(t *testing.T) {
	e := startJetStream(t)
	warm(t, e)
	before := runtime.NumGoroutine()
	func() {
		ra, rb := newRecorder(), newRecorder()
		a, b := link(t, e, ra), link(t, e, rb)
		for _, n := range []*Broker{a, b} {
			if err := n.Subscribe(ctxWait(t), "room"); err != nil {
				t.Fatal(err)
			}
		}
		sent := map[uint64]hub.Envelope{}
		var epoch string
		for seq := uint64(1); seq <= 20; seq++ {
			n, origin := a, "a"
			if seq%3 == 0 {
				n, origin = b, "b"
			}
			env := envelope("room", origin, seq)
			p := appendAll(t, n, hub.Limits{Len: 100}, env)[0]
			sent[p.Offset], epoch = env, p.Epoch
		}
		for name, r := range map[string]*recorder{"a": ra, "b": rb} {
			eventually(t, name+" received offsets 1..20", func() bool { return len(dedup(t, r.received())) == 20 })
			got := r.received()
			if !slices.Equal(dedup(t, got), span(1, 20)) {
				t.Fatalf("%s received offsets %v", name, offsets(got))
			}
			for _, g := range got {
				if !same(g, sent[g.Pos.Offset], hub.Position{Epoch: epoch, Offset: g.Pos.Offset}) {
					t.Fatalf("%s received %+v, appended %+v", name, g, sent[g.Pos.Offset])
				}
			}
		}
		// After Unsubscribe nothing more arrives.
		if err := b.Unsubscribe(ctxWait(t), "room"); err != nil {
			t.Fatal(err)
		}
		appendAll(t, a, hub.Limits{}, envelope("room", "a", 21))
		eventually(t, "a received offset 21", func() bool { return len(dedup(t, ra.received())) == 21 })
		if got := dedup(t, rb.received()); len(got) != 20 {
			t.Fatalf("b received %v after Unsubscribe", got)
		}
		for _, n := range []*Broker{a, b} {
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}()
	eventually(t, "every goroutine ended", func() bool { return runtime.NumGoroutine() <= before })
}

// linkDown waits for each recorder's LinkDown, then checks that Append fails fast.
func linkDown(t *testing.T, b *Broker, rs ...*recorder) {
	t.Helper()
	for _, r := range rs {
		select {
		case <-r.downs:
		case <-time.After(wait):
			t.Fatal("no LinkDown")
		}
	}
	start := time.Now()
	if _, err := b.Append(ctxWait(t), envelope("room", "x", 1), hub.Limits{}); !errors.Is(err, hub.ErrLinkDown) {
		t.Fatalf("Append while the engine is down: %v, want ErrLinkDown", err)
	}
	if d := time.Since(start); d > wait/2 {
		t.Fatalf("Append while the engine is down took %v", d)
	}
}

func linkUp(t *testing.T, rs ...*recorder) {
	t.Helper()
	for _, r := range rs {
		select {
		case <-r.ups:
		case <-time.After(wait):
			t.Fatal("no LinkUp")
		}
	}
}

// A topic followed again by several goroutines at once, as by the resumes of reconnections
// in quick succession, keeps a consumer that delivers.
func TestFollowOverlapping(t *testing.T) {
	e := startJetStream(t)
	rs := newRecorder()
	sub, w := link(t, e, rs), link(t, e, nil)
	if err := sub.Subscribe(ctxWait(t), "room"); err != nil {
		t.Fatal(err)
	}
	sub.mu.Lock()
	f := sub.follows["room"]
	sub.mu.Unlock()
	ctx := ctxWait(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := sub.follow(ctx, f); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	sent := envelope("room", "w", 1)
	pos := appendAll(t, w, hub.Limits{Len: 100}, sent)[0]
	eventually(t, "the envelope delivered", func() bool { return len(rs.received()) > 0 })
	if got := rs.received(); len(got) != 1 || !same(got[0], sent, pos) {
		t.Fatalf("received %+v", got)
	}
}

// An engine restarted on its store keeps the epoch and the log, and a subscribed node's
// delivery resumes where it stopped.
func TestRestartPersistent(t *testing.T) {
	e := startJetStream(t)
	rs, rw := newRecorder(), newRecorder()
	sub, w := link(t, e, rs), link(t, e, rw)
	if err := sub.Subscribe(ctxWait(t), "room"); err != nil {
		t.Fatal(err)
	}
	var sent []hub.Envelope
	for seq := uint64(1); seq <= 10; seq++ {
		sent = append(sent, envelope("room", "w", seq))
	}
	ps := appendAll(t, w, hub.Limits{Len: 100}, sent[:5]...)
	eventually(t, "offsets 1..5 delivered", func() bool { return len(dedup(t, rs.received())) == 5 })
	e.Kill(t)
	linkDown(t, w, rs, rw)
	// A subscription made while the link is down takes effect when it is back.
	if err := sub.Subscribe(ctxWait(t), "late"); err != nil {
		t.Fatal(err)
	}
	e.Restart(t)
	linkUp(t, rw)
	ps = append(ps, appendAll(t, w, hub.Limits{Len: 100}, sent[5:]...)...)
	if ps[9].Epoch != ps[0].Epoch || ps[9].Offset != 10 {
		t.Fatalf("after the restart Append gave %v, want %s:10", ps[9], ps[0].Epoch)
	}
	linkUp(t, rs)
	eventually(t, "offsets 1..10 delivered", func() bool { return len(dedup(t, rs.received())) == 10 })
	for _, g := range rs.received() {
		if !same(g, sent[g.Pos.Offset-1], ps[g.Pos.Offset-1]) {
			t.Fatalf("received %+v at %v, appended %+v at %v", g, g.Pos, sent[g.Pos.Offset-1], ps[g.Pos.Offset-1])
		}
	}
	got, err := sub.Read(ctxWait(t), "room", ps[2], 100)
	if err != nil || !slices.Equal(offsets(got), span(4, 10)) {
		t.Fatalf("Read after the restart: %v, %v", offsets(got), err)
	}
	late := appendAll(t, w, hub.Limits{Len: 100}, envelope("late", "w", 1))[0]
	eventually(t, "the late subscription's envelope delivered", func() bool {
		return slices.ContainsFunc(rs.received(), func(e hub.Envelope) bool { return e.Topic == "late" && e.Pos == late })
	})
}

// An engine restarted without its store starts a new epoch: old positions are not
// recoverable, offsets start again at 1, and subscribed nodes receive them.
func TestRestartLost(t *testing.T) {
	e := startJetStream(t)
	rs, rw := newRecorder(), newRecorder()
	sub, w := link(t, e, rs), link(t, e, rw)
	if err := sub.Subscribe(ctxWait(t), "room"); err != nil {
		t.Fatal(err)
	}
	old := appendAll(t, w, hub.Limits{}, envelope("room", "w", 1), envelope("room", "w", 2))
	eventually(t, "offsets 1..2 delivered", func() bool { return len(dedup(t, rs.received())) == 2 })
	e.Kill(t)
	linkDown(t, w, rs, rw)
	e.store = t.TempDir()
	e.Restart(t)
	linkUp(t, rw, rs)
	var nr *hub.NotRecoverableError
	if _, err := w.Read(ctxWait(t), "room", old[0], 100); !errors.As(err, &nr) || !nr.Oldest.IsZero() {
		t.Fatalf("Read of a lost position: %v, want NotRecoverable with zero Oldest", err)
	}
	p := appendAll(t, w, hub.Limits{}, envelope("room", "w", 3))[0]
	if p.Epoch == old[0].Epoch || p.Epoch == "" || p.Offset != 1 {
		t.Fatalf("Append after the loss: %v, want offset 1 of an epoch other than %q", p, old[0].Epoch)
	}
	eventually(t, "the new epoch's offset 1 delivered", func() bool {
		got := rs.received()
		return len(got) > 0 && got[len(got)-1].Pos == p
	})
	if _, err := w.Read(ctxWait(t), "room", old[1], 100); !errors.As(err, &nr) || nr.Oldest != p {
		t.Fatalf("Read of a lost position: %v, want NotRecoverable with Oldest %v", err, p)
	}
}

// Without Options.History a Broker is no Log.
func TestNoHistory(t *testing.T) {
	b := New(nil, nil)
	if _, err := b.Append(context.Background(), envelope("room", "a", 1), hub.Limits{}); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Append: %v, want ErrUnsupported", err)
	}
	if _, err := b.Read(context.Background(), "room", hub.Position{}, 1); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Read: %v, want ErrUnsupported", err)
	}
}

// proxy relays TCP connections from a port of 127.0.0.1 to target, so that a test can cut
// one node's link while the engine and the other nodes go on.
type proxy struct {
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	p := &proxy{target: target, addr: "127.0.0.1:0"}
	p.up(t)
	t.Cleanup(p.down)
	return p
}

// up listens again, on the same port after the first time.
func (p *proxy) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, d)
			p.mu.Unlock()
			for _, pair := range [][2]net.Conn{{c, d}, {d, c}} {
				p.wg.Go(func() {
					io.Copy(pair[0], pair[1])
					pair[0].Close()
					pair[1].Close()
				})
			}
		}
	})
}

// down stops listening and cuts every connection relayed.
func (p *proxy) down() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// A node that lost its link while the others appended resumes delivery after the last
// envelope it delivered, before it reports the link up.
func TestResumeAfterLinkLoss(t *testing.T) {
	e := startJetStream(t)
	p := startProxy(t, e.srv.Addr().String())
	rs := newRecorder()
	sub, err := Connect("nats://"+p.addr, &Options{History: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	if err := sub.Open(rs); err != nil {
		t.Fatal(err)
	}
	if err := sub.Subscribe(ctxWait(t), "room"); err != nil {
		t.Fatal(err)
	}
	w := link(t, e, nil)
	var sent []hub.Envelope
	for seq := uint64(1); seq <= 10; seq++ {
		sent = append(sent, envelope("room", "w", seq))
	}
	ps := appendAll(t, w, hub.Limits{}, sent[:5]...)
	eventually(t, "offsets 1..5 delivered", func() bool { return len(dedup(t, rs.received())) == 5 })
	p.down()
	linkDown(t, sub, rs)
	ps = append(ps, appendAll(t, w, hub.Limits{}, sent[5:]...)...)
	p.up(t)
	linkUp(t, rs)
	eventually(t, "offsets 1..10 delivered", func() bool { return len(dedup(t, rs.received())) == 10 })
	for _, g := range rs.received() {
		if !same(g, sent[g.Pos.Offset-1], ps[g.Pos.Offset-1]) {
			t.Fatalf("received %+v at %v, appended %+v at %v", g, g.Pos, sent[g.Pos.Offset-1], ps[g.Pos.Offset-1])
		}
	}
}
