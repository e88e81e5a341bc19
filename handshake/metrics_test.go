package handshake

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/metrics"
	"github.com/ecows/ecows/transport"
)

// handshakes is a metrics.Recorder that keeps the handshakes and counts the connections.
type handshakes struct {
	mu    sync.Mutex
	calls []string
	conns int
}

func (h *handshakes) Handshake(route string, status int, reason string) {
	h.mu.Lock()
	h.calls = append(h.calls, fmt.Sprintf("%s %d %s", route, status, reason))
	h.mu.Unlock()
}

func (h *handshakes) Conn(*http.Request, string) transport.Observer {
	h.mu.Lock()
	h.conns++
	h.mu.Unlock()
	return nil
}

func (h *handshakes) Hub(string, func() metrics.HubStats) func() { return nil }

// TestMetricsRefusals checks that each refusal is recorded once, with its status and its
// short reason, and that an accepted request is recorded as 101 with a connection.
func TestMetricsRefusals(t *testing.T) {
	tests := []struct {
		line   string
		mods   []string
		want   string
		hijack bool
	}{
		{line: "POST /ws HTTP/1.1", mods: []string{"Content-Length: 0"}, want: "/ws 405 method"},
		{line: "GET /ws HTTP/1.0", want: "/ws 400 http_version"},
		{mods: []string{"Content-Length: 5"}, want: "/ws 400 body"},
		{mods: []string{"Upgrade:"}, want: "/ws 400 upgrade_header"},
		{mods: []string{"Connection: keep-alive"}, want: "/ws 400 connection_header"},
		{mods: []string{"Sec-WebSocket-Version: 8"}, want: "/ws 426 version"},
		{mods: []string{"Sec-WebSocket-Key:"}, want: "/ws 400 key"},
		{mods: []string{"Sec-WebSocket-Key: !!"}, want: "/ws 400 key"},
		{mods: []string{"Sec-WebSocket-Extensions: permessage-deflate; =1"}, want: "/ws 400 extensions"},
		{mods: []string{"Origin: https://evil.example"}, want: "/ws 403 origin"},
		{want: "/ws 500 hijack"},         // httptest's recorder cannot be hijacked
		{want: "/ws 101 ", hijack: true}, // accepted
	}
	for _, tc := range tests {
		rec := &handshakes{}
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(rawRequest(tc.line, tc.mods...))))
		if err != nil {
			t.Fatal(err)
		}
		var w http.ResponseWriter = httptest.NewRecorder()
		if tc.hijack {
			w = newHijackWriter("")
		}
		Upgrade(w, r, &ServerOptions{Metrics: rec, Route: "/ws"})
		wantConns := 0
		if tc.hijack {
			wantConns = 1
		}
		if !slices.Equal(rec.calls, []string{tc.want}) || rec.conns != wantConns {
			t.Errorf("%s %q: recorded %q and %d connections, want [%s] and %d", tc.line, tc.mods, rec.calls, rec.conns, tc.want, wantConns)
		}
	}
}

// TestRefusalLabels checks that every refusal has a label of its own kind, and that an
// unknown one is "other".
func TestRefusalLabels(t *testing.T) {
	for _, l := range refusalLabels {
		wrapped := &HandshakeError{Status: l.err.Status, Reason: l.err.Reason, Err: errors.New("cause")}
		if got := refusalLabel(wrapped); got != l.label {
			t.Errorf("%v: label %q, want %q", l.err, got, l.label)
		}
	}
	if got := refusalLabel(&HandshakeError{Status: 418, Reason: "teapot"}); got != "other" {
		t.Errorf("unknown refusal: %q", got)
	}
}

// TestMetricsConn checks that an accepted connection reports its messages and its close to
// the Registry, over a real server.
func TestMetricsConn(t *testing.T) {
	var g metrics.Registry
	srv := quietServer(t, echoHandler(&ServerOptions{Metrics: &g, Route: "/echo"}), false)
	c, _, err := Dial(context.Background(), wsURL(srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		c.WriteMessage(context.Background(), frame.OpText, []byte("hello"))
		if _, _, err := c.ReadMessage(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	c.Close(frame.CloseNormal, "")
	want := map[string]float64{
		"ecows_handshakes_total":         1,
		"ecows_messages_total":           6, // in and out
		"ecows_connections_closed_total": 1,
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := map[string]float64{}
		for _, f := range g.Gather() {
			for _, m := range f.Metrics {
				if m.Labels[len(m.Labels)-1].Value == "/echo" || f.Name == "ecows_handshakes_total" || f.Name == "ecows_connections_closed_total" {
					got[f.Name] += m.Value
				}
			}
		}
		ok := true
		for name, n := range want {
			ok = ok && got[name] == n
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
