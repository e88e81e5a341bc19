package reliability

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/internal/wstest/dialtest"
	"github.com/ecows/ecows/middleware"
	"github.com/ecows/ecows/transport"
)

// connFunc adapts a function to middleware.ConnHandler.
type connFunc func(ctx context.Context, c *transport.Conn) error

func (f connFunc) ServeConn(ctx context.Context, c *transport.Conn) error { return f(ctx, c) }

// A peer that vanishes in the middle of a frame (a TCP reset: SO_LINGER 0, then close) frees
// its server connection at once, not after CloseTimeout or WriteTimeout.
func TestPeerResetMidFrame(t *testing.T) {
	for _, layer := range []struct {
		name string
		h    middleware.ConnHandler
	}{{"frames", echoFrames(0, 0)}, {"messages", echoMessages()}} {
		t.Run(layer.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			rec := record(layer.h)
			srv := startServer(t, rec, nil)
			_, raw := dialRaw(t, srv.URL)
			srv.waitConns(t, 1, 5*time.Second)

			// A frame that announces 1000 bytes, of which 100 arrive.
			wire := clientFrame(nil, true, frame.OpBinary, make([]byte, 1000))
			if _, err := raw.Write(wire[:8+100]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond) // the server is now inside the payload
			if err := raw.SetLinger(0); err != nil {
				t.Fatal(err)
			}
			raw.Close()
			reset := time.Now()

			e := rec.next(t, 10*time.Second)
			freed := e.at.Sub(reset)
			if !errors.Is(e.err, syscall.ECONNRESET) || transport.CloseStatus(e.err) != frame.CloseAbnormal {
				t.Errorf("ServeConn returned %v, want a 1006 CloseError for a connection reset", e.err)
			}
			if freed > time.Second {
				t.Errorf("connection freed %v after the reset", freed)
			}
			srv.waitConns(t, 0, time.Second)
			t.Logf("freed %v after the reset: %v", freed.Round(time.Microsecond), e.err)
		})
	}
}

// freezeProxy forwards TCP connections to target until Freeze, after which it forwards
// nothing more and closes nothing: both ends see a peer that is there but says nothing, as
// when a NAT box drops its state or a laptop sleeps.
type freezeProxy struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	thaw   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func startProxy(t testing.TB, target string) *freezeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{ln: ln, target: target, thaw: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

func (p *freezeProxy) accept() {
	defer p.wg.Done()
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			a.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, a, b)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(a, b)
		go p.pipe(b, a)
	}
}

func (p *freezeProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if p.frozen.Load() {
			<-p.thaw
			return
		}
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			dst.(*net.TCPConn).CloseWrite()
			return
		}
	}
}

func (p *freezeProxy) Addr() string { return p.ln.Addr().String() }

func (p *freezeProxy) Freeze() { p.frozen.Store(true) }

// Close thaws the proxy and closes every connection.
func (p *freezeProxy) Close() {
	p.Freeze()
	select {
	case <-p.thaw:
	default:
		close(p.thaw)
	}
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// A half-open peer, one that sends no FIN and no reset but nothing else either, is found by
// the keepalive pings of AutoPong and closed; a live peer behind the same proxy is not.
func TestHalfOpenPeerFoundByKeepalive(t *testing.T) {
	const interval, timeout = 100 * time.Millisecond, 400 * time.Millisecond

	t.Run("frozen proxy", func(t *testing.T) {
		wstest.CheckGoroutines(t)
		rec := record(echoFrames(interval, timeout))
		srv := startServer(t, rec, nil)
		proxy := startProxy(t, srv.Addr)
		c := dialtest.Dial(t, "ws://"+proxy.Addr()+"/ws", nil)
		// The client reads, which answers the server's pings.
		read := readAll(c)
		srv.waitConns(t, 1, 5*time.Second)
		time.Sleep(3 * timeout)
		if srv.WS.Len() != 1 {
			t.Fatalf("a live peer was dropped: %v", rec.next(t, time.Second).err)
		}
		proxy.Freeze()
		frozen := time.Now()
		e := rec.next(t, 10*time.Second)
		found := e.at.Sub(frozen)
		if !errors.Is(e.err, transport.ErrClosed) {
			t.Errorf("ServeConn returned %v, want ErrClosed after the keepalive timeout", e.err)
		}
		// The last pong came at most an interval before the freeze, and Keepalive cuts a peer
		// between timeout-interval and timeout after its last frame.
		if found < timeout-2*interval-50*time.Millisecond || found > timeout+time.Second {
			t.Errorf("half-open peer closed %v after it froze; keepalive interval %v, timeout %v", found, interval, timeout)
		}
		srv.waitConns(t, 0, time.Second)
		proxy.Close()
		<-read
		t.Logf("half-open peer closed %v after it froze (interval %v, timeout %v)", found.Round(time.Millisecond), interval, timeout)
	})

	t.Run("silent client", func(t *testing.T) {
		wstest.CheckGoroutines(t)
		rec := record(echoFrames(interval, timeout))
		srv := startServer(t, rec, nil)
		start := time.Now()
		_, raw := dialRaw(t, srv.URL) // and never reads nor writes
		e := rec.next(t, 10*time.Second)
		found := e.at.Sub(start)
		if !errors.Is(e.err, transport.ErrClosed) || found < timeout || found > timeout+time.Second {
			t.Errorf("silent client: ServeConn returned %v after %v", e.err, found)
		}
		// What the server sent meanwhile is still there to read: pings, then 1011.
		code, err := readClose(raw, bufio.NewReader(raw), 5*time.Second)
		if err != nil || code != frame.CloseInternalError {
			t.Errorf("silent client got close %d, %v; want 1011 keepalive timeout", code, err)
		}
		t.Logf("silent client closed %v after it connected", found.Round(time.Millisecond))
	})
}

// A reader that stops reading makes the server's writes time out, which closes that
// connection and no other, and the server's memory does not grow meanwhile: a write blocks on
// the socket, nothing queues behind it.
func TestStoppedReaderTimesOut(t *testing.T) {
	wstest.CheckGoroutines(t)
	const writeTimeout = 300 * time.Millisecond
	payload := bytes.Repeat([]byte{0xab}, 64<<10)
	var pushed atomic.Int64
	push := connFunc(func(ctx context.Context, c *transport.Conn) error {
		// Read too, so that a close frame would be answered.
		reading := make(chan struct{})
		go func() {
			defer close(reading)
			for {
				if _, err := c.RecvFrame(0); err != nil {
					return
				}
			}
		}()
		defer func() { <-reading }()
		for {
			n, err := c.WriteMessage(context.Background(), frame.OpBinary, payload)
			pushed.Add(int64(n))
			if err != nil {
				c.CloseNow()
				return err
			}
		}
	})
	rec := record(push)
	echo := echoFrames(0, 0)
	mux := connFunc(func(ctx context.Context, c *transport.Conn) error {
		if q, _ := ctx.Value(queryKey{}).(url.Values); q.Get("push") != "" {
			return rec.ServeConn(ctx, c)
		}
		return echo.ServeConn(ctx, c)
	})
	srv := startServer(t, mux, &handshake.ServerOptions{Options: transport.Options{WriteTimeout: writeTimeout}})

	// A healthy client echoes all along.
	healthy := dialtest.Dial(t, srv.URL, nil)
	stopEcho := make(chan struct{})
	echoed := make(chan error, 1)
	var roundTrips atomic.Int64
	go func() {
		msg := []byte("still here")
		for {
			select {
			case <-stopEcho:
				echoed <- nil
				return
			default:
			}
			if err := roundTrip(healthy, msg); err != nil {
				echoed <- err
				return
			}
			roundTrips.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	}()

	mem0 := liveMemory()
	sampler := wstest.SampleHeap(t, 20*time.Millisecond)
	start := time.Now()
	dialRawBuf(t, srv.URL+"?push=1", 4<<10) // and never reads
	e := rec.next(t, 20*time.Second)
	took := e.at.Sub(start)
	peak := sampler.Stop()

	if !errors.Is(e.err, os.ErrDeadlineExceeded) {
		t.Errorf("stuck reader: ServeConn returned %v, want a write timeout", e.err)
	}
	if took > 10*time.Second {
		t.Errorf("stuck reader closed after %v with WriteTimeout %v", took, writeTimeout)
	}
	if grew := signedDiff(peak, mem0.heap); grew > 16<<20 {
		t.Errorf("heap grew by %s while the server wrote to a stuck reader", mib(uint64(grew)))
	}
	srv.waitConns(t, 1, time.Second) // the healthy one
	n := roundTrips.Load()
	close(stopEcho)
	if err := <-echoed; err != nil {
		t.Fatalf("healthy connection failed after %d round trips: %v", n, err)
	}
	if err := roundTrip(healthy, []byte("after")); err != nil || n == 0 {
		t.Fatalf("healthy connection: %d round trips, then %v", n, err)
	}
	t.Logf("stuck reader closed %v after connecting, %s written before the socket buffers filled; heap peak %+d bytes over the baseline; %d round trips on the healthy connection meanwhile",
		took.Round(time.Millisecond), mib(uint64(pushed.Load())), signedDiff(peak, mem0.heap), n)
}

// roundTrip sends msg and expects it back within 5 s.
func roundTrip(c *transport.Conn, msg []byte) error {
	if _, err := c.WriteMessage(context.Background(), frame.OpBinary, msg); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, got, err := c.ReadMessage(ctx, nil)
	if err == nil && !bytes.Equal(got, msg) {
		err = fmt.Errorf("echo %q, want %q", got, msg)
	}
	return err
}

// A handshake sent one byte per second (slowloris) is cut off by the header timeout of the
// http.Server that "ecows serve" runs (ReadHeaderTimeout 10 s), long before it is complete.
func TestSlowlorisHandshake(t *testing.T) {
	t.Parallel()
	addr := ecowsServe(t)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := upgradeRequest(addr)
	start := time.Now()
	type cut struct {
		at   time.Time
		got  []byte
		err  error
		sent int
	}
	var sent atomic.Int64
	closed := make(chan cut, 1)
	go func() {
		nc.SetReadDeadline(start.Add(30 * time.Second))
		got, err := io.ReadAll(nc)
		closed <- cut{time.Now(), got, err, int(sent.Load())}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var c cut
loop:
	for i := 0; i < len(req); i++ {
		if _, err := nc.Write([]byte{req[i]}); err != nil {
			break
		}
		sent.Add(1)
		select {
		case c = <-closed:
			break loop
		case <-tick.C:
		}
	}
	if c.at.IsZero() {
		c = <-closed
	}
	after := c.at.Sub(start)
	var ne net.Error
	if errors.As(c.err, &ne) && ne.Timeout() {
		t.Fatalf("the server still held the connection after 30 s, %d of %d bytes sent", c.sent, len(req))
	}
	if after < 9*time.Second || after > 15*time.Second || c.sent >= len(req) {
		t.Fatalf("connection cut after %v and %d of %d bytes; want about 10 s (ReadHeaderTimeout)", after, c.sent, len(req))
	}
	t.Logf("slowloris cut after %v, %d of %d header bytes sent; the server answered %q", after.Round(time.Millisecond), c.sent, len(req), c.got)
}

// A close arriving while 16 goroutines send, in every form, ends every send with an error,
// never a panic, a hang or an interleaved frame: the server, reading with RecvFrame, would
// answer a broken stream with a protocol error.
func TestCloseWhileSending(t *testing.T) {
	for _, tc := range []struct {
		name  string
		close func(server, client *transport.Conn) // run 200 ms into the sending
	}{
		{"peer close", func(s, _ *transport.Conn) { s.Close(frame.CloseNormal, "enough") }},
		{"local close", func(_, c *transport.Conn) { c.Close(frame.CloseNormal, "done") }},
		{"local CloseNow", func(_, c *transport.Conn) { c.CloseNow() }},
		{"peer drops TCP", func(s, _ *transport.Conn) { s.CloseNow() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			serverConn := make(chan *transport.Conn, 1)
			rec := record(connFunc(func(ctx context.Context, c *transport.Conn) error {
				serverConn <- c
				for {
					if _, err := c.RecvFrame(0); err != nil {
						return err
					}
				}
			}))
			srv := startServer(t, rec, nil)
			c := dialtest.Dial(t, srv.URL, nil)
			server := <-serverConn
			reading := readAll(c)

			text := []byte(strings.Repeat("ü", 500))
			big := make([]byte, 100<<10) // fragmented at MaxPayloadLen
			sends := []func() error{
				func() error { _, err := c.WriteMessage(context.Background(), frame.OpText, text); return err },
				func() error { _, err := c.SendBinary(text[:100]); return err },
				func() error { _, err := c.WriteMessage(context.Background(), frame.OpBinary, big); return err },
				func() error {
					w, err := c.NextWriter(context.Background(), frame.OpBinary)
					if err != nil {
						return err
					}
					for range 3 {
						if _, err = w.Write(big[:3000]); err != nil {
							break
						}
					}
					if cerr := w.Close(); err == nil {
						err = cerr
					}
					return err
				},
				func() error { _, err := c.SendPing([]byte("ping")); return err },
			}
			type result struct {
				n   int
				err error
			}
			results := make(chan result, 16)
			for i := range 16 {
				send := sends[i%len(sends)]
				go func() {
					n := 0
					for {
						if err := send(); err != nil {
							results <- result{n, err}
							return
						}
						n++
					}
				}()
			}
			time.Sleep(200 * time.Millisecond)
			closed := time.Now()
			tc.close(server, c)

			kinds := map[string]int{}
			total := 0
			for range 16 {
				select {
				case r := <-results:
					total += r.n
					kinds[errKind(r.err)]++
					if !closeErr(r.err) {
						t.Errorf("send ended with %v, which is not an error of a closed connection", r.err)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("a send still runs 10 s after the close")
				}
			}
			ended := time.Since(closed)
			if err := <-reading; !closeErr(err) {
				t.Errorf("the reader ended with %v", err)
			}
			e := rec.next(t, 10*time.Second)
			var pe *frame.ProtocolError
			if errors.As(e.err, &pe) {
				t.Errorf("the server found a broken stream: %v", e.err)
			}
			t.Logf("%d sends, then all 16 senders ended within %v of the close: %s; server: %v", total, ended.Round(time.Millisecond), describe(kinds), e.err)
		})
	}
}

// closeErr reports whether err is what a send or read may return once the connection is
// closing or closed.
func closeErr(err error) bool {
	var ce *transport.CloseError
	var ne net.Error
	switch {
	case err == nil:
		return false
	case errors.Is(err, transport.ErrClosed), errors.As(err, &ce), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET), errors.As(err, &ne):
		return true
	}
	return false
}

func errKind(err error) string {
	var ce *transport.CloseError
	switch {
	case errors.Is(err, transport.ErrClosed):
		return "ErrClosed"
	case errors.As(err, &ce):
		return fmt.Sprintf("CloseError %d", ce.Code)
	case errors.Is(err, net.ErrClosed):
		return "net.ErrClosed"
	case errors.Is(err, syscall.EPIPE):
		return "EPIPE"
	case errors.Is(err, syscall.ECONNRESET):
		return "ECONNRESET"
	}
	return fmt.Sprintf("%T", err)
}

func describe(kinds map[string]int) string {
	var parts []string
	for k, n := range kinds {
		parts = append(parts, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// router.Shutdown during load sends 1001 to every client and loses no message that a write had
// accepted: when WriteMessage returned nil on the server, the client received that message
// before the 1001. Each connection carries echoes of the client's numbered messages and
// numbered messages the server pushes from a goroutine of its own.
func TestShutdownUnderLoad(t *testing.T) {
	wstest.CheckGoroutines(t)
	const conns = 100

	// What the server accepted for sending, per client.
	type accepted struct{ echo, push atomic.Uint64 }
	var mu sync.Mutex
	server := map[uint64]*accepted{}

	h := connFunc(func(ctx context.Context, c *transport.Conn) error {
		var acc *accepted
		stop := make(chan struct{})
		pushing := make(chan struct{})
		push := func(id uint64) {
			defer close(pushing)
			msg := appendHex([]byte("P"), id, 16)
			for seq := uint64(0); ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.WriteMessage(context.Background(), frame.OpBinary, appendHex(msg[:17], seq, 16)); err != nil {
					return
				}
				acc.push.Store(seq + 1)
				time.Sleep(time.Millisecond)
			}
		}
		echo := middleware.HandlerFunc(func(_ context.Context, c *transport.Conn, m []byte) error {
			if acc == nil {
				id, _ := parseHex(m[1:17])
				acc = new(accepted)
				mu.Lock()
				server[id] = acc
				mu.Unlock()
				go push(id)
			}
			if _, err := c.WriteMessage(context.Background(), frame.OpBinary, m); err != nil {
				if errors.Is(err, transport.ErrClosed) {
					return nil // after our 1001: read on to the client's answer
				}
				return err
			}
			acc.echo.Add(1)
			return nil
		})
		err := middleware.Messages(middleware.Bytes, echo).ServeConn(ctx, c)
		close(stop)
		if acc != nil {
			<-pushing
		}
		return err
	})
	srv := startServer(t, h, nil)

	// Each client writes numbered messages with up to 8 unanswered, and reads everything.
	type client struct {
		id         uint64
		c          *transport.Conn
		echo, push uint64 // received, in order
		end        error
		sent       uint64
	}
	clients := make([]*client, conns)
	var wg sync.WaitGroup
	for i := range clients {
		cl := &client{id: uint64(i), c: dialtest.Dial(t, srv.URL, nil)}
		clients[i] = cl
		window := make(chan struct{}, 8)
		readDone := make(chan struct{})
		wg.Add(2)
		go func() { // writer
			defer wg.Done()
			msg := appendHex([]byte("E"), cl.id, 16)
			for seq := uint64(0); ; seq++ {
				select {
				case window <- struct{}{}:
				case <-readDone:
					return
				}
				if _, err := cl.c.WriteMessage(context.Background(), frame.OpBinary, appendHex(msg[:17], seq, 16)); err != nil {
					return
				}
				cl.sent++
			}
		}()
		go func() { // reader
			defer wg.Done()
			defer close(readDone)
			var buf []byte
			for {
				_, m, err := cl.c.ReadMessage(context.Background(), buf[:0])
				buf = m
				if err != nil {
					cl.end = err
					return
				}
				id, _ := parseHex(m[1:17])
				seq, _ := parseHex(m[17:33])
				switch {
				case len(m) != 33 || id != cl.id:
					cl.end = fmt.Errorf("garbled message %q", m)
					return
				case m[0] == 'E' && seq == cl.echo:
					cl.echo++
					<-window
				case m[0] == 'P' && seq == cl.push:
					cl.push++
				default:
					cl.end = fmt.Errorf("message %q out of order: %d echoes and %d pushes received before", m, cl.echo, cl.push)
					return
				}
			}
		}()
	}
	srv.waitConns(t, conns, 10*time.Second)
	time.Sleep(time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.WS.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	took := time.Since(start)
	wg.Wait()
	if n := srv.WS.Len(); n != 0 {
		t.Fatalf("%d connections left after Shutdown", n)
	}

	var echoes, pushes uint64
	mu.Lock()
	defer mu.Unlock()
	for _, cl := range clients {
		if code := transport.CloseStatus(cl.end); code != frame.CloseGoingAway {
			t.Errorf("client %d ended with %v, want close 1001", cl.id, cl.end)
			continue
		}
		acc := server[cl.id]
		if acc == nil {
			t.Errorf("client %d: the server never saw a message", cl.id)
			continue
		}
		if e, p := acc.echo.Load(), acc.push.Load(); cl.echo != e || cl.push != p {
			t.Errorf("client %d: server accepted %d echoes and %d pushes, client received %d and %d before the 1001",
				cl.id, e, p, cl.echo, cl.push)
		}
		echoes += cl.echo
		pushes += cl.push
	}
	t.Logf("Shutdown of %d loaded connections took %v; %d echoes and %d pushes accepted, all received before the 1001",
		conns, took.Round(time.Millisecond), echoes, pushes)
}
