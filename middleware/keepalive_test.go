package middleware

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

// keepaliveCase is an echo handler that keeps its connection alive, named for its layer.
type keepaliveCase struct {
	name string
	h    ConnHandler
}

// keepaliveEchoes are an echo at each layer, frames with AutoPong and messages with
// Keepalive, pinging every interval and giving up on a peer silent for timeout.
func keepaliveEchoes(interval, timeout time.Duration) []keepaliveCase {
	return []keepaliveCase{
		{"frames", Frames(echo, AutoPong(&AutoPongOptions{Interval: interval, Timeout: timeout}))},
		{"messages", Messages(Text, echoText, Keepalive(interval, timeout))},
	}
}

// A client that never reads never answers a ping: the server must give up on it in bounded
// time, telling it why in a close frame it may still read.
func TestKeepaliveClosesSilentPeer(t *testing.T) {
	for _, tc := range append(keepaliveEchoes(50*time.Millisecond, 150*time.Millisecond),
		keepaliveCase{"default timeout", Frames(echo, Keepalive(50*time.Millisecond, 0))}) {
		t.Run(tc.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			start := time.Now()
			s := run(t, tc.h)
			if err := s.result(); !errors.Is(err, transport.ErrClosed) {
				t.Fatalf("ServeConn: %v", err)
			}
			if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
				t.Fatalf("silent peer closed after %v", d)
			}
			pings := 0
			for {
				f := s.recv()
				if f.Opcode == frame.OpPing {
					pings++
					continue
				}
				if f.CloseCode() != frame.CloseInternalError || f.CloseReason() != "keepalive timeout" || pings < 1 {
					t.Fatalf("after %d pings, got %v %d %q", pings, f.Opcode, f.CloseCode(), f.CloseReason())
				}
				break
			}
		})
	}
}

// A client that answers pings (ReadMessage does) keeps the connection up however quiet its
// application is. The timeout leaves a loaded machine time to answer, and the test outlasts it.
func TestKeepaliveSparesLivePeer(t *testing.T) {
	for _, tc := range keepaliveEchoes(50*time.Millisecond, 300*time.Millisecond) {
		t.Run(tc.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			s := run(t, tc.h)
			read := make(chan error, 1)
			go func() {
				_, _, err := s.client.ReadMessage(context.Background(), nil)
				read <- err
			}()
			time.Sleep(800 * time.Millisecond)
			if !s.running() {
				t.Fatalf("live peer closed: %v", s.result())
			}
			if n := s.server.Stats().FramesOut; n < 5 {
				t.Fatalf("%d pings in 800 ms at 50 ms", n)
			}
			s.client.Close(frame.CloseNormal, "")
			if err := s.result(); err != nil {
				t.Fatalf("ServeConn: %v", err)
			}
			<-read
		})
	}
}

// A peer that answers every ping late, but within timeout minus the interval, is never cut,
// at either layer.
func TestKeepaliveSparesSlowAnswers(t *testing.T) {
	const interval, timeout = 100 * time.Millisecond, 400 * time.Millisecond
	const delay = (timeout - interval) / 2 // half the promise, for a busy machine
	for _, tc := range keepaliveEchoes(interval, timeout) {
		t.Run(tc.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			s := run(t, tc.h)
			var answers sync.WaitGroup
			pings := 0
			read := make(chan error, 1)
			go func() {
				for {
					f, err := s.client.RecvFrame(0)
					if err != nil {
						read <- err
						return
					}
					if f.Opcode == frame.OpPing {
						pings++
						answers.Add(1)
						time.AfterFunc(delay, func() {
							defer answers.Done()
							s.client.SendPong(nil)
						})
					}
				}
			}()
			time.Sleep(5 * timeout)
			if !s.running() {
				t.Fatalf("a peer answering within %v was cut: %v", delay, s.result())
			}
			s.client.Close(frame.CloseNormal, "")
			if err := s.result(); err != nil {
				t.Fatalf("ServeConn: %v", err)
			}
			<-read
			answers.Wait()
			if pings < 5 {
				t.Fatalf("%d pings in %v at %v", pings, 5*timeout, interval)
			}
		})
	}
}

func TestKeepaliveOff(t *testing.T) {
	if h := wrap(Keepalive(0, time.Second), echoText); !isHandlerFunc(h) {
		t.Fatalf("interval 0 wrapped the handler in %T", h)
	}
}

func isHandlerFunc(h Handler[string]) bool {
	_, ok := h.(handlerFunc[string])
	return ok
}

// Closed before Open (a connection refused by an outer layer) has no goroutine to stop.
func TestKeepaliveClosedWithoutOpen(t *testing.T) {
	h := wrap(Keepalive(time.Second, 0), echoText)
	h.(Closer).Closed(context.Background(), nil, nil)
}

// A handler that holds the read loop longer than the timeout keeps the connection alive: the
// peer's pongs wait unread meanwhile.
func TestKeepaliveSlowHandler(t *testing.T) {
	wstest.CheckGoroutines(t)
	slow := HandlerFunc(func(ctx context.Context, c *transport.Conn, s string) error {
		time.Sleep(500 * time.Millisecond)
		return echoText.Serve(ctx, c, s)
	})
	s := run(t, Messages(Text, slow, Keepalive(50*time.Millisecond, 200*time.Millisecond)))
	s.send(true, frame.OpText, "x")
	// ReadMessage answers the pings queued before the echo.
	if _, msg, err := s.client.ReadMessage(context.Background(), nil); err != nil || string(msg) != "x" {
		t.Fatalf("echo %q, %v", msg, err)
	}
	if !s.running() {
		t.Fatalf("closed while the handler was busy: %v", s.result())
	}
	s.client.Close(frame.CloseNormal, "")
	if err := s.result(); err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
}

// silentPeer is the client end of a connection whose peer never answers a ping: frames go
// out through conn, and its stream is read at the TCP level only, to see when the server
// cuts it.
type silentPeer struct {
	conn   *transport.Conn
	server *transport.Conn
	s      *served
	served time.Time     // before the server started serving it
	opened chan struct{} // closed when the server opened it
	cut    chan time.Time

	mu           sync.Mutex
	open, closed time.Time // when the server's Open and Closed hooks ran
	last         time.Time // when its last frame left, or open for a peer that sent none
}

// newSilentPeer returns a new connection from a peer that sends nothing, not served yet.
func newSilentPeer(t *testing.T) *silentPeer {
	t.Helper()
	raw, nc := wstest.TCPPair(t)
	p := &silentPeer{
		conn:   transport.NewConn(raw, transport.Client, transport.Setup{}, testOptions),
		server: transport.NewConn(nc, transport.Server, transport.Setup{}, testOptions),
		opened: make(chan struct{}),
		cut:    make(chan time.Time, 1),
	}
	raw.SetReadDeadline(time.Now().Add(30 * time.Second))
	go func() {
		io.Copy(io.Discard, raw) // pings and the close frame, never answered; then the end
		p.cut <- time.Now()
	}()
	return p
}

// serve starts serving h on p's connection.
func (p *silentPeer) serve(t *testing.T, h ConnHandler) {
	p.served = time.Now()
	p.s = runOn(t, context.Background(), h, p.conn, p.server)
}

// stamp returns a middleware that records when p's connection was opened and closed, to tell
// where the time went when a cut comes late: in starting to serve, in the keepalive, or in
// the peer seeing it. Put first, its Open runs before Keepalive's.
func stamp[T any](p *silentPeer) Middleware[T] {
	return func(next Handler[T]) Handler[T] { return &stamper[T]{Handler: next, p: p} }
}

type stamper[T any] struct {
	Handler[T]
	p *silentPeer
}

func (s *stamper[T]) Open(context.Context, *transport.Conn) error {
	s.p.mu.Lock()
	s.p.open, s.p.last = time.Now(), time.Now()
	s.p.mu.Unlock()
	close(s.p.opened)
	return nil
}

func (s *stamper[T]) Closed(context.Context, *transport.Conn, error) {
	s.p.mu.Lock()
	s.p.closed = time.Now()
	s.p.mu.Unlock()
}

// Silent peers are cut at most a timeout (two intervals by default) after their last frame,
// with a second for scheduling on a busy machine, every time: whether they sent no frame
// (counted from Open, as Keepalive documents) or sent one at any point between two pings. A
// peer is not cut before the shortest silence documented: timeout-interval after its last
// frame, the whole timeout after Open.
func TestKeepaliveCutsWithinBound(t *testing.T) {
	wstest.CheckGoroutines(t)
	const interval, conns = time.Second, 200
	const timeout = 2 * interval
	bound := timeout + time.Second
	// Connecting takes longer than a timeout on a busy machine: connect all, then serve all.
	peers := make([]*silentPeer, conns)
	for i := range peers {
		peers[i] = newSilentPeer(t)
	}
	for i, p := range peers {
		if i%2 == 0 {
			p.serve(t, Frames(echo, stamp[frame.Frame](p), AutoPong(&AutoPongOptions{Interval: interval})))
		} else {
			p.serve(t, Messages(Text, echoText, stamp[string](p), Keepalive(interval, 0)))
		}
	}
	// Half the peers send one frame each, at times spread over an interval, so that their last
	// frames fall at every point between two of the server's reads of the count; never before
	// Open, from which Keepalive counts.
	start := time.Now()
	for i := 1; i < conns; i += 2 {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval / conns)))
		p := peers[i]
		select {
		case <-p.opened:
		case <-time.After(wait):
			t.Fatalf("peer %d not opened", i)
		}
		p.mu.Lock()
		p.last = time.Now()
		p.mu.Unlock()
		if _, err := p.conn.SendFrame(true, frame.OpText, []byte("last words")); err != nil {
			t.Fatalf("peer %d: %v", i, err)
		}
	}
	// cut: from the last frame to the peer seeing the end; open: from serve to Open;
	// seen: from Closed to the peer seeing the end.
	var silent, spoke, open, seen []time.Duration
	for i, p := range peers {
		var cut time.Time
		select {
		case cut = <-p.cut:
		case <-time.After(2*bound + wait):
			t.Fatalf("peer %d not cut", i)
		}
		if err := p.s.result(); !errors.Is(err, transport.ErrClosed) {
			t.Errorf("peer %d: ServeConn: %v", i, err)
		}
		p.mu.Lock()
		d := cut.Sub(p.last)
		low := timeout
		if i%2 == 1 {
			low = timeout - interval
			spoke = append(spoke, d)
		} else {
			silent = append(silent, d)
		}
		if d > bound || d < low {
			t.Errorf("peer %d (sent %d frames) cut %v after its last frame, want %v to %v; opened %v after serving, closed %v after its last frame",
				i, i%2, d, low, bound, p.open.Sub(p.served), p.closed.Sub(p.last))
		}
		open, seen = append(open, p.open.Sub(p.served)), append(seen, cut.Sub(p.closed))
		p.mu.Unlock()
	}
	for _, c := range []struct {
		name string
		d    []time.Duration
	}{
		{"cut after Open, peers that sent no frame", silent},
		{"cut after the last frame, peers that sent one", spoke},
		{"from serving to Open", open},
		{"from Closed to the peer seeing the end", seen},
	} {
		slices.Sort(c.d)
		t.Logf("%s: p50 %v, max %v (%d connections, interval %v, bound %v)",
			c.name, c.d[len(c.d)/2].Round(time.Millisecond), c.d[len(c.d)-1].Round(time.Millisecond), len(c.d), interval, bound)
	}
}

// rtts is a transport.Observer that keeps the round trips reported.
type rtts struct {
	mu sync.Mutex
	d  []time.Duration
}

func (r *rtts) Received(int64, int64)                  {}
func (r *rtts) Sent(int64, int64)                      {}
func (r *rtts) FlushReceived()                         {}
func (r *rtts) FlushSent()                             {}
func (r *rtts) Closed(frame.CloseCode, transport.Side) {}
func (r *rtts) Pinged(d time.Duration) {
	r.mu.Lock()
	r.d = append(r.d, d)
	r.mu.Unlock()
}

func (r *rtts) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.d)
}

// Keepalive's pings are timed: the server's Observer gets the round trip of each one the
// client answers, at both layers.
func TestKeepaliveRoundTrips(t *testing.T) {
	for _, tc := range keepaliveEchoes(20*time.Millisecond, time.Second) {
		t.Run(tc.name, func(t *testing.T) {
			obs := &rtts{}
			client, server := pair(t, transport.Setup{Observer: obs})
			runOn(t, context.Background(), tc.h, client, server)
			go client.ReadMessage(context.Background(), nil) // answers the pings
			deadline := time.Now().Add(10 * time.Second)
			for obs.len() < 3 {
				if time.Now().After(deadline) {
					t.Fatalf("%d round trips reported in 10 s of pings every 20 ms", obs.len())
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}
