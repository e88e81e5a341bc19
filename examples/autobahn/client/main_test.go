package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
)

// fakeSuite is a tiny stand-in for the fuzzing server: two cases, each sending a text and a
// fragmented binary message and checking that they come back.
type fakeSuite struct {
	mu      sync.Mutex
	cases   []string // "case agent: result" for each case run
	reports []string // agents whose reports were asked for
}

func (s *fakeSuite) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/getCaseCount", func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.WriteMessage(context.Background(), frame.OpText, []byte("2"))
		c.Close(frame.CloseNormal, "")
	})
	mux.HandleFunc("/runCase", func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		result := "ok"
		c.WriteMessage(context.Background(), frame.OpText, []byte("case "+r.URL.Query().Get("case")))
		c.SendFrame(false, frame.OpBinary, []byte{1, 2})
		c.SendPing([]byte("ping"))
		c.SendFrame(true, frame.OpContinuation, []byte{3})
		for _, want := range []struct {
			op   frame.Opcode
			data string
		}{{frame.OpText, "case " + r.URL.Query().Get("case")}, {frame.OpBinary, "\x01\x02\x03"}} {
			op, msg, err := c.ReadMessage(ctx, nil)
			if err != nil || op != want.op || string(msg) != want.data {
				result = "bad echo"
			}
		}
		s.mu.Lock()
		s.cases = append(s.cases, r.URL.Query().Get("case")+" "+r.URL.Query().Get("agent")+": "+result)
		s.mu.Unlock()
		c.Close(frame.CloseNormal, "") // after the record: the client goes on once it has closed
	})
	mux.HandleFunc("/updateReports", func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, nil)
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
	if err := run(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), "ecows test&co", &out); err != nil {
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
	err := run(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), "ecows", &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "getCaseCount") || !strings.Contains(err.Error(), "404") {
		t.Fatalf("got %v", err)
	}
}
