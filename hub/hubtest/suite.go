// Package hubtest is the conformance suite for hub.Broker implementations, and a fault
// injecting in-process engine (Fake) to run hubs against.
//
// An adapter's test implements Engine for its engine (a real server the test starts) and
// calls Run, which puts two Hubs ("nodes") on the engine in each subtest and checks what
// package hub documents: exactly-once delivery on a healthy engine, per-publisher order,
// subscriptions that follow local membership with a delay, one encoding per node, slow
// consumers that delay nobody, fast failure and gap reports when the engine dies and comes
// back (for engines that implement Restarter), gaps for lost envelopes, and a Close that
// unsubscribes and leaks no goroutine.
package hubtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/transport"
)

// Engine is a message engine under test, shared by the nodes of a test.
type Engine interface {
	// Link connects a new node to the engine and returns its Broker, not yet opened. The Hub
	// that gets it opens and closes it.
	Link(t testing.TB) hub.Broker
	// Subscriptions returns how many nodes the engine itself (not the Brokers' bookkeeping)
	// has subscribed to topic.
	Subscriptions(t testing.TB, topic string) int
}

// Restarter is implemented by engines that can be killed and started again, on the same
// address, within a test. Run skips the engine-failure tests for the others.
type Restarter interface {
	// Kill stops the engine at once, as a crash would; the Brokers lose their links.
	Kill(t testing.TB)
	// Restart starts it again; the Brokers must reconnect by themselves.
	Restart(t testing.TB)
}

// wait bounds every blocking step of the suite.
const wait = 10 * time.Second

// Run runs the conformance suite against e, each check a subtest.
func Run(t *testing.T, e Engine) {
	t.Run("ExactlyOnce", func(t *testing.T) { testExactlyOnce(t, e) })
	t.Run("Order", func(t *testing.T) { testOrder(t, e) })
	t.Run("Subscriptions", func(t *testing.T) { testSubscriptions(t, e) })
	t.Run("EncodeOnce", func(t *testing.T) { testEncodeOnce(t, e) })
	for _, p := range []hub.SlowPolicy{hub.SlowBlock, hub.SlowDrop, hub.SlowEvict} {
		t.Run("SlowConsumer/"+p.String(), func(t *testing.T) { testSlowConsumer(t, e, p) })
	}
	t.Run("EngineDown", func(t *testing.T) {
		r, ok := e.(Restarter)
		if !ok {
			t.Skip("the engine cannot be restarted")
		}
		testEngineDown(t, e, r)
	})
	t.Run("LostIsGap", func(t *testing.T) { testLostIsGap(t, e) })
	t.Run("Close", func(t *testing.T) { testClose(t, e) })
}

// node is one Hub on the engine, with a probe between it and its Broker.
type node struct {
	*hub.Hub
	probe   *probe
	gaps    chan hub.Gap
	lastGap hub.Gap
}

func newNode(t testing.TB, e Engine, name string, opts hub.Options) *node {
	t.Helper()
	n := &node{probe: &probe{Broker: e.Link(t)}, gaps: make(chan hub.Gap, 1024)}
	opts.NodeID = name + "-" + strconv.FormatUint(rand.Uint64(), 36)
	if opts.BlockTimeout == 0 {
		opts.BlockTimeout = wait // a busy test machine must not pass for a slow consumer
	}
	opts.Broker = n.probe
	opts.OnGap = func(g hub.Gap) {
		select {
		case n.gaps <- g:
		default:
		}
	}
	h, err := hub.New(&opts)
	if err != nil {
		t.Fatal(err)
	}
	n.Hub = h
	t.Cleanup(func() { h.Close() })
	return n
}

// gap returns the next gap the node reported, or fails the test after wait.
func (n *node) gap(t testing.TB) hub.Gap {
	t.Helper()
	select {
	case g := <-n.gaps:
		n.lastGap = g
		return g
	case <-time.After(wait):
		t.Fatalf("node %s reported no gap in %v", n.Node(), wait)
		return hub.Gap{}
	}
}

// member joins a new pipe connection to room on n and returns the client's inbox.
func (n *node) member(t testing.TB, room string, opts *transport.Options) *inbox {
	t.Helper()
	client, server := Pipe(t, opts)
	if err := n.Join(server, room); err != nil {
		t.Fatal(err)
	}
	return newInbox(t, client)
}

// probe counts a Broker's subscription calls and can lose envelopes on their way in.
type probe struct {
	hub.Broker
	subs, unsubs atomic.Int32
	drop         atomic.Int32
	lastOffset   atomic.Uint64 // of the last envelope from a log that came, dropped or not
}

func (p *probe) Open(r hub.Receiver) error { return p.Broker.Open(&probeReceiver{r, p}) }

func (p *probe) Subscribe(ctx context.Context, topic string) error {
	p.subs.Add(1)
	return p.Broker.Subscribe(ctx, topic)
}

func (p *probe) Unsubscribe(ctx context.Context, topic string) error {
	p.unsubs.Add(1)
	return p.Broker.Unsubscribe(ctx, topic)
}

type probeReceiver struct {
	hub.Receiver
	p *probe
}

func (r *probeReceiver) Receive(e hub.Envelope) {
	r.p.lastOffset.Store(e.Pos.Offset)
	if r.p.drop.Load() > 0 && r.p.drop.Add(-1) >= 0 {
		return
	}
	r.Receiver.Receive(e)
}

// room returns a topic name of its own for the test, so that tests on a shared engine never
// hear each other.
func room(t testing.TB) string {
	return strings.ReplaceAll(t.Name(), "/", ".") + "." + strconv.FormatUint(rand.Uint64(), 36)
}

func text(s string) []byte { return []byte(s) }

// A member on each node, and a second one on A, get every message of both nodes exactly
// once; BroadcastExcept skips its sender and no one else.
func testExactlyOnce(t *testing.T, e Engine) {
	a, b := newNode(t, e, "a", hub.Options{}), newNode(t, e, "b", hub.Options{})
	r := room(t)
	ca, cb := a.member(t, r, nil), b.member(t, r, nil)
	sender, sconn := Pipe(t, nil)
	if err := a.Join(sconn, r); err != nil {
		t.Fatal(err)
	}
	cs := newInbox(t, sender)
	const n = 100
	var wg sync.WaitGroup
	for _, nd := range []*node{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if err := nd.Broadcast(r, frame.OpText, text(fmt.Sprintf("%s %d", nd.Node(), i))); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := a.BroadcastExcept(r, sconn, frame.OpText, text("except")); err != nil {
		t.Fatal(err)
	}
	for _, nd := range []*node{a, b} {
		if err := nd.Broadcast(r, frame.OpText, text(nd.Node()+" end")); err != nil {
			t.Fatal(err)
		}
	}
	for name, in := range map[string]*inbox{"member on A": ca, "member on B": cb, "sender on A": cs} {
		got := map[string]int{}
		for ends := 0; ends < 2; {
			m := in.next(t, wait)
			got[m]++
			if strings.HasSuffix(m, " end") {
				ends++
			}
		}
		want := 2*n + 2
		if in != cs {
			want++ // "except"
		}
		if len(got) != want {
			t.Errorf("%s: %d distinct messages, want %d", name, len(got), want)
		}
		for m, k := range got {
			if k != 1 {
				t.Errorf("%s: %q delivered %d times", name, m, k)
			}
		}
		if in == cs && got["except"] > 0 {
			t.Errorf("%s: got the message that excluded it", name)
		}
	}
}

// A and B each publish 10,000 numbered messages at once; at every receiver, on either node,
// each publisher's messages arrive all and in order.
func testOrder(t *testing.T, e Engine) {
	a, b := newNode(t, e, "a", hub.Options{QueueLen: 1024}), newNode(t, e, "b", hub.Options{QueueLen: 1024})
	r := room(t)
	inboxes := []*inbox{a.member(t, r, nil), b.member(t, r, nil)}
	const n = 10000
	start := time.Now()
	var wg sync.WaitGroup
	for _, nd := range []*node{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 64)
			for i := range n {
				buf = strconv.AppendInt(append(append(buf[:0], nd.Node()...), ' '), int64(i), 10)
				if err := nd.Broadcast(r, frame.OpBinary, buf); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for k, in := range inboxes {
		next := map[string]int{a.Node(): 0, b.Node(): 0}
		for range 2 * n {
			m := in.next(t, wait)
			origin, num, _ := strings.Cut(m, " ")
			i, err := strconv.Atoi(num)
			if err != nil || i != next[origin] {
				t.Fatalf("receiver %d: got %q, want %s %d", k, m, origin, next[origin])
			}
			next[origin]++
		}
	}
	wg.Wait()
	t.Logf("2 x %d messages to 2 receivers in %v", n, time.Since(start))
}

// A node subscribes when its first member joins, keeps the subscription for
// UnsubscribeDelay after the last one leaves, keeps it for good when one comes back meanwhile,
// and drops it after the delay otherwise.
func testSubscriptions(t *testing.T, e Engine) {
	const delay = 500 * time.Millisecond
	a, b := newNode(t, e, "a", hub.Options{UnsubscribeDelay: delay}), newNode(t, e, "b", hub.Options{UnsubscribeDelay: delay})
	r := room(t)
	subscribed := func(want int) func() bool {
		return func() bool { return e.Subscriptions(t, r) == want }
	}
	if got := e.Subscriptions(t, r); got != 0 {
		t.Fatalf("%d subscriptions before any member", got)
	}
	if err := b.Broadcast(r, frame.OpText, text("to nobody")); err != nil {
		t.Fatal(err)
	}
	_, conn := Pipe(t, nil)
	if err := a.Join(conn, r); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "the first member's node is subscribed", subscribed(1))
	a.Leave(conn, r)
	if got := e.Subscriptions(t, r); got != 1 {
		t.Fatalf("%d subscriptions right after the last member left, want 1 until the delay ends", got)
	}
	if err := a.Join(conn, r); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * delay)
	if got, subs, unsubs := e.Subscriptions(t, r), a.probe.subs.Load(), a.probe.unsubs.Load(); got != 1 || subs != 1 || unsubs != 0 {
		t.Fatalf("rejoining within the delay: %d subscriptions, %d Subscribe and %d Unsubscribe calls; want 1, 1, 0", got, subs, unsubs)
	}
	conn.CloseNow() // a connection that ends leaves its rooms
	eventually(t, wait, "a closed member leaves its room", func() bool { return a.Count(r) == 0 })
	eventually(t, wait, "unsubscribed after the delay", subscribed(0))
	if subs, unsubs := a.probe.subs.Load(), a.probe.unsubs.Load(); subs != 1 || unsubs != 1 {
		t.Fatalf("%d Subscribe and %d Unsubscribe calls, want 1 and 1", subs, unsubs)
	}
	if subs := b.probe.subs.Load(); subs != 0 {
		t.Fatalf("a node without members made %d Subscribe calls", subs)
	}
}

// With 1,000 members in a room on each node, a broadcast is encoded once per node.
func testEncodeOnce(t *testing.T, e Engine) {
	const members = 1000
	a, b := newNode(t, e, "a", hub.Options{}), newNode(t, e, "b", hub.Options{})
	r := room(t)
	var clients []*transport.Conn
	for _, nd := range []*node{a, b} {
		for range members {
			client, server := Pipe(t, nil)
			if err := nd.Join(server, r); err != nil {
				t.Fatal(err)
			}
			clients = append(clients, client)
		}
	}
	if a.Count(r) != members || len(a.Members(r)) != members {
		t.Fatalf("Count %d, Members %d, want %d", a.Count(r), len(a.Members(r)), members)
	}
	before := [2]hub.Stats{a.Stats(), b.Stats()}
	payload := []byte(strings.Repeat("x", 1000))
	if err := a.Broadcast(r, frame.OpBinary, payload); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		f, err := c.RecvFrame(wait)
		if err != nil || f.Opcode != frame.OpBinary || string(f.Payload) != string(payload) {
			t.Fatalf("client %d: %v %v %d bytes", i, err, f.Opcode, len(f.Payload))
		}
	}
	eventually(t, wait, "every write counted", func() bool {
		return a.Stats().Written-before[0].Written == members && b.Stats().Written-before[1].Written == members
	})
	for i, nd := range []*node{a, b} {
		if enc := nd.Stats().Encoded - before[i].Encoded; enc != 1 {
			t.Errorf("node %s encoded %d frames for one broadcast to %d members", nd.Node(), enc, members)
		}
	}
}

// A member that reads nothing, whatever the policy, delays neither the other members on its
// node nor those on the other; SlowDrop counts what it dropped, SlowEvict and SlowBlock (after its
// timeout) close the stalled connection.
func testSlowConsumer(t *testing.T, e Engine, p hub.SlowPolicy) {
	const blockTimeout = 200 * time.Millisecond
	const queue = 8
	a := newNode(t, e, "a", hub.Options{OnSlow: p, QueueLen: queue, BlockTimeout: blockTimeout})
	b := newNode(t, e, "b", hub.Options{})
	r := room(t)
	stalledClient, stalled := Pipe(t, &transport.Options{WriteTimeout: 5 * time.Second, CloseTimeout: 100 * time.Millisecond})
	_ = stalledClient // never read
	if err := a.Join(stalled, r); err != nil {
		t.Fatal(err)
	}
	healthy := []*inbox{a.member(t, r, nil), a.member(t, r, nil), b.member(t, r, nil)}
	// Bursts of half a queue, each read by the healthy members before the next, overflow the
	// stalled member's queue by the third burst and never a healthy one's.
	const n, burst = 100, queue / 2
	start := time.Now()
	var published time.Duration
	for i := 0; i < n; i += burst {
		t0 := time.Now()
		for j := i; j < i+burst; j++ {
			if err := a.Broadcast(r, frame.OpText, text(strconv.Itoa(j))); err != nil {
				t.Fatal(err)
			}
		}
		published += time.Since(t0)
		for k, in := range healthy {
			for j := i; j < i+burst; j++ {
				if m := in.next(t, wait); m != strconv.Itoa(j) {
					t.Fatalf("healthy member %d: got %q, want %d", k, m, j)
				}
			}
		}
	}
	took := time.Since(start)
	// Nothing may wait for the stalled member, whose write times out only after 2.5 to 5
	// seconds: not even the publisher under SlowBlock, where the member's messages wait for it.
	if limit := 2 * time.Second; took > limit {
		t.Errorf("healthy members got %d messages in %v (publishing took %v); want under %v", n, took, published, limit)
	}
	if p != hub.SlowDrop {
		// SlowBlock closes the member BlockTimeout after its queue filled, maybe after the last
		// broadcast.
		eventually(t, wait, "the stalled member is evicted", func() bool { return a.Stats().Evicted > 0 })
	}
	st := a.Stats()
	switch p {
	case hub.SlowDrop:
		if st.Dropped == 0 || st.Evicted != 0 {
			t.Errorf("SlowDrop: %d dropped, %d evicted; want some dropped, none evicted", st.Dropped, st.Evicted)
		}
	default:
		if st.Evicted != 1 || st.Dropped != 0 {
			t.Errorf("%v: %d evicted, %d dropped; want 1 and 0", p, st.Evicted, st.Dropped)
		}
		if got := a.Count(r); got != 2 {
			t.Errorf("%v: %d members left on A, want 2", p, got)
		}
	}
	t.Logf("%v: %d messages to the healthy members in %v (publishing %v); %+v", p, n, took, published, st)
}

// Killing the engine makes Broadcast fail fast while local delivery goes on; after a
// restart both nodes report the gap and traffic flows both ways again.
func testEngineDown(t *testing.T, e Engine, rs Restarter) {
	a, b := newNode(t, e, "a", hub.Options{}), newNode(t, e, "b", hub.Options{})
	r := room(t)
	ca, cb := a.member(t, r, nil), b.member(t, r, nil)
	if err := a.Broadcast(r, frame.OpText, text("before")); err != nil {
		t.Fatal(err)
	}
	ca.until(t, wait, func(m string) bool { return m == "before" })
	cb.until(t, wait, func(m string) bool { return m == "before" })

	rs.Kill(t)
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			rs.Restart(t)
		}
	})
	eventually(t, wait, "Broadcast fails with ErrLinkDown once the engine is gone", func() bool {
		return errors.Is(a.Broadcast(r, frame.OpText, text("probe")), hub.ErrLinkDown)
	})
	const n = 20
	start := time.Now()
	for i := range n {
		if err := a.Broadcast(r, frame.OpText, text("down "+strconv.Itoa(i))); !errors.Is(err, hub.ErrLinkDown) {
			t.Fatalf("Broadcast while the engine is down: %v, want ErrLinkDown", err)
		}
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("%d Broadcasts while the engine is down took %v: not failing fast", n, took)
	}
	for i := range n {
		ca.until(t, wait, func(m string) bool { return m == "down "+strconv.Itoa(i) })
	}

	rs.Restart(t)
	restarted = true
	for _, nd := range []*node{a, b} {
		// A skipped sequence may be reported first, when an envelope beats the link's news.
		for g := nd.gap(t); g.Err == nil; g = nd.gap(t) {
			t.Logf("node %s: %+v", nd.Node(), g)
		}
		if g := nd.lastGap; g.Topic != r || !errors.Is(g.Err, hub.ErrLinkLost) {
			t.Errorf("node %s: gap %+v, want one for topic %s matching ErrLinkLost", nd.Node(), g, r)
		}
	}
	for _, dir := range []struct {
		from *node
		to   *inbox
	}{{a, cb}, {b, ca}} {
		// The engine may take a moment to have the restored subscriptions.
		deadline := time.Now().Add(wait)
		for i := 0; !dir.to.within(50*time.Millisecond, func(m string) bool { return strings.HasPrefix(m, "after ") }); i++ {
			if time.Now().After(deadline) {
				t.Fatalf("no traffic from %s after the restart", dir.from.Node())
			}
			dir.from.Broadcast(r, frame.OpText, text("after "+strconv.Itoa(i)))
		}
	}
}

// An envelope lost on its way is reported as a gap, with its number, and the next one is
// delivered.
func testLostIsGap(t *testing.T, e Engine) {
	a, b := newNode(t, e, "a", hub.Options{}), newNode(t, e, "b", hub.Options{})
	r := room(t)
	_ = a.member(t, r, nil)
	cb := b.member(t, r, nil)
	if err := a.Broadcast(r, frame.OpText, text("m1")); err != nil {
		t.Fatal(err)
	}
	if m := cb.next(t, wait); m != "m1" {
		t.Fatalf("got %q, want m1", m)
	}
	b.probe.drop.Store(1)
	for _, m := range []string{"m2", "m3"} {
		if err := a.Broadcast(r, frame.OpText, text(m)); err != nil {
			t.Fatal(err)
		}
	}
	if m := cb.next(t, wait); m != "m3" {
		t.Fatalf("got %q, want m3", m)
	}
	g := b.gap(t)
	if g.Topic != r || g.Origin != a.Node() || g.First != 2 || g.Last != 2 || g.Err != nil {
		t.Fatalf("gap %+v, want topic %s origin %s, 2..2", g, r, a.Node())
	}
}

// Close unsubscribes the node from everything, and once both hubs and their connections are
// closed every goroutine they started has ended.
func testClose(t *testing.T, e Engine) {
	before := runtime.NumGoroutine()
	r := room(t)
	func() {
		a, b := newNode(t, e, "a", hub.Options{}), newNode(t, e, "b", hub.Options{})
		clients := make([]*transport.Conn, 0, 20)
		for _, nd := range []*node{a, b} {
			for range 10 {
				client, server := Pipe(t, nil)
				if err := nd.Join(server, r, r+".other"); err != nil {
					t.Fatal(err)
				}
				clients = append(clients, client)
			}
		}
		if err := a.Broadcast(r, frame.OpText, text("bye")); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			if f, err := c.RecvFrame(wait); err != nil || string(f.Payload) != "bye" {
				t.Fatalf("%v %q", err, f.Payload)
			}
		}
		for _, nd := range []*node{a, b} {
			if err := nd.Close(); err != nil {
				t.Fatal(err)
			}
			if err := nd.Broadcast(r, frame.OpText, text("late")); !errors.Is(err, hub.ErrClosed) {
				t.Fatalf("Broadcast after Close: %v, want ErrClosed", err)
			}
		}
		for _, topic := range []string{r, r + ".other"} {
			eventually(t, wait, "no subscription left", func() bool { return e.Subscriptions(t, topic) == 0 })
		}
		for _, c := range clients {
			c.CloseNow()
		}
	}()
	eventually(t, wait, "every goroutine ended", func() bool {
		return runtime.NumGoroutine() <= before
	})
}
