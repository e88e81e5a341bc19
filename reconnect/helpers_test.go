package reconnect

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/wstest/echotest"
	"github.com/ecows/ecows/transport"
)

// server is an ecows echo server on 127.0.0.1 whose answer the test sets: mode is "echo",
// "status N" (refuse the handshake with N) or "close N" (upgrade, then close with N).
type server struct {
	*httptest.Server
	mode  atomic.Value // string
	mu    sync.Mutex
	conns map[*transport.Conn]bool
	wg    sync.WaitGroup
}

func newServer(t *testing.T, mode string) *server {
	s := &server{conns: map[*transport.Conn]bool{}}
	s.mode.Store(mode)
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		s.Close()
		s.closeAll(0)
		s.wg.Wait()
	})
	return s
}

func (s *server) url() string { return "ws" + strings.TrimPrefix(s.URL, "http") }

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	mode := s.mode.Load().(string)
	var n int
	if _, err := sscan(mode, "status", &n); err == nil {
		http.Error(w, "refused by the test", n)
		return
	}
	c, err := handshake.Upgrade(w, r, &handshake.ServerOptions{Options: transport.Options{CloseTimeout: time.Second}})
	if err != nil {
		return
	}
	s.mu.Lock()
	s.conns[c] = true
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.CloseNow()
		s.wg.Done()
	}()
	if _, err := sscan(mode, "close", &n); err == nil {
		c.Close(frame.CloseCode(n), "closed by the test")
		return
	}
	echotest.Echo(context.Background(), c)
}

// waitLive waits up to 10 s for the server to hold n live connections.
func (s *server) waitLive(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		s.mu.Lock()
		live := len(s.conns)
		s.mu.Unlock()
		if live == n {
			return
		}
	}
	t.Fatalf("the server does not hold %d connections after 10 s", n)
}

// closeAll closes every live connection with code, or at once when code is 0.
func (s *server) closeAll(code frame.CloseCode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if code == 0 {
			c.CloseNow()
		} else {
			go c.Close(code, "closed by the test")
		}
	}
}

// sscan parses "word N".
func sscan(s, word string, n *int) (int, error) {
	rest, ok := strings.CutPrefix(s, word+" ")
	if !ok {
		return 0, io.EOF
	}
	v := 0
	for _, r := range rest {
		v = v*10 + int(r-'0')
	}
	*n = v
	return 1, nil
}

// proxy is a TCP proxy on 127.0.0.1 between the client and a server that injects faults:
// mode "pass" forwards, "refuse" closes each new connection at once, and closeAll, resetAll
// and stallAll act on the live ones.
type proxy struct {
	ln     net.Listener
	target string
	mode   atomic.Value // string
	mu     sync.Mutex
	links  map[*link]bool
	wg     sync.WaitGroup
}

type link struct {
	client, server net.Conn
	stalled        atomic.Bool // bytes are dropped both ways, as by a dead path
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, links: map[*link]bool{}}
	p.mode.Store("pass")
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) url() string { return "ws://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.mode.Load() == "refuse" {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		l := &link{client: c, server: s}
		p.mu.Lock()
		p.links[l] = true
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(l, c, s)
		go p.pipe(l, s, c)
	}
}

func (p *proxy) pipe(l *link, src, dst net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 4096)
	for {
		n, err := src.Read(buf)
		if n > 0 && !l.stalled.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	l.client.Close()
	l.server.Close()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

func (p *proxy) each(f func(l *link)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := range p.links {
		f(l)
	}
}

// closeAll ends every live connection with a FIN on both sides.
func (p *proxy) closeAll() { p.each(func(l *link) { l.client.Close(); l.server.Close() }) }

// resetAll ends every live connection with a TCP reset to the client.
func (p *proxy) resetAll() {
	p.each(func(l *link) {
		l.client.(*net.TCPConn).SetLinger(0)
		l.client.Close()
		l.server.Close()
	})
}

// stallAll makes every live connection drop what it carries, both ways.
func (p *proxy) stallAll() { p.each(func(l *link) { l.stalled.Store(true) }) }

// recorder collects the hooks' events.
type recorder struct {
	mu     sync.Mutex
	events []recorded
	notify chan struct{}
}

type recorded struct {
	connect bool
	at      time.Time
	Event
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) add(connect bool, e Event) {
	e.Conn = nil // the Conn is gone by the time the test looks
	r.mu.Lock()
	r.events = append(r.events, recorded{connect, time.Now(), e})
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) hook(opts *Options) *Options {
	opts.OnConnect = func(e Event) { r.add(true, e) }
	opts.OnDisconnect = func(e Event) { r.add(false, e) }
	return opts
}

func (r *recorder) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.events...)
}

// waitFor waits up to 10 s until f holds for the events so far.
func (r *recorder) waitFor(t *testing.T, what string, f func([]recorded) bool) []recorded {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ev := r.all()
		if f(ev) {
			return ev
		}
		select {
		case <-r.notify:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %s within 10 s; events: %+v", what, ev)
		}
	}
}

func count(ev []recorded, connect bool) int {
	n := 0
	for _, e := range ev {
		if e.connect == connect {
			n++
		}
	}
	return n
}

// readAll is a session that reads until its connection ends.
func readAll(ctx context.Context, c *transport.Conn) error {
	for {
		if _, _, err := c.ReadMessage(ctx, nil); err != nil {
			return err
		}
	}
}

// run is a Run going on in a goroutine.
type run struct {
	cancel context.CancelFunc
	res    chan error
	err    error
	ended  bool
}

// start runs Run in a goroutine, stopped at the end of the test if still running.
func start(t *testing.T, url string, session Session, opts *Options) *run {
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{cancel: cancel, res: make(chan error, 1)}
	go func() { r.res <- Run(ctx, url, session, opts) }()
	t.Cleanup(func() {
		if !r.ended {
			cancel()
			<-r.res
		}
	})
	return r
}

// wait returns Run's error, failing the test if it has not returned within 10 s.
func (r *run) wait(t *testing.T) error {
	t.Helper()
	if !r.ended {
		select {
		case r.err = <-r.res:
		case <-time.After(10 * time.Second):
			r.cancel()
			<-r.res
			t.Fatal("Run still running after 10 s")
		}
		r.ended = true
	}
	return r.err
}

// stop cancels Run's context and returns its error.
func (r *run) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.wait(t)
}
