package redisbroker

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/hub"
)

// wait bounds every blocking step of these tests.
const wait = 10 * time.Second

// countGoroutines makes t fail if goroutines started after it outlive the test's cleanups
// (it runs after those registered later).
func countGoroutines(t *testing.T) {
	n := runtime.NumGoroutine()
	t.Cleanup(func() {
		eventually(t, "the goroutines to end", func() bool { return runtime.NumGoroutine() <= n })
	})
}

// eventually waits, up to wait, for cond.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", wait, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recorder is a hub.Receiver that keeps what it is given, payloads copied.
type recorder struct {
	mu     sync.Mutex
	got    []hub.Envelope
	events []string // "receive <position>", "down", "up", in order
}

func (r *recorder) Receive(e hub.Envelope) {
	e.Payload = slices.Clone(e.Payload)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, e)
	r.events = append(r.events, "receive "+e.Pos.String())
}

func (r *recorder) LinkDown(error) { r.note("down") }
func (r *recorder) LinkUp()        { r.note("up") }

func (r *recorder) note(ev string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

// offsets returns the offsets received, in order.
func (r *recorder) offsets() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var o []uint64
	for _, e := range r.got {
		o = append(o, e.Pos.Offset)
	}
	return o
}

// received returns the positions received, in order.
func (r *recorder) received() []hub.Position {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ps []hub.Position
	for _, e := range r.got {
		ps = append(ps, e.Pos)
	}
	return ps
}

// offsetsOf returns the offsets received on topic, in order.
func (r *recorder) offsetsOf(topic string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var o []uint64
	for _, e := range r.got {
		if e.Topic == topic {
			o = append(o, e.Pos.Offset)
		}
	}
	return o
}

// has reports whether the event ev was recorded.
func (r *recorder) has(ev string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.events, ev)
}

// count returns how many times ev was recorded.
func (r *recorder) count(ev string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, x := range r.events {
		if x == ev {
			n++
		}
	}
	return n
}

// open returns an opened Broker on addr and what it delivers; both are closed by the
// test's cleanup.
func open(t *testing.T, addr string) (*Broker, *recorder) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	b := New(c, &Options{HealthCheck: 200 * time.Millisecond})
	r := &recorder{}
	if err := b.Open(r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Close()
		c.Close()
	})
	return b, r
}

// envelope is the n-th envelope of origin on topic.
func envelope(topic, origin string, n uint64) hub.Envelope {
	return hub.Envelope{Topic: topic, Origin: origin, Epoch: 7, Seq: n, Op: frame.OpText,
		Except: "c" + strconv.FormatUint(n, 10), Payload: []byte(origin + " " + strconv.FormatUint(n, 10))}
}

// sameEnvelope reports whether got is want, but for Pos.
func sameEnvelope(got, want hub.Envelope) bool {
	return got.Topic == want.Topic && got.Origin == want.Origin && got.Epoch == want.Epoch &&
		got.Seq == want.Seq && got.Op == want.Op && got.Except == want.Except && string(got.Payload) == string(want.Payload)
}

func appendN(t *testing.T, b *Broker, topic, origin string, from, to uint64, lim hub.Limits) []hub.Position {
	t.Helper()
	var ps []hub.Position
	for n := from; n <= to; n++ {
		p, err := b.Append(context.Background(), envelope(topic, origin, n), lim)
		if err != nil {
			t.Fatalf("append %d: %v", n, err)
		}
		ps = append(ps, p)
	}
	return ps
}

// span returns the offsets from..to.
func span(from, to uint64) []uint64 {
	var o []uint64
	for n := from; n <= to; n++ {
		o = append(o, n)
	}
	return o
}

func positions(es []hub.Envelope) []uint64 {
	var o []uint64
	for _, e := range es {
		o = append(o, e.Pos.Offset)
	}
	return o
}

// Two nodes appending to one topic at once get the offsets 1..N, each once, in one epoch,
// and the log holds what each appended at the offset it was given.
func TestLogOffsetsContiguous(t *testing.T) {
	countGoroutines(t)
	e := startEngine(t)
	a, _ := open(t, e.addr())
	b, _ := open(t, e.addr())
	const per = 100
	got := make([][]hub.Position, 2)
	var wg sync.WaitGroup
	for i, br := range []*Broker{a, b} {
		wg.Go(func() {
			for n := uint64(1); n <= per; n++ {
				p, err := br.Append(context.Background(), envelope("race", "node"+strconv.Itoa(i), n), hub.Limits{})
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = append(got[i], p)
			}
		})
	}
	wg.Wait()
	sent := map[uint64]hub.Envelope{}
	var offs []uint64
	for i, ps := range got {
		for j, p := range ps {
			if p.Epoch != got[0][0].Epoch || p.Epoch == "" {
				t.Fatalf("epochs %q and %q", p.Epoch, got[0][0].Epoch)
			}
			if j > 0 && p.Offset <= ps[j-1].Offset {
				t.Fatalf("node%d got %d after %d", i, p.Offset, ps[j-1].Offset)
			}
			offs = append(offs, p.Offset)
			sent[p.Offset] = envelope("race", "node"+strconv.Itoa(i), uint64(j+1))
		}
	}
	slices.Sort(offs)
	if !slices.Equal(offs, span(1, 2*per)) {
		t.Fatalf("offsets %v, want 1..%d each once", offs, 2*per)
	}
	es, err := a.Read(context.Background(), "race", hub.Position{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(positions(es), span(1, 2*per)) {
		t.Fatalf("read %v", positions(es))
	}
	for _, x := range es {
		if x.Pos.Epoch != got[0][0].Epoch || !sameEnvelope(x, sent[x.Pos.Offset]) {
			t.Fatalf("read %+v at %v, appended %+v", x, x.Pos, sent[x.Pos.Offset])
		}
	}
}

func TestLogRead(t *testing.T) {
	countGoroutines(t)
	e := startEngine(t)
	b, _ := open(t, e.addr())
	ps := appendN(t, b, "r", "n", 1, 10, hub.Limits{})
	epoch := ps[0].Epoch
	at := func(n uint64) hub.Position { return hub.Position{Epoch: epoch, Offset: n} }
	// The 11th with Len 5 trims the log of "t" to 7..11.
	appendN(t, b, "t", "n", 1, 10, hub.Limits{})
	tp := appendN(t, b, "t", "n", 11, 11, hub.Limits{Len: 5})[0]
	tat := func(n uint64) hub.Position { return hub.Position{Epoch: tp.Epoch, Offset: n} }
	for _, c := range []struct {
		name   string
		topic  string
		after  hub.Position
		max    int
		want   []uint64
		oldest *hub.Position // a NotRecoverableError with it
	}{
		{"zero", "r", hub.Position{}, 0, span(1, 10), nil},
		{"zero, max 3", "r", hub.Position{}, 3, span(1, 3), nil},
		{"after 4", "r", at(4), 0, span(5, 10), nil},
		{"after 4, max 2", "r", at(4), 2, span(5, 6), nil},
		{"after the last", "r", at(10), 0, nil, nil},
		{"after the future", "r", at(11), 0, nil, &hub.Position{Epoch: epoch, Offset: 1}},
		{"other epoch", "r", hub.Position{Epoch: "x" + epoch, Offset: 4}, 0, nil, &hub.Position{Epoch: epoch, Offset: 1}},
		{"no epoch", "r", hub.Position{Offset: 4}, 0, nil, &hub.Position{Epoch: epoch, Offset: 1}},
		{"trimmed: zero", "t", hub.Position{}, 0, span(7, 11), nil},
		{"trimmed: after 6", "t", tat(6), 0, span(7, 11), nil},
		{"trimmed: after 5", "t", tat(5), 0, nil, &hub.Position{Epoch: tp.Epoch, Offset: 7}},
		{"trimmed: after 1", "t", tat(1), 0, nil, &hub.Position{Epoch: tp.Epoch, Offset: 7}},
		{"no log: zero", "none", hub.Position{}, 0, nil, nil},
		{"no log: after 1", "none", at(1), 0, nil, &hub.Position{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			es, err := b.Read(context.Background(), c.topic, c.after, c.max)
			if c.oldest != nil {
				var nr *hub.NotRecoverableError
				if !errors.As(err, &nr) || !errors.Is(err, hub.ErrNotRecoverable) {
					t.Fatalf("got %v, %v; want a NotRecoverableError", positions(es), err)
				}
				if want := (hub.NotRecoverableError{Room: c.topic, After: c.after, Oldest: *c.oldest}); *nr != want {
					t.Fatalf("got %+v, want %+v", *nr, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(positions(es), c.want) {
				t.Fatalf("got %v, want %v", positions(es), c.want)
			}
			for _, x := range es {
				if x.Pos.Epoch == "" || !sameEnvelope(x, envelope(c.topic, "n", x.Pos.Offset)) {
					t.Fatalf("read %+v", x)
				}
			}
		})
	}
}

// The engine holds exactly Len envelopes of a log, whatever Len the last Append gave.
func TestLogLenExact(t *testing.T) {
	countGoroutines(t)
	e := startEngine(t)
	b, _ := open(t, e.addr())
	for _, n := range []int{1, 3, 10, 4} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			topic := "len" + strconv.Itoa(n)
			for i := range 25 {
				if _, err := b.Append(context.Background(), envelope(topic, "n", uint64(i+1)), hub.Limits{Len: n}); err != nil {
					t.Fatal(err)
				}
				if l := e.admin.XLen(context.Background(), b.streamKey(topic)).Val(); l != int64(min(i+1, n)) {
					t.Fatalf("after %d appends the stream holds %d, want %d", i+1, l, min(i+1, n))
				}
			}
		})
	}
	// A smaller Len on a longer log trims it at once.
	appendN(t, b, "len10", "n", 26, 26, hub.Limits{Len: 2})
	if l := e.admin.XLen(context.Background(), b.streamKey("len10")).Val(); l != 2 {
		t.Fatalf("the stream holds %d, want 2", l)
	}
}

// Read returns nothing older than the Age of the last Append, the keys expire Age after it,
// and a log that expired starts again in a new epoch.
func TestLogAge(t *testing.T) {
	countGoroutines(t)
	e := startEngine(t)
	b, _ := open(t, e.addr())
	const age = 3 * time.Second
	lim := hub.Limits{Age: age}
	ctx := context.Background()
	first := appendN(t, b, "a", "n", 1, 2, lim)
	for _, k := range []string{b.streamKey("a"), b.metaKey("a")} {
		if ttl := e.admin.PTTL(ctx, k).Val(); ttl <= 0 || ttl > age {
			t.Fatalf("%s expires in %v, want in (0, %v]", k, ttl, age)
		}
	}
	time.Sleep(age * 2 / 3)
	appendN(t, b, "a", "n", 3, 3, lim)
	time.Sleep(age * 2 / 3) // 1 and 2 are older than age, 3 is not
	es, err := b.Read(ctx, "a", hub.Position{}, 0)
	if err != nil || !slices.Equal(positions(es), []uint64{3}) || es[0].Pos.Epoch != first[0].Epoch {
		t.Fatalf("read %v, %v; want 3 only, epoch %s", es, err, first[0].Epoch)
	}
	_, err = b.Read(ctx, "a", first[0], 0)
	var nr *hub.NotRecoverableError
	if !errors.As(err, &nr) || nr.Oldest != (hub.Position{Epoch: first[0].Epoch, Offset: 3}) {
		t.Fatalf("read after 1: %v", err)
	}
	if l := e.admin.XLen(ctx, b.streamKey("a")).Val(); l != 1 {
		t.Fatalf("the stream holds %d after a read, want 1", l)
	}
	eventually(t, "the log to expire", func() bool {
		return e.admin.Exists(ctx, b.streamKey("a"), b.metaKey("a")).Val() == 0
	})
	p := appendN(t, b, "a", "n", 4, 4, lim)[0]
	if p.Epoch == first[0].Epoch || p.Offset != 1 {
		t.Fatalf("after expiry the log appends at %v, want offset 1 of a new epoch", p)
	}
	_, err = b.Read(ctx, "a", hub.Position{Epoch: first[0].Epoch, Offset: 3}, 0)
	if !errors.As(err, &nr) || nr.Oldest != p {
		t.Fatalf("read after the old 3: %v", err)
	}
	// Without Age the log stays.
	appendN(t, b, "a", "n", 5, 5, hub.Limits{})
	if ttl := e.admin.PTTL(ctx, b.metaKey("a")).Val(); ttl != -1 {
		t.Fatalf("without Age the log expires in %v", ttl)
	}
}

// Every node subscribed to a topic, the appender included, receives what any node appends
// after, in the order of the log, with its position and as it was given.
func TestLogDelivery(t *testing.T) {
	countGoroutines(t)
	e := startEngine(t)
	a, ra := open(t, e.addr())
	b, rb := open(t, e.addr())
	ctx := context.Background()
	appendN(t, a, "d", "before", 1, 3, hub.Limits{})
	for _, br := range []*Broker{a, b} {
		if err := br.Subscribe(ctx, "d"); err != nil {
			t.Fatal(err)
		}
	}
	const per = 50
	sent := make([]map[uint64]hub.Envelope, 2)
	var wg sync.WaitGroup
	for i, br := range []*Broker{a, b} {
		sent[i] = map[uint64]hub.Envelope{}
		wg.Go(func() {
			for n := uint64(1); n <= per; n++ {
				x := envelope("d", "node"+strconv.Itoa(i), n)
				p, err := br.Append(ctx, x, hub.Limits{Len: 1000})
				if err != nil {
					t.Error(err)
					return
				}
				sent[i][p.Offset] = x
			}
		})
	}
	wg.Wait()
	for _, r := range []*recorder{ra, rb} {
		eventually(t, "every envelope", func() bool { return len(r.offsets()) >= 2*per })
		if o := r.offsets(); !slices.Equal(o, span(4, 3+2*per)) {
			t.Fatalf("received %v, want 4..%d in order", o, 3+2*per)
		}
		r.mu.Lock()
		for _, x := range r.got {
			want, ok := sent[0][x.Pos.Offset]
			if !ok {
				want = sent[1][x.Pos.Offset]
			}
			if x.Pos.Epoch == "" || !sameEnvelope(x, want) {
				t.Errorf("received %+v at %v, appended %+v", x, x.Pos, want)
			}
		}
		r.mu.Unlock()
	}
}

// proxy forwards connections to a target until it is cut: then it closes them and refuses
// new ones, until it is restored.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	mute   atomic.Bool // Redis's answers are dropped on the way
	conns  []net.Conn
	wg     sync.WaitGroup
}

// muted writes to w what Redis answers, unless the proxy is muted.
type muted struct {
	w net.Conn
	p *proxy
}

func (m muted) Write(b []byte) (int, error) {
	if m.p.mute.Load() {
		return len(b), nil
	}
	return m.w.Write(b)
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.setCut(true)
		p.wg.Wait()
	})
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		s, err := net.DialTimeout("tcp", p.target, wait)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(s, c); s.Close() })
		p.wg.Go(func() { io.Copy(muted{c, p}, s); c.Close() })
	}
}

func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// An Append whose answer is lost may have added the envelope: its error does not say that
// the link is down, and the log has the envelope.
func TestLogAppendInDoubt(t *testing.T) {
	e := startEngine(t)
	px := startProxy(t, e.addr())
	a, _ := open(t, px.ln.Addr().String())
	b, _ := open(t, e.addr())
	appendN(t, a, "doubt", "a", 1, 1, hub.Limits{}) // and Redis has the script
	px.mute.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := a.Append(ctx, envelope("doubt", "a", 2), hub.Limits{}); err == nil || errors.Is(err, hub.ErrLinkDown) {
		t.Fatalf("an Append whose answer was lost: %v", err)
	}
	eventually(t, "the envelope in the log", func() bool {
		es, err := b.Read(context.Background(), "doubt", hub.Position{}, 0)
		return err == nil && len(es) == 2 && sameEnvelope(es[1], envelope("doubt", "a", 2))
	})
}

// A node whose link is lost while others append receives, when it is back, everything the
// log holds after what it delivered, before it reports the link up; meanwhile its Appends
// fail fast.
func TestLogCatchUp(t *testing.T) {
	countGoroutines(t)
	e := startEngine(t)
	px := startProxy(t, e.addr())
	a, ra := open(t, px.ln.Addr().String())
	b, _ := open(t, e.addr())
	ctx := context.Background()
	for _, topic := range []string{"c1", "c2"} {
		if err := a.Subscribe(ctx, topic); err != nil {
			t.Fatal(err)
		}
	}
	appendN(t, b, "c1", "n", 1, 3, hub.Limits{})
	eventually(t, "1..3", func() bool { return len(ra.offsets()) == 3 })
	px.setCut(true)
	eventually(t, "the link down", func() bool { return ra.has("down") })
	start := time.Now()
	if _, err := a.Append(ctx, envelope("c1", "a", 1), hub.Limits{}); !errors.Is(err, hub.ErrLinkDown) {
		t.Fatalf("append while down: %v", err)
	}
	if d := time.Since(start); d > wait/2 {
		t.Fatalf("append while down took %v", d)
	}
	appendN(t, b, "c1", "n", 4, 10, hub.Limits{})
	appendN(t, b, "c2", "n", 1, 2, hub.Limits{})
	px.setCut(false)
	eventually(t, "the link up", func() bool { return ra.has("up") })
	if o := ra.offsetsOf("c1"); !slices.Equal(o, span(1, 10)) {
		t.Fatalf("received on c1 %v, want 1..10", o)
	}
	if o := ra.offsetsOf("c2"); !slices.Equal(o, span(1, 2)) {
		t.Fatalf("received on c2 %v, want 1..2", o)
	}
	ra.mu.Lock()
	events := slices.Clone(ra.events)
	ra.mu.Unlock()
	if up := slices.Index(events, "up"); up != len(events)-1 || up != slices.Index(events, "down")+10 {
		t.Fatalf("events %v: want the 9 envelopes appended while down between down and up", events)
	}
	appendN(t, b, "c1", "n", 11, 11, hub.Limits{})
	eventually(t, "11", func() bool { return len(ra.offsetsOf("c1")) == 11 })
}

// When the engine dies, Appends fail fast; when it comes back with the logs it persisted,
// the epoch and the logs are kept and a node that comes back after others appended receives
// everything, with nothing skipped; when it comes back without them, the logs start again in
// new epochs, the old positions cannot be recovered, and the node receives the new epoch's
// envelopes from the first.
func TestLogRestart(t *testing.T) {
	for _, persist := range []bool{true, false} {
		t.Run(map[bool]string{true: "persistent", false: "volatile"}[persist], func(t *testing.T) {
			countGoroutines(t)
			e := startEngineWith(t, persist)
			px := startProxy(t, e.addr()) // a's way, kept cut until b appended after the restart
			a, ra := open(t, px.ln.Addr().String())
			b, rb := open(t, e.addr())
			ctx := context.Background()
			if err := a.Subscribe(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			lim := hub.Limits{Len: 100}
			last := appendN(t, b, "k", "n", 1, 5, lim)[4]
			eventually(t, "1..5", func() bool { return len(ra.offsets()) == 5 })
			e.kill()
			eventually(t, "the links down", func() bool { return ra.has("down") && rb.has("down") })
			start := time.Now()
			if _, err := b.Append(ctx, envelope("k", "b", 1), lim); !errors.Is(err, hub.ErrLinkDown) {
				t.Fatalf("append while down: %v", err)
			}
			if d := time.Since(start); d > wait/2 {
				t.Fatalf("append while down took %v", d)
			}
			px.setCut(true)
			e.start(t)
			eventually(t, "b's link up", func() bool { return rb.has("up") })
			want := ra.received() // 1..5
			if persist {
				es, err := b.Read(ctx, "k", hub.Position{}, 0)
				if err != nil || !slices.Equal(positions(es), span(1, 5)) || es[0].Pos.Epoch != last.Epoch {
					t.Fatalf("read %v, %v after the restart", es, err)
				}
			} else {
				_, err := b.Read(ctx, "k", last, 0)
				var nr *hub.NotRecoverableError
				if !errors.As(err, &nr) || !nr.Oldest.IsZero() {
					t.Fatalf("read after %v: %v", last, err)
				}
			}
			want = append(want, appendN(t, b, "k", "n", 6, 8, lim)...)
			if persist && want[5] != (hub.Position{Epoch: last.Epoch, Offset: 6}) {
				t.Fatalf("appended at %v after a restart with the log", want[5])
			} else if !persist && (want[5].Epoch == last.Epoch || want[5].Offset != 1) {
				t.Fatalf("appended at %v after a restart without the log", want[5])
			}
			px.setCut(false)
			eventually(t, "a's link up", func() bool { return ra.has("up") })
			want = append(want, appendN(t, b, "k", "n", 9, 10, lim)...)
			eventually(t, "9 and 10", func() bool { return len(ra.offsets()) == 10 })
			ra.mu.Lock()
			defer ra.mu.Unlock()
			for i, x := range ra.got {
				if x.Pos != want[i] {
					t.Fatalf("received %v at %d, want %v", x.Pos, i, want)
				}
			}
			if up, down := slices.Index(ra.events, "up"), slices.Index(ra.events, "down"); up != down+4 {
				t.Fatalf("events %v: want 6..8 delivered between down and up", ra.events)
			}
		})
	}
}

// A node whose link is lost and restored again and again while another appends without a
// pause receives every offset once, in order: what the channel brings during a catch-up is
// delivered after it.
func TestLogCatchUpWhileAppending(t *testing.T) {
	countGoroutines(t)
	e := startEngine(t)
	px := startProxy(t, e.addr())
	a, ra := open(t, px.ln.Addr().String())
	b, _ := open(t, e.addr())
	ctx := context.Background()
	if err := a.Subscribe(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan uint64)
	go func() {
		n := uint64(0)
		defer func() { done <- n }()
		for ; n < 100000; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := b.Append(ctx, envelope("w", "b", n+1), hub.Limits{}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 3 {
		px.setCut(true)
		eventually(t, "the link down", func() bool { return ra.count("down") == i+1 })
		px.setCut(false)
		eventually(t, "the link up", func() bool { return ra.count("up") == i+1 })
	}
	close(stop)
	total := <-done
	eventually(t, "every offset", func() bool { return uint64(len(ra.offsets())) >= total })
	if o := ra.offsets(); !slices.Equal(o, span(1, total)) {
		t.Fatalf("received %d offsets, not 1..%d in order: %v", len(o), total, o)
	}
}

// A topic subscribed again resumes, after a loss of the link, from where the new
// subscription started, not from what was delivered before it was unsubscribed.
func TestLogResubscribe(t *testing.T) {
	countGoroutines(t)
	e := startEngine(t)
	px := startProxy(t, e.addr())
	a, ra := open(t, px.ln.Addr().String())
	b, _ := open(t, e.addr())
	ctx := context.Background()
	if err := a.Subscribe(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	appendN(t, b, "s", "n", 1, 2, hub.Limits{})
	eventually(t, "1 and 2", func() bool { return len(ra.offsets()) == 2 })
	if err := a.Unsubscribe(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	appendN(t, b, "s", "n", 3, 5, hub.Limits{})
	if err := a.Subscribe(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	px.setCut(true)
	eventually(t, "the link down", func() bool { return ra.has("down") })
	appendN(t, b, "s", "n", 6, 6, hub.Limits{})
	px.setCut(false)
	eventually(t, "the link up", func() bool { return ra.has("up") })
	appendN(t, b, "s", "n", 7, 7, hub.Limits{})
	eventually(t, "7", func() bool { return slices.Contains(ra.offsets(), 7) })
	if o := ra.offsets(); !slices.Equal(o, []uint64{1, 2, 6, 7}) {
		t.Fatalf("received %v, want 1, 2, 6, 7", o)
	}
}

// gated is a recorder whose Receive waits for its gate to open.
type gated struct {
	*recorder
	gate chan struct{}
}

func (g gated) Receive(e hub.Envelope) {
	<-g.gate
	g.recorder.Receive(e)
}

// A node too slow for its pub/sub connection is disconnected by Redis once its output buffer
// is over the limit, and then receives from the log, in order, what it missed.
func TestLogSlowNode(t *testing.T) {
	countGoroutines(t)
	e := startEngine(t)
	ctx := context.Background()
	if err := e.admin.ConfigSet(ctx, "client-output-buffer-limit", "pubsub 64kb 0 0").Err(); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: e.addr(), MaxRetries: -1})
	a := New(c, &Options{HealthCheck: 200 * time.Millisecond})
	ra := gated{&recorder{}, make(chan struct{})}
	if err := a.Open(ra); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Close()
		c.Close()
	})
	b, _ := open(t, e.addr())
	if err := a.Subscribe(ctx, "slow"); err != nil {
		t.Fatal(err)
	}
	// 16 MB: more than the kernel's socket buffers can hold for a reader that waits.
	const n = 256
	big := make([]byte, 64<<10)
	for i := range uint64(n) {
		x := envelope("slow", "b", i+1)
		x.Payload = big
		if _, err := b.Append(ctx, x, hub.Limits{Len: n}); err != nil {
			t.Fatal(err)
		}
	}
	close(ra.gate)
	eventually(t, "every offset", func() bool { return len(ra.offsets()) >= n })
	if o := ra.offsets(); !slices.Equal(o, span(1, n)) {
		t.Fatalf("received %v, want 1..%d in order", o, n)
	}
	if !ra.has("down") || !ra.has("up") {
		t.Fatal("Redis did not disconnect the slow node: the test proves nothing")
	}
}
