package hub_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/hub/hubtest"
	"github.com/ecows/ecows/metrics"
)

// scrape returns the Registry's text.
func scrape(g *metrics.Registry) string {
	var b bytes.Buffer
	g.WriteText(&b)
	return b.String()
}

// TestMetrics checks what a hub reports to its Recorder: queue depth while a member does not
// read, the broker link's state, and nothing once the hub is closed.
func TestMetrics(t *testing.T) {
	var g metrics.Registry
	f := hubtest.NewFake()
	h, err := hub.New(&hub.Options{NodeID: "n1", Broker: f.Link(t), Metrics: &g, QueueLen: -1})
	if err != nil {
		t.Fatal(err)
	}
	c, s := hubtest.Pipe(t, nil) // net.Pipe: a member that does not read holds its messages
	if err := h.Join(s, "r"); err != nil {
		t.Fatal(err)
	}
	// The writer takes the first message and blocks on the pipe; the next wait in the queue.
	h.Broadcast("r", frame.OpText, []byte("x"))
	deadline := time.Now().Add(10 * time.Second)
	for h.Stats().Queued != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the writer did not take the first message in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for range 4 {
		h.Broadcast("r", frame.OpText, []byte("x"))
	}
	for h.Stats().Queued != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("queued %d, want 4", h.Stats().Queued)
		}
		time.Sleep(5 * time.Millisecond)
	}
	text := scrape(&g)
	for _, line := range []string{
		`ecows_hub_queued_messages{hub="n1"} 4`,
		`ecows_hub_connections{hub="n1"} 1`,
		`ecows_hub_rooms{hub="n1"} 1`,
		`ecows_hub_encoded_total{hub="n1"} 5`,
		`ecows_hub_broker_up{hub="n1"} 1`,
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("no %s in\n%s", line, text)
		}
	}
	f.Kill(t)
	for h.Stats().LinkUp {
		if time.Now().After(deadline) {
			t.Fatal("link still up 10 s after the engine died")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if text := scrape(&g); !strings.Contains(text, `ecows_hub_broker_up{hub="n1"} 0`+"\n") {
		t.Errorf("broker still up in\n%s", text)
	}
	f.Restart(t)
	for range 5 {
		recv(t, c) // lets the writer finish, so that Close does not wait for its write deadline
	}
	h.Close()
	if text := scrape(&g); strings.Contains(text, "ecows_hub_") {
		t.Errorf("closed hub still reported:\n%s", text)
	}
}
