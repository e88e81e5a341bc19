package interop

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// goServer runs an in-process peer server (gorilla or coder) over ws:// and wss:// on
// 127.0.0.1. Cleanup closes the servers and every hijacked connection, then waits for the
// handlers.
type goServer struct {
	events *eventLog
	mu     sync.Mutex
	conns  map[io.Closer]bool
	wg     sync.WaitGroup
}

// startGoServer serves handle on both schemes; handle gets the behaviour (the first path
// segment) and must call g.track on its connection.
func startGoServer(t *testing.T, handle func(g *goServer, w http.ResponseWriter, r *http.Request, behaviour string)) *peerServer {
	t.Helper()
	g := &goServer{events: newEventLog(), conns: map[io.Closer]bool{}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.wg.Add(1)
		defer g.wg.Done()
		behaviour, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		handle(g, w, r, behaviour)
	})
	ln, tln := listen(t), listen(t)
	quiet := log.New(io.Discard, "", 0) // TLS handshake errors are expected from wss-untrusted
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: quiet}
	tsrv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, TLSConfig: serverTLS(t), ErrorLog: quiet}
	go srv.Serve(ln)
	go tsrv.ServeTLS(tln, "", "")
	t.Cleanup(func() {
		srv.Close()
		tsrv.Close()
		g.mu.Lock()
		for c := range g.conns {
			c.Close()
		}
		g.mu.Unlock()
		g.wg.Wait()
	})
	return &peerServer{url: "ws://" + ln.Addr().String(), tlsURL: "wss://" + tln.Addr().String(), events: g.events}
}

// track registers a connection for cleanup; the returned func unregisters it.
func (g *goServer) track(c io.Closer) func() {
	g.mu.Lock()
	g.conns[c] = true
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		delete(g.conns, c)
		g.mu.Unlock()
	}
}

// goMsg is one result of a Go peer client's reader goroutine.
type goMsg struct {
	text bool
	data []byte
	err  error
}

// goClient is the part of a Go peer client that does not depend on the library: a reader
// goroutine feeding msgs, and the report.
type goClient struct {
	log  *eventLog
	msgs chan goMsg
	last error // the error that ended the reader, once seen
}

func newGoClient() *goClient {
	return &goClient{log: newEventLog(), msgs: make(chan goMsg, 16)}
}

// startReader runs read in a goroutine until it fails, feeding msgs, which it then closes.
func (g *goClient) startReader(read func() (bool, []byte, error)) {
	go func() {
		defer close(g.msgs)
		for {
			text, data, err := read()
			g.msgs <- goMsg{text, data, err}
			if err != nil {
				return
			}
		}
	}()
}

// next returns the next message, or the error that ended the reader.
func (g *goClient) next() goMsg {
	if g.last != nil {
		return goMsg{err: g.last}
	}
	select {
	case m, ok := <-g.msgs:
		if !ok {
			g.last = fmt.Errorf("reader ended")
			return goMsg{err: g.last}
		}
		if m.err != nil {
			g.last = m.err
		}
		return m
	case <-time.After(scenarioTimeout):
		g.last = fmt.Errorf("no message within %v", scenarioTimeout)
		return goMsg{err: g.last}
	}
}

// untilError reads until the reader fails and returns that error.
func (g *goClient) untilError() error {
	for {
		if m := g.next(); m.err != nil {
			return m.err
		}
	}
}

// drain waits for the reader goroutine to end; the connection must be closed already.
func (g *goClient) drain() {
	for range g.msgs {
	}
}

// expect checks that the next message is text or binary with the given payload.
func (g *goClient) expect(name string, text bool, want []byte) {
	m := g.next()
	ok := m.err == nil && m.text == text && string(m.data) == string(want)
	g.log.check(name, ok, "got text=%v %d bytes err=%v, want text=%v %d bytes", m.text, len(m.data), m.err, text, len(want))
}

func (g *goClient) report() peerReport {
	g.log.add(event{Ev: "done"})
	return peerReport(g.log.all())
}

// ctxTimeout is a context bounded by scenarioTimeout.
func ctxTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), scenarioTimeout)
}
