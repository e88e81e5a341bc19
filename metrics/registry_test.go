package metrics

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// feed records a known pattern in r.
func feed(r Recorder) (stop func()) {
	r.Handshake("/a", 101, "")
	r.Handshake("/a", 101, "")
	r.Handshake("/a", 403, "origin")
	r.Handshake(`/b"\`, 200, "")
	a1, a2 := r.Conn(nil, "/a"), r.Conn(nil, "/a")
	b := r.Conn(nil, `/b"\`)
	a1.Received(10, 10)
	a1.Received(3000, 700)
	a2.Sent(100, 100)
	a1.FlushReceived()
	a2.FlushSent()
	a2.Pinged(3 * time.Millisecond)
	a1.Closed(4001, transport.SidePeer)
	a2.Closed(4002, transport.SideLocal)
	b.Closed(frame.CloseAbnormal, transport.SideNone)
	return r.Hub("node-1", func() HubStats {
		return HubStats{Conns: 2, Rooms: 1, Queued: 5, Encoded: 7, Written: 9, Dropped: 1, Evicted: 2, LinkUp: true}
	})
}

// TestRegistryText checks the text format line by line for a known pattern: names, types,
// label values (escaped), counts, cumulative buckets, grouped peer close codes.
func TestRegistryText(t *testing.T) {
	var g Registry
	feed(&g)
	var b bytes.Buffer
	if err := g.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	for _, line := range []string{
		"# TYPE ecows_handshakes_total counter",
		`ecows_handshakes_total{reason="",route="/a",status="101"} 2`,
		`ecows_handshakes_total{reason="origin",route="/a",status="403"} 1`,
		`ecows_handshakes_total{reason="",route="/b\"\\",status="200"} 1`,
		`ecows_connections_opened_total{route="/a"} 2`,
		`ecows_connections_open{route="/a"} 0`,
		`ecows_connections_closed_total{code="4xxx",route="/a",side="peer"} 1`,
		`ecows_connections_closed_total{code="4002",route="/a",side="local"} 1`,
		`ecows_connections_closed_total{code="1006",route="/b\"\\",side="none"} 1`,
		`ecows_messages_total{direction="in",route="/a"} 2`,
		`ecows_messages_total{direction="out",route="/a"} 1`,
		`ecows_message_bytes_total{direction="in",route="/a"} 3010`,
		`ecows_message_wire_bytes_total{direction="in",route="/a"} 710`,
		"# TYPE ecows_message_size_bytes histogram",
		`ecows_message_size_bytes_bucket{direction="in",route="/a",le="16"} 1`,
		`ecows_message_size_bytes_bucket{direction="in",route="/a",le="1024"} 1`,
		`ecows_message_size_bytes_bucket{direction="in",route="/a",le="4096"} 2`,
		`ecows_message_size_bytes_bucket{direction="in",route="/a",le="+Inf"} 2`,
		`ecows_message_size_bytes_sum{direction="in",route="/a"} 3010`,
		`ecows_message_size_bytes_count{direction="in",route="/a"} 2`,
		`ecows_ping_rtt_seconds_bucket{route="/a",le="0.0025"} 0`,
		`ecows_ping_rtt_seconds_bucket{route="/a",le="0.005"} 1`,
		`ecows_ping_rtt_seconds_sum{route="/a"} 0.003`,
		`ecows_ping_rtt_seconds_count{route="/a"} 1`,
		`ecows_hub_queued_messages{hub="node-1"} 5`,
		`ecows_hub_evicted_total{hub="node-1"} 2`,
		`ecows_hub_broker_up{hub="node-1"} 1`,
	} {
		if !strings.Contains(text, "\n"+line+"\n") {
			t.Errorf("no line %s in\n%s", line, text)
		}
	}
}

func TestRegistryServeHTTP(t *testing.T) {
	var g Registry
	remove := feed(&g)
	w := httptest.NewRecorder()
	g.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	if !strings.Contains(w.Body.String(), "ecows_hub_rooms{") {
		t.Error("no hub metrics")
	}
	remove()
	var b bytes.Buffer
	g.WriteText(&b)
	if strings.Contains(b.String(), "ecows_hub_") {
		t.Error("hub metrics left after remove")
	}
}

// TestMulti checks that Multi passes everything to each Recorder.
func TestMulti(t *testing.T) {
	var a, b Registry
	m := Multi(&a, nil, &b)
	remove := feed(m)
	var ta, tb bytes.Buffer
	a.WriteText(&ta)
	b.WriteText(&tb)
	if ta.String() != tb.String() || !strings.Contains(ta.String(), "ecows_hub_rooms") {
		t.Fatalf("the Recorders differ:\n%s\n---\n%s", ta.String(), tb.String())
	}
	remove()
	ta.Reset()
	a.WriteText(&ta)
	if strings.Contains(ta.String(), "ecows_hub_") {
		t.Error("hub left after remove")
	}
}

// TestRegistryConcurrent records from many goroutines while reading; run it with -race.
func TestRegistryConcurrent(t *testing.T) {
	var g Registry
	var wg sync.WaitGroup
	const workers, each = 8, 500
	for i := range workers {
		wg.Go(func() {
			o := g.Conn(nil, []string{"/x", "/y"}[i%2])
			for j := range each {
				o.Received(int64(j), int64(j))
				o.Sent(1, 1)
				if j%7 == 0 {
					o.FlushReceived()
				}
				if j%100 == 0 {
					g.Handshake("/x", 101, "")
					g.Gather()
				}
			}
			o.FlushReceived()
			o.FlushSent()
			o.Closed(frame.CloseNormal, transport.SideLocal)
		})
	}
	wg.Wait()
	var in, closed float64
	for _, f := range g.Gather() {
		for _, m := range f.Metrics {
			switch f.Name {
			case "ecows_messages_total":
				if m.Labels[0].Value == "in" {
					in += m.Value
				}
			case "ecows_connections_closed_total":
				closed += m.Value
			}
		}
	}
	if in != workers*each || closed != workers {
		t.Fatalf("%v messages in, %v closes; want %d and %d", in, closed, workers*each, workers)
	}
}

// TestObserverAllocs checks that recording a message or a ping allocates nothing.
func TestObserverAllocs(t *testing.T) {
	var g Registry
	o := g.Conn(nil, "/a")
	if n := testing.AllocsPerRun(100, func() {
		o.Received(100, 80)
		o.Sent(5000, 5000)
		o.FlushReceived()
		o.FlushSent()
		o.Pinged(time.Millisecond)
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func TestCloseLabel(t *testing.T) {
	for _, c := range []struct {
		code frame.CloseCode
		by   transport.Side
		want string
	}{
		{1000, transport.SidePeer, "1000"},
		{1006, transport.SideNone, "1006"},
		{2999, transport.SidePeer, "2999"},
		{3000, transport.SidePeer, "3xxx"},
		{4999, transport.SidePeer, "4xxx"},
		{4001, transport.SideLocal, "4001"},
	} {
		if got := CloseLabel(c.code, c.by); got != c.want {
			t.Errorf("CloseLabel(%d, %v) = %q, want %q", c.code, c.by, got, c.want)
		}
	}
}

// TestBatch checks that a connection's counts reach its route when flushed, or once a batch
// is full, and not before, and that what compression saved turns into wire bytes.
func TestBatch(t *testing.T) {
	var g Registry
	o := g.Conn(nil, "/a")
	count := func(name, dir string) float64 {
		for _, f := range g.Gather() {
			if f.Name == name {
				for _, m := range f.Metrics {
					if m.Labels[0].Value == dir {
						return m.Value
					}
				}
			}
		}
		return -1
	}
	for range batchLen - 1 {
		o.Received(100, 40)
	}
	if n := count("ecows_messages_total", "in"); n != 0 {
		t.Fatalf("%v messages visible before a flush", n)
	}
	o.Received(100, 40) // fills the batch
	if n := count("ecows_messages_total", "in"); n != batchLen {
		t.Fatalf("%v messages after a full batch, want %d", n, batchLen)
	}
	o.Received(1<<30, 1<<30)
	o.Sent(7, 7)
	o.FlushReceived()
	if n, b, w := count("ecows_messages_total", "in"), count("ecows_message_bytes_total", "in"), count("ecows_message_wire_bytes_total", "in"); n != batchLen+1 || b != 100*batchLen+1<<30 || w != 40*batchLen+1<<30 {
		t.Fatalf("in: %v messages, %v bytes, %v wire bytes", n, b, w)
	}
	if n := count("ecows_messages_total", "out"); n != 0 {
		t.Fatalf("FlushReceived made %v sent messages visible", n)
	}
	o.FlushSent()
	if n := count("ecows_messages_total", "out"); n != 1 {
		t.Fatalf("%v sent messages after FlushSent", n)
	}
}

// TestConnCountsSize bounds what the Registry adds to each connection: its connCounts, 96
// bytes with the allocator's rounding, on top of what transport keeps for an Observer.
func TestConnCountsSize(t *testing.T) {
	if got := unsafe.Sizeof(connCounts{}); got > 96 {
		t.Fatalf("connCounts weighs %d bytes", got)
	}
	var g Registry
	g.Conn(nil, "/a") // the route
	if n := testing.AllocsPerRun(100, func() { observerSink = g.Conn(nil, "/a") }); n != 1 {
		t.Fatalf("%v allocations per connection, want 1", n)
	}
}

var observerSink transport.Observer
