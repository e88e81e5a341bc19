package transport

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

// recorder is an Observer that keeps every call, and counts the messages reported since the
// last flush of their side.
type recorder struct {
	mu                        sync.Mutex
	received, sent            [][2]int64
	rtts                      []time.Duration
	closes                    []string
	unflushedIn, unflushedOut int
}

func (r *recorder) Received(size, wire int64) {
	r.mu.Lock()
	r.received = append(r.received, [2]int64{size, wire})
	r.unflushedIn++
	r.mu.Unlock()
}

func (r *recorder) Sent(size, wire int64) {
	r.mu.Lock()
	r.sent = append(r.sent, [2]int64{size, wire})
	r.unflushedOut++
	r.mu.Unlock()
}

func (r *recorder) FlushReceived() {
	r.mu.Lock()
	r.unflushedIn = 0
	r.mu.Unlock()
}

func (r *recorder) FlushSent() {
	r.mu.Lock()
	r.unflushedOut = 0
	r.mu.Unlock()
}

// unflushed returns the messages each side reported since it was last flushed.
func (r *recorder) unflushed() (in, out int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unflushedIn, r.unflushedOut
}

func (r *recorder) Pinged(d time.Duration) {
	r.mu.Lock()
	r.rtts = append(r.rtts, d)
	r.mu.Unlock()
}

func (r *recorder) Closed(code frame.CloseCode, by Side) {
	r.mu.Lock()
	r.closes = append(r.closes, fmt.Sprintf("%d %v", code, by))
	r.mu.Unlock()
}

func (r *recorder) get() (received, sent [][2]int64, rtts []time.Duration, closes []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.received), slices.Clone(r.sent), slices.Clone(r.rtts), slices.Clone(r.closes)
}

// observedPair returns a client and a server Conn over TCP, each with a recorder, compressing
// every message when compress is set.
func observedPair(t *testing.T, compress bool, opts *Options) (client, server *Conn, co, so *recorder) {
	a, b := wstest.TCPPair(t)
	co, so = &recorder{}, &recorder{}
	d := DeflateParams{Enabled: compress}
	return NewConn(a, Client, Setup{Deflate: d, Observer: co}, opts),
		NewConn(b, Server, Setup{Deflate: d, Observer: so}, opts), co, so
}

// TestObserverMessages sends messages of many sizes through every write API and reads them
// with every read API, with and without compression, and checks that each message is
// reported once on each side, with its size and with the same wire bytes on both sides.
func TestObserverMessages(t *testing.T) {
	sizes := []int{0, 1, 200, 5000, 70000} // the last is fragmented at MaxPayloadLen
	for _, compress := range []bool{false, true} {
		for api := range 3 {
			t.Run(fmt.Sprintf("compress=%v/api=%d", compress, api), func(t *testing.T) {
				opts := &Options{MaxPayloadLen: 65535, Compression: &CompressionOptions{Threshold: -1}}
				client, server, co, so := observedPair(t, compress, opts)
				for i, n := range sizes {
					msg := testData(2, n, uint64(i))
					errc := make(chan error, 1)
					go func() { errc <- zWriteWith(client, api, frame.OpText, msg) }()
					_, got, err := zReadWithAny(server, api)
					if err != nil || len(got) != n {
						t.Fatalf("message of %d bytes: read %d bytes, %v", n, len(got), err)
					}
					if err := <-errc; err != nil {
						t.Fatalf("message of %d bytes: write: %v", n, err)
					}
					// The reader has nothing left to read, and the writer nothing to send.
					if in, _ := so.unflushed(); in != 0 {
						t.Fatalf("message of %d bytes: the server's reader left %d messages unflushed", n, in)
					}
					if _, out := co.unflushed(); out != 0 {
						t.Fatalf("message of %d bytes: the client's writer left %d messages unflushed", n, out)
					}
				}
				_, sent, _, _ := co.get()
				received, _, _, _ := so.get()
				if len(sent) != len(sizes) || !slices.Equal(sent, received) {
					t.Fatalf("client reported sent %v, server received %v", sent, received)
				}
				for i, s := range sent {
					size, wire := s[0], s[1]
					switch {
					case size != int64(sizes[i]):
						t.Errorf("message %d: size %d, want %d", i, size, sizes[i])
					case !compress && wire != size:
						t.Errorf("message %d: %d wire bytes for %d uncompressed", i, wire, size)
					case compress && size >= 200 && wire >= size/4:
						t.Errorf("message %d: %d wire bytes for %d bytes of one line repeated", i, wire, size)
					}
				}
			})
		}
	}
}

// zReadWithAny is zReadWith for messages that may not be compressed.
func zReadWithAny(c *Conn, api int) (frame.Opcode, []byte, error) {
	if api < 2 {
		return zReadWith(c, api)
	}
	var op frame.Opcode
	var b []byte
	for {
		f, err := c.RecvFrame(10 * time.Second)
		if err != nil {
			return 0, nil, err
		}
		if f.Opcode != frame.OpContinuation {
			op = f.Opcode
		}
		b = append(b, f.Payload...)
		if f.Fin {
			return op, b, nil
		}
	}
}

// TestObserverPrepared checks the sizes reported for prepared messages, compressed once for
// every Conn or not at all.
func TestObserverPrepared(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprint("compress=", compress), func(t *testing.T) {
			client, server, co, so := observedPair(t, compress, &Options{Compression: &CompressionOptions{Threshold: -1}})
			msg := testData(2, 3000, 1)
			p, err := NewPrepared(frame.OpBinary, msg)
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if _, err := server.WritePrepared(p); err != nil {
					t.Fatal(err)
				}
				if _, got, err := client.ReadMessage(context.Background(), nil); err != nil || len(got) != len(msg) {
					t.Fatalf("read %d bytes, %v", len(got), err)
				}
			}
			_, sent, _, _ := so.get()
			received, _, _, _ := co.get()
			if len(sent) != 3 || !slices.Equal(sent, received) {
				t.Fatalf("server reported sent %v, client received %v", sent, received)
			}
			if size, wire := sent[0][0], sent[0][1]; size != 3000 || (compress != (wire < size)) {
				t.Fatalf("size %d, wire %d (compressed: %v)", size, wire, compress)
			}
		})
	}
}

// TestObserverPing checks that each answered Ping reports its round trip.
func TestObserverPing(t *testing.T) {
	client, server, co, _ := observedPair(t, false, nil)
	go serveEcho(server)
	go client.ReadMessage(context.Background(), nil) // notices the pongs
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rtt, err := client.Ping(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if _, _, rtts, _ := co.get(); rtts[len(rtts)-1] != rtt {
			t.Fatalf("reported %v, Ping returned %v", rtts, rtt)
		}
	}
	if _, _, rtts, _ := co.get(); len(rtts) != 2 {
		t.Fatalf("%d round trips reported for 2 pings", len(rtts))
	}
}

// TestObserverClosed checks the code and side reported once each end has closed: the first
// close frame's, whoever sent it, and 1006 with no side when there was none.
func TestObserverClosed(t *testing.T) {
	cases := []struct {
		name           string
		end            func(client, server *Conn)
		client, server string
	}{
		{"client closes", func(c, _ *Conn) { c.Close(4001, "bye") }, "4001 local", "4001 peer"},
		{"server closes", func(_, s *Conn) { s.Close(frame.CloseGoingAway, "") }, "1001 peer", "1001 local"},
		{"client sends an empty close", func(c, _ *Conn) { c.Close(frame.CloseNoStatus, "") }, "1005 local", "1005 peer"},
		{"client breaks the protocol", func(c, _ *Conn) { c.SendFrame(true, frame.OpText, []byte{0xff}) }, "1007 peer", "1007 local"},
		{"client drops the connection", func(c, _ *Conn) { c.CloseNow() }, "1006 none", "1006 none"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, server, co, so := observedPair(t, false, &Options{CloseTimeout: 2 * time.Second})
			served := make(chan struct{})
			go func() { serveEcho(server); close(served) }()
			read := make(chan struct{})
			go func() {
				for {
					if _, _, err := client.ReadMessage(context.Background(), nil); err != nil {
						close(read)
						return
					}
				}
			}()
			tc.end(client, server)
			waitTimeout(t, served, "server's read loop")
			waitTimeout(t, read, "client's read loop")
			client.CloseNow()
			server.CloseNow()
			for _, side := range []struct {
				r    *recorder
				want string
			}{{co, tc.client}, {so, tc.server}} {
				if _, _, _, closes := side.r.get(); !slices.Equal(closes, []string{side.want}) {
					t.Errorf("reported %q, want [%s]", closes, side.want)
				}
				if in, out := side.r.unflushed(); in != 0 || out != 0 {
					t.Errorf("closed with %d received and %d sent messages unflushed", in, out)
				}
			}
		})
	}
}

func waitTimeout(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still running after 10 s", what)
	}
}

// TestObserverNoAllocs checks that an Observer adds no allocation to a message each way.
func TestObserverNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	client, server, _, _ := observedPair(t, false, nil)
	msg := make([]byte, 100)
	buf := make([]byte, 0, 200)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := client.SendBinary(msg); err != nil {
			t.Fatal(err)
		}
		if _, b, err := server.ReadMessage(context.Background(), buf[:0]); err != nil || len(b) != 100 {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message with an Observer", allocs)
	}
}

// TestObserverFlushOnClose checks that messages read while more input waited, which no read
// call flushed, are flushed when the stream closes.
func TestObserverFlushOnClose(t *testing.T) {
	client, server, _, so := observedPair(t, false, nil)
	// Both messages go out in one write, so that the first read finds the second buffered.
	if _, err := client.WritePrepared(mustPrepared(t, "one"), mustPrepared(t, "two")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := server.ReadMessage(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if in, _ := so.unflushed(); in != 1 {
		t.Fatalf("%d messages unflushed after a read that left input buffered, want 1", in)
	}
	server.CloseNow()
	if in, _ := so.unflushed(); in != 0 {
		t.Fatalf("%d messages unflushed after the close", in)
	}
}

func mustPrepared(t *testing.T, s string) *Prepared {
	p, err := NewPrepared(frame.OpText, []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSendTimedPing checks that timed pings report their round trips when their pongs come,
// that a Conn remembers only the last 8 of them, and that a Conn without an Observer keeps
// nothing for them.
func TestSendTimedPing(t *testing.T) {
	client, server, co, _ := observedPair(t, false, nil)
	go serveEcho(server) // answers the pings
	for range 12 {
		if _, err := client.SendTimedPing(); err != nil {
			t.Fatal(err)
		}
	}
	// The pongs wait unread until now: only the last 8 pings are still timed.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go client.ReadMessage(ctx, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, rtts, _ := co.get()
		if len(rtts) == 8 {
			break
		}
		if len(rtts) > 8 || time.Now().After(deadline) {
			t.Fatalf("%d round trips reported for 12 timed pings, want the last 8", len(rtts))
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if _, _, rtts, _ := co.get(); len(rtts) != 8 {
		t.Fatalf("%d round trips reported in the end", len(rtts))
	}

	plain, _ := connPair(t, false, nil)
	if _, err := plain.SendTimedPing(); err != nil {
		t.Fatal(err)
	}
	if x := plain.aux.Load(); x != nil && x.pings.Load() != nil {
		t.Fatal("a Conn without an Observer keeps its timed pings")
	}
}
