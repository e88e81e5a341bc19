package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/compressflag"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

// fakeSuite is a tiny stand-in for the fuzzing server: two cases, each sending a text and a
// fragmented binary message and checking that they come back. With compression set it
// agrees to permessage-deflate, pads the text message to be worth compressing, and checks
// that its echo comes back compressed (RSV1).
type fakeSuite struct {
	compression *transport.CompressionOptions

	mu      sync.Mutex
	cases   []string // "case agent: result" for each case run
	reports []string // agents whose reports were asked for
}

func (s *fakeSuite) handler() http.Handler {
	opts := &handshake.ServerOptions{Options: transport.Options{Compression: s.compression}}
	pad := ""
	if s.compression != nil {
		pad = strings.Repeat(" and some text to compress", 40)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/getCaseCount", func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.WriteMessage(context.Background(), frame.OpText, []byte("2"))
		c.Close(frame.CloseNormal, "")
	})
	mux.HandleFunc("/runCase", func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		result := "ok"
		text := "case " + r.URL.Query().Get("case") + pad
		c.WriteMessage(context.Background(), frame.OpText, []byte(text))
		c.SendFrame(false, frame.OpBinary, []byte{1, 2})
		c.SendPing([]byte("ping"))
		c.SendFrame(true, frame.OpContinuation, []byte{3})
		// The client echoes a message in one frame, compressed when that was agreed.
		if f, err := c.RecvFrame(5 * time.Second); err != nil || !f.Fin || f.Opcode != frame.OpText || string(f.Payload) != text {
			result = "bad echo"
		} else if f.Rsv1 != (s.compression != nil) {
			result = fmt.Sprintf("compressed: %v", f.Rsv1)
		}
		if op, msg, err := c.ReadMessage(ctx, nil); err != nil || op != frame.OpBinary || string(msg) != "\x01\x02\x03" {
			result = "bad echo"
		}
		s.mu.Lock()
		s.cases = append(s.cases, r.URL.Query().Get("case")+" "+r.URL.Query().Get("agent")+": "+result)
		s.mu.Unlock()
		c.Close(frame.CloseNormal, "") // after the record: the client goes on once it has closed
	})
	mux.HandleFunc("/updateReports", func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		s.mu.Lock()
		s.reports = append(s.reports, r.URL.Query().Get("agent"))
		s.mu.Unlock()
		c.Close(frame.CloseNormal, "")
	})
	return mux
}

func TestRunAgainstFakeSuite(t *testing.T) {
	suite := &fakeSuite{}
	srv := httptest.NewServer(suite.handler())
	defer srv.Close()
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := run(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), "ecows test&co", dialOptions(nil), &out); err != nil {
		t.Fatal(err)
	}
	suite.mu.Lock()
	defer suite.mu.Unlock()
	if got := strings.Join(suite.cases, "; "); got != "1 ecows test&co: ok; 2 ecows test&co: ok" {
		t.Errorf("cases: %s", got)
	}
	if len(suite.reports) != 1 || suite.reports[0] != "ecows test&co" {
		t.Errorf("reports: %q", suite.reports)
	}
	if want := "case 1/2\ncase 2/2\nreports updated for agent ecows test&co\n"; out.String() != want {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestRunWithoutSuite(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	err := run(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), "ecows", dialOptions(nil), &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "getCaseCount") || !strings.Contains(err.Error(), "404") {
		t.Fatalf("got %v", err)
	}
}

// TestRunCompressed runs the client in each -compress mode against a fake suite that agrees
// to permessage-deflate with context takeover when offered: every case's line shows the
// agreement the mode stands for, and the suite got its messages back, compressed.
func TestRunCompressed(t *testing.T) {
	wstest.CheckGoroutines(t)
	for _, tc := range []struct {
		mode, ext string
	}{
		{"on", "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{"takeover", "permessage-deflate"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			suite := &fakeSuite{compression: &transport.CompressionOptions{ContextTakeover: true}}
			srv := httptest.NewServer(suite.handler())
			defer srv.Close()
			var out strings.Builder
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			o, _ := compressflag.Options(tc.mode)
			if err := run(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), "ecows", dialOptions(o), &out); err != nil {
				t.Fatal(err)
			}
			suite.mu.Lock()
			defer suite.mu.Unlock()
			if got := strings.Join(suite.cases, "; "); got != "1 ecows: ok; 2 ecows: ok" {
				t.Errorf("cases: %s", got)
			}
			want := "case 1/2 (" + tc.ext + ")\ncase 2/2 (" + tc.ext + ")\nreports updated for agent ecows\n"
			if out.String() != want {
				t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
			}
		})
	}
}
