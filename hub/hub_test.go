package hub_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/hub/hubtest"
	"github.com/ecows/ecows/transport"
)

const wait = 5 * time.Second

func newHub(t testing.TB, opts *hub.Options) *hub.Hub {
	t.Helper()
	h, err := hub.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func recv(t testing.TB, c *transport.Conn) string {
	t.Helper()
	_, msg, err := c.ReadMessage(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return string(msg)
}

func recvWithin(c *transport.Conn, d time.Duration) (string, error) {
	f, err := c.RecvFrame(d)
	return string(f.Payload), err
}

func TestRooms(t *testing.T) {
	h := newHub(t, nil)
	ca, a := hubtest.Pipe(t, nil)
	cb, b := hubtest.Pipe(t, nil)
	if err := h.Join(a, "lobby", "dev"); err != nil {
		t.Fatal(err)
	}
	if err := h.Join(b, "lobby", "lobby"); err != nil {
		t.Fatal(err)
	}
	if h.Count("lobby") != 2 || h.Count("dev") != 1 || h.Count("none") != 0 {
		t.Fatalf("counts %d %d %d", h.Count("lobby"), h.Count("dev"), h.Count("none"))
	}
	members := h.Members("lobby")
	if len(members) != 2 || !slices.Contains(members, a) || !slices.Contains(members, b) {
		t.Fatalf("Members(lobby) = %v", members)
	}
	rooms := h.Rooms(a)
	slices.Sort(rooms)
	if !slices.Equal(rooms, []string{"dev", "lobby"}) {
		t.Fatalf("Rooms(a) = %v", rooms)
	}

	if err := h.BroadcastExcept("lobby", a, frame.OpText, []byte("from a")); err != nil {
		t.Fatal(err)
	}
	if err := h.Broadcast("dev", frame.OpBinary, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := h.Send(b, frame.OpText, []byte("direct")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, cb); got != "from a" {
		t.Fatalf("b got %q", got)
	}
	if got := recv(t, cb); got != "direct" {
		t.Fatalf("b got %q", got)
	}
	if got := recv(t, ca); got != "\x01\x02" {
		t.Fatalf("a got %q", got)
	}
	if got, err := recvWithin(ca, 50*time.Millisecond); err == nil {
		t.Fatalf("a got %q, which excluded it", got)
	}

	h.Leave(a, "lobby", "nowhere")
	if h.Count("lobby") != 1 || !slices.Equal(h.Rooms(a), []string{"dev"}) {
		t.Fatalf("after Leave: lobby %d, a in %v", h.Count("lobby"), h.Rooms(a))
	}
	h.Remove(b)
	if h.Count("lobby") != 0 || h.Rooms(b) != nil || h.Stats().Conns != 1 {
		t.Fatalf("after Remove: lobby %d, b in %v, %+v", h.Count("lobby"), h.Rooms(b), h.Stats())
	}
	a.CloseNow()
	deadline := time.Now().Add(wait)
	for h.Count("dev") != 0 || h.Stats().Conns != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a closed connection stayed in its rooms")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBadMessages(t *testing.T) {
	h := newHub(t, nil)
	_, c := hubtest.Pipe(t, nil)
	if err := h.Broadcast("r", frame.OpText, []byte{0xff}); err != transport.ErrInvalidUTF8 {
		t.Fatalf("invalid UTF-8: %v", err)
	}
	if err := h.Broadcast("r", frame.OpPing, nil); err != transport.ErrOpcode {
		t.Fatalf("ping: %v", err)
	}
	if err := h.Send(c, frame.OpContinuation, nil); err != transport.ErrOpcode {
		t.Fatalf("continuation: %v", err)
	}
}

// A message over a member's frame limit reaches it fragmented, and a member writing a
// fragmented message of its own gets the broadcast after it, not inside it.
func TestFragmentedWrites(t *testing.T) {
	h := newHub(t, nil)
	client, server := hubtest.Pipe(t, &transport.Options{MaxPayloadLen: 16})
	if err := h.Join(server, "r"); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("abcdefgh"), 10)
	if err := h.Broadcast("r", frame.OpBinary, big); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, client); got != string(big) {
		t.Fatalf("got %q", got)
	}

	w, err := server.NextWriter(context.Background(), frame.OpText)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		w.Write([]byte(strings.Repeat("x", 40))) // two frames out, the message still open
		time.Sleep(20 * time.Millisecond)
		w.Close()
	}()
	time.Sleep(5 * time.Millisecond)
	if err := h.Broadcast("r", frame.OpText, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, client); got != strings.Repeat("x", 40) {
		t.Fatalf("got %q", got)
	}
	if got := recv(t, client); got != "after" {
		t.Fatalf("got %q", got)
	}
}

// The Fake engine's own losses (not the probe's) are gaps too, and a node's own envelopes,
// which the Fake sends back, are never delivered twice.
func TestEngineLossIsGap(t *testing.T) {
	f := hubtest.NewFake()
	var mu sync.Mutex
	var gaps []hub.Gap
	a := newHub(t, &hub.Options{Broker: f.Link(t), NodeID: "a"})
	b := newHub(t, &hub.Options{Broker: f.Link(t), NodeID: "b", OnGap: func(g hub.Gap) {
		mu.Lock()
		gaps = append(gaps, g)
		mu.Unlock()
	}})
	ca, sa := hubtest.Pipe(t, nil)
	cb, sb := hubtest.Pipe(t, nil)
	a.Join(sa, "r")
	b.Join(sb, "r")
	for i, m := range []string{"1", "2", "3", "4", "5"} {
		if i == 1 {
			f.DropNext(2)
		}
		a.Broadcast("r", frame.OpText, []byte(m))
	}
	for _, want := range []string{"1", "2", "3", "4", "5"} {
		if got := recv(t, ca); got != want {
			t.Fatalf("local member got %q, want %s", got, want)
		}
	}
	for _, want := range []string{"1", "4", "5"} {
		if got := recv(t, cb); got != want {
			t.Fatalf("remote member got %q, want %s", got, want)
		}
	}
	if got, err := recvWithin(ca, 50*time.Millisecond); err == nil {
		t.Fatalf("local member got %q twice", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(gaps) != 1 || gaps[0] != (hub.Gap{Topic: "r", Origin: "a", First: 2, Last: 3}) {
		t.Fatalf("gaps %+v", gaps)
	}
	if st := b.Stats(); st.Gaps != 1 || st.Received != 3 {
		t.Fatalf("b stats %+v", st)
	}
}

// Duplicates and late envelopes are dropped; a new epoch starts a new numbering.
func TestSequence(t *testing.T) {
	bus := hub.NewBus()
	var gaps []hub.Gap
	var mu sync.Mutex
	b := newHub(t, &hub.Options{Broker: bus.Link(), NodeID: "b", OnGap: func(g hub.Gap) {
		mu.Lock()
		gaps = append(gaps, g)
		mu.Unlock()
	}})
	client, server := hubtest.Pipe(t, nil)
	b.Join(server, "r")
	inject := bus.Link() // a raw node
	inject.Open(nopReceiver{})
	defer inject.Close()
	for _, e := range []hub.Envelope{
		{Seq: 5, Epoch: 1, Payload: []byte("e1s5")},
		{Seq: 5, Epoch: 1, Payload: []byte("dup")},
		{Seq: 4, Epoch: 1, Payload: []byte("late")},
		{Seq: 6, Epoch: 1, Payload: []byte("e1s6")},
		{Seq: 1, Epoch: 2, Payload: []byte("e2s1")},
		{Seq: 3, Epoch: 3, Payload: []byte("e3s3")},
		{Seq: 1, Epoch: 3, Payload: []byte("late")},
		{Seq: 1, Epoch: 1, Origin: "b", Payload: []byte("own")},
	} {
		e.Topic, e.Op = "r", frame.OpText
		if e.Origin == "" {
			e.Origin = "x"
		}
		if err := inject.Publish(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"e1s5", "e1s6", "e2s1", "e3s3"} {
		if got := recv(t, client); got != want {
			t.Fatalf("got %q, want %s", got, want)
		}
	}
	if got, err := recvWithin(client, 50*time.Millisecond); err == nil {
		t.Fatalf("got %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(gaps) != 1 || gaps[0] != (hub.Gap{Topic: "r", Origin: "x", First: 1, Last: 2}) {
		t.Fatalf("gaps %+v", gaps)
	}
}

type nopReceiver struct{}

func (nopReceiver) Receive(hub.Envelope) {}
func (nopReceiver) LinkDown(error)       {}
func (nopReceiver) LinkUp()              {}

func TestClosed(t *testing.T) {
	h := newHub(t, nil)
	client, c := hubtest.Pipe(t, nil)
	h.Join(c, "r")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Join":      h.Join(c, "r"),
		"Broadcast": h.Broadcast("r", frame.OpText, nil),
		"Send":      h.Send(c, frame.OpText, nil),
	} {
		if !errors.Is(err, hub.ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
	if h.Count("r") != 0 {
		t.Errorf("Count after Close: %d", h.Count("r"))
	}
	// The connection is its owner's: it is still open.
	go c.SendText([]byte("still here"))
	if got := recv(t, client); got != "still here" {
		t.Fatalf("got %q", got)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestEnvelope(t *testing.T) {
	e := hub.Envelope{Topic: "room/1", Origin: "node-a", Epoch: 1 << 60, Seq: 300, Op: frame.OpBinary, Except: "node-a/7", Payload: []byte{0, 1, 2}}
	b, err := e.AppendBinary([]byte("prefix"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := hub.DecodeEnvelope(b[len("prefix"):])
	if err != nil {
		t.Fatal(err)
	}
	if got.Topic != e.Topic || got.Origin != e.Origin || got.Epoch != e.Epoch || got.Seq != e.Seq ||
		got.Op != e.Op || got.Except != e.Except || !bytes.Equal(got.Payload, e.Payload) {
		t.Fatalf("round trip: %+v, want %+v", got, e)
	}
	for _, bad := range [][]byte{nil, {1}, {2, 1, 0, 0, 0, 0, 0}, {1, 9, 0, 0, 0, 0, 0}, {1, 1, 0, 0, 5, 'a'}, {1, 1, 0xff}} {
		if _, err := hub.DecodeEnvelope(bad); err != hub.ErrEnvelope {
			t.Errorf("DecodeEnvelope(%v): %v", bad, err)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	e := hub.Envelope{Topic: "t", Origin: "o", Epoch: 3, Seq: 9, Op: frame.OpText, Payload: []byte("hi")}
	b, _ := e.AppendBinary(nil)
	f.Add(b)
	f.Add([]byte{1, 2, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := hub.DecodeEnvelope(b)
		if err != nil {
			return
		}
		again, _ := e.AppendBinary(nil)
		e2, err := hub.DecodeEnvelope(again)
		if err != nil || e2.Topic != e.Topic || e2.Origin != e.Origin || e2.Except != e.Except ||
			e2.Seq != e.Seq || e2.Epoch != e.Epoch || e2.Op != e.Op || !bytes.Equal(e2.Payload, e.Payload) {
			t.Fatalf("re-encoding %+v gave %+v, %v", e, e2, err)
		}
	})
}
