package prometheus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/metrics"
	ecowsprom "github.com/ecows/ecows/metrics/prometheus"
	"github.com/ecows/ecows/router"
	"github.com/ecows/ecows/transport"
)

// connFunc serves a connection with a function.
type connFunc func(ctx context.Context, c *transport.Conn) error

func (f connFunc) ServeConn(ctx context.Context, c *transport.Conn) error { return f(ctx, c) }

const (
	echoRoute = "/echo/{id}"
	anyRoute  = "/any/{id}" // mounted for every method, so that Upgrade itself refuses a POST
	hubRoute  = "/hub/{room}"
	hubName   = "scrape"
	slowSize  = 60000 // under the client's MaxPayloadLen: one frame a message
	wait      = 30 * time.Second
)

// echoSizes are the sizes of the messages each echo client sends, one or more in each of
// several buckets of ecows_message_size_bytes, at the bounds and past them; 70000 is over
// MaxPayloadLen, so it goes out in fragments both ways.
var echoSizes = []int{0, 16, 17, 64, 200, 1024, 5000, 70000}

// sizeBounds are the bucket bounds of ecows_message_size_bytes, but +Inf.
var sizeBounds = []float64{16, 64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20}

// TestScrape drives a known pattern through a real server on 127.0.0.1 (chi, router.Handle,
// handshake.ServerOptions.Metrics, a hub with Options.Metrics) and checks that both the
// Registry's own /metrics and promhttp over the Collector count exactly what was driven:
// handshakes accepted and refused by route, status and reason, connections opened and closed
// by route, close code and side, messages and bytes each way with their size buckets, one
// ping, and the hub's counts with one slow consumer evicted. It is issue 24's first
// Done-when line.
func TestScrape(t *testing.T) {
	before := runtime.NumGoroutine()
	g := new(metrics.Registry)
	h, err := hub.New(&hub.Options{NodeID: hubName, Metrics: g, QueueLen: 4, OnSlow: hub.SlowEvict})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(ecowsprom.NewCollector(g))

	ws := router.New()
	ws.CloseOnShutdown(h)
	pinged := make(chan error, 1)
	r := chi.NewRouter()
	echoOpts := &handshake.ServerOptions{Metrics: g}
	echo := echoHandler(pinged)
	ws.Handle(r, echoRoute, echo, echoOpts)
	r.Handle(anyRoute, ws.Handler(echo, echoOpts))
	// The slow consumer's last write waits for it to read again: a generous write timeout,
	// so that the wait cannot end it on a busy machine.
	ws.Handle(r, hubRoute, hubHandler(h), &handshake.ServerOptions{Metrics: g, Options: transport.Options{WriteTimeout: wait}})
	r.Handle("/metrics", g)
	r.Handle("/prom", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(r)
	defer srv.Close()
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http")
	hc := &http.Client{Transport: &http.Transport{}, Timeout: wait}
	defer hc.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()

	// Five echo connections, each closed its own way.
	closes := []struct {
		id    string
		close func(t *testing.T, c *transport.Conn)
	}{
		{"a", closeWith(frame.CloseNormal)}, // and its server pings it once
		{"b", closeWith(frame.CloseNormal)},
		{"c", closeWith(4001)},
		{"d", func(t *testing.T, c *transport.Conn) { // the server closes with 4002
			_, _, err := c.ReadMessage(ctx, nil)
			if ce := (*transport.CloseError)(nil); !errors.As(err, &ce) || ce.Code != 4002 {
				t.Errorf("d: %v, want the server's close 4002", err)
			}
			c.CloseNow()
		}},
		{"e", func(t *testing.T, c *transport.Conn) { c.CloseNow() }}, // no close frame
	}
	for _, tc := range closes {
		c, _, err := handshake.Dial(ctx, wsURL+"/echo/"+tc.id, nil)
		if err != nil {
			t.Fatalf("dial %s: %v", tc.id, err)
		}
		// On "a", the server's text "pinged" says that its Ping got its pong (which these
		// reads answer); the client waits for it, so that the count of round trips does not
		// depend on timing. It comes between any two echoes, or after the last.
		waitPing := tc.id == "a"
		read := func() (frame.Opcode, []byte) {
			for {
				op, got, err := c.ReadMessage(ctx, nil)
				if err != nil {
					t.Fatalf("%s: read: %v", tc.id, err)
				}
				if !waitPing || op != frame.OpText || string(got) != "pinged" {
					return op, got
				}
				waitPing = false
			}
		}
		for _, n := range echoSizes {
			p := bytes.Repeat([]byte{byte(n)}, n)
			if _, err := c.WriteMessage(ctx, frame.OpBinary, p); err != nil {
				t.Fatalf("%s: write %d: %v", tc.id, n, err)
			}
			if op, got := read(); op != frame.OpBinary || !bytes.Equal(got, p) {
				t.Fatalf("%s: echo of %d bytes: op %v, %d bytes", tc.id, n, op, len(got))
			}
		}
		if waitPing {
			if op, got := read(); waitPing {
				t.Fatalf("a: %v %q, want the server's text \"pinged\"", op, got)
			}
		}
		tc.close(t, c)
	}
	select {
	case err := <-pinged:
		if err != nil {
			t.Fatalf("server's Ping: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("server's Ping did not return")
	}

	// Refused handshakes: two bad origins and an old version at the echo route, a POST
	// that chi answers itself there and one that Upgrade refuses at the route open to
	// every method.
	for range 2 {
		_, resp, err := handshake.Dial(ctx, wsURL+"/echo/x", &handshake.DialOptions{Origin: "http://evil.example"})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("bad origin: %v %v, want 403", resp, err)
		}
	}
	if code := request(t, hc, "GET", srv.URL+"/echo/x", http.Header{
		"Upgrade": {"websocket"}, "Connection": {"Upgrade"},
		"Sec-Websocket-Version": {"8"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="},
	}); code != http.StatusUpgradeRequired {
		t.Fatalf("version 8: %d, want 426", code)
	}
	if code := request(t, hc, "POST", srv.URL+"/echo/x", nil); code != http.StatusMethodNotAllowed {
		t.Fatalf("POST to %s: %d, want chi's 405", echoRoute, code)
	}
	if code := request(t, hc, "POST", srv.URL+"/any/x", nil); code != http.StatusMethodNotAllowed {
		t.Fatalf("POST to %s: %d, want Upgrade's 405", anyRoute, code)
	}

	slowGot, broadcasts := slowConsumer(ctx, t, h, wsURL)
	t.Logf("the slow consumer got %d of %d broadcasts of %d bytes", slowGot, broadcasts, slowSize)

	// The server ends its side of a connection after the client: wait until it has closed
	// every one before reading the counts.
	for deadline := time.Now().Add(wait); ; {
		fams := parse(t, "/metrics", strings.NewReader(get(t, hc, srv.URL+"/metrics")))
		open := 0.0
		for _, m := range fams["ecows_connections_open"].GetMetric() {
			open += m.GetGauge().GetValue()
		}
		if open == 0 && len(fams["ecows_connections_open"].GetMetric()) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connections still open on the server after %v: %v", wait, fams["ecows_connections_open"])
		}
		time.Sleep(10 * time.Millisecond)
	}

	own := parse(t, "/metrics", strings.NewReader(get(t, hc, srv.URL+"/metrics")))
	viaProm := parse(t, "/prom", strings.NewReader(get(t, hc, srv.URL+"/prom")))
	for _, s := range []struct {
		name string
		fams map[string]*dto.MetricFamily
	}{{"Registry.ServeHTTP", own}, {"promhttp", viaProm}} {
		t.Run(s.name, func(t *testing.T) {
			checkScrape(t, s.fams, slowGot, broadcasts)
		})
	}
	// Nothing moves any more, so the two must agree on every family, the ping's round trip
	// time included.
	sameFamilies(t, own, viaProm)

	sctx, scancel := context.WithTimeout(context.Background(), wait)
	defer scancel()
	if err := ws.Shutdown(sctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	srv.Close()
	hc.CloseIdleConnections()
	for deadline := time.Now().Add(wait); runtime.NumGoroutine() > before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines before, %d after", before, runtime.NumGoroutine())
		}
	}
}

// echoHandler echoes every message. On connection "a" it also pings the client once, and
// sends the text "pinged" when the pong is back (the error goes to pinged); on connection
// "d" it closes with 4002 after len(echoSizes) messages.
func echoHandler(pinged chan<- error) connFunc {
	return func(ctx context.Context, c *transport.Conn) error {
		id := chi.URLParamFromCtx(ctx, "id")
		if id == "a" {
			go func() {
				pctx, cancel := context.WithTimeout(ctx, wait)
				defer cancel()
				_, err := c.Ping(pctx)
				if err == nil {
					_, err = c.WriteMessage(ctx, frame.OpText, []byte("pinged"))
				}
				pinged <- err
			}()
		}
		var buf []byte
		for n := 0; ; n++ {
			if id == "d" && n == len(echoSizes) {
				return c.Close(4002, "the server is done")
			}
			op, p, err := c.ReadMessage(ctx, buf[:0])
			if err != nil {
				return err
			}
			buf = p
			if _, err := c.WriteMessage(ctx, op, p); err != nil {
				return err
			}
		}
	}
}

// hubHandler joins the connection to the room of its URL and reads until it ends, so that
// its close handshake completes.
func hubHandler(h *hub.Hub) connFunc {
	return func(ctx context.Context, c *transport.Conn) error {
		if err := h.Join(c, chi.URLParamFromCtx(ctx, "room")); err != nil {
			return err
		}
		for {
			if _, _, err := c.ReadMessage(ctx, nil); err != nil {
				return err
			}
		}
	}
}

// slowConsumer joins a client that does not read to a room of h and broadcasts large
// messages to it, one at a time, each once the hub has written the one before, until a write
// makes no progress for a second: the client's socket buffers are full. Then it broadcasts
// until the queue overflows and the hub evicts the client. The client then reads everything
// the kernel buffered and the rest of the write that was under way, to the close frame the
// eviction sent: it returns how many messages the client got and how many broadcasts were
// made.
func slowConsumer(ctx context.Context, t *testing.T, h *hub.Hub, wsURL string) (got, broadcasts int) {
	t.Helper()
	c, _, err := handshake.Dial(ctx, wsURL+"/hub/slow", nil)
	if err != nil {
		t.Fatalf("dial the hub: %v", err)
	}
	defer c.CloseNow()
	for deadline := time.Now().Add(wait); h.Count("slow") != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the hub's member did not join its room")
		}
	}
	payload := bytes.Repeat([]byte("s"), slowSize)
	broadcast := func() {
		if err := h.Broadcast("slow", frame.OpBinary, payload); err != nil {
			t.Fatal(err)
		}
		broadcasts++
	}
	// Far more than any loopback socket buffers hold: the writes stall well before.
	const maxBroadcasts = 20000
	const stall = time.Second
	for written, progress := uint64(0), time.Now(); ; time.Sleep(100 * time.Microsecond) {
		st := h.Stats()
		if st.Written == uint64(broadcasts) {
			if broadcasts == maxBroadcasts {
				t.Fatalf("%d broadcasts of %d bytes written to a client that does not read", broadcasts, slowSize)
			}
			broadcast()
			continue
		}
		if st.Written != written {
			written, progress = st.Written, time.Now()
		} else if time.Since(progress) > stall {
			break
		}
	}
	// The writer is stuck in a write: the queue fills, and the broadcast past it evicts.
	for deadline := time.Now().Add(wait); h.Stats().Evicted == 0; broadcast() {
		if time.Now().After(deadline) {
			t.Fatalf("no eviction: %+v", h.Stats())
		}
	}
	for {
		op, p, err := c.ReadMessage(ctx, nil)
		if err != nil {
			if ce := (*transport.CloseError)(nil); !errors.As(err, &ce) || ce.Code != frame.ClosePolicyViolation || ce.Reason != "slow consumer" {
				t.Fatalf("slow consumer read %d messages, then %v; want the hub's close 1008 \"slow consumer\"", got, err)
			}
			if got < 2 {
				// Loopback sockets buffer far more than one message whatever their settings.
				t.Fatalf("slow consumer got %d messages: the kernel buffered none", got)
			}
			return got, broadcasts
		}
		if op != frame.OpBinary || len(p) != slowSize {
			t.Fatalf("slow consumer's message %d: %v of %d bytes", got, op, len(p))
		}
		got++
	}
}

// closeWith returns a client's close with code, answered by the server.
func closeWith(code frame.CloseCode) func(*testing.T, *transport.Conn) {
	return func(t *testing.T, c *transport.Conn) {
		if err := c.Close(code, ""); err != nil {
			t.Errorf("close %d: %v", code, err)
		}
	}
}

// request sends a request with header and returns the status of the answer.
func request(t *testing.T, hc *http.Client, method, url string, header http.Header) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	maps.Copy(req.Header, header)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// get returns the body of url.
func get(t *testing.T, hc *http.Client, url string) string {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("GET %s: Content-Type %q", url, ct)
	}
	return string(b)
}

// L is a label set.
type L map[string]string

// sample is a counter's or gauge's expected value.
type sample struct {
	labels L
	value  float64
}

// checkScrape checks every family of fams against what TestScrape drove: slowGot messages
// reached the slow consumer, out of broadcasts.
func checkScrape(t *testing.T, fams map[string]*dto.MetricFamily, slowGot, broadcasts int) {
	const nEcho = 5
	echoBytes := 0
	for _, n := range echoSizes {
		echoBytes += n
	}
	echoIn := float64(nEcho * len(echoSizes))
	echoOut := echoIn + 1 // "pinged"
	echoInBytes := float64(nEcho * echoBytes)
	echoOutBytes := echoInBytes + float64(len("pinged"))
	slowBytes := float64(slowGot * slowSize)
	dir := func(route, d string) L { return L{"route": route, "direction": d} }
	hubL := L{"hub": hubName}

	counters := map[string][]sample{
		// chi answers the POST to the echo route itself (405): Upgrade never sees it, so
		// it is not counted.
		"ecows_handshakes_total": {
			{L{"route": echoRoute, "status": "101", "reason": ""}, nEcho},
			{L{"route": echoRoute, "status": "403", "reason": "origin"}, 2},
			{L{"route": echoRoute, "status": "426", "reason": "version"}, 1},
			{L{"route": anyRoute, "status": "405", "reason": "method"}, 1},
			{L{"route": hubRoute, "status": "101", "reason": ""}, 1},
		},
		"ecows_connections_opened_total": {
			{L{"route": echoRoute}, nEcho},
			{L{"route": hubRoute}, 1},
		},
		"ecows_connections_closed_total": {
			{L{"route": echoRoute, "code": "1000", "side": "peer"}, 2},
			{L{"route": echoRoute, "code": "4xxx", "side": "peer"}, 1},
			{L{"route": echoRoute, "code": "4002", "side": "local"}, 1},
			{L{"route": echoRoute, "code": "1006", "side": "none"}, 1},
			{L{"route": hubRoute, "code": "1008", "side": "local"}, 1},
		},
		"ecows_messages_total": {
			{dir(echoRoute, "in"), echoIn}, {dir(echoRoute, "out"), echoOut},
			{dir(hubRoute, "in"), 0}, {dir(hubRoute, "out"), float64(slowGot)},
		},
		"ecows_message_bytes_total": {
			{dir(echoRoute, "in"), echoInBytes}, {dir(echoRoute, "out"), echoOutBytes},
			{dir(hubRoute, "in"), 0}, {dir(hubRoute, "out"), slowBytes},
		},
		// No compression: the wire carries the payloads as they are.
		"ecows_message_wire_bytes_total": {
			{dir(echoRoute, "in"), echoInBytes}, {dir(echoRoute, "out"), echoOutBytes},
			{dir(hubRoute, "in"), 0}, {dir(hubRoute, "out"), slowBytes},
		},
		"ecows_hub_encoded_total":        {{hubL, float64(broadcasts)}},
		"ecows_hub_published_total":      {{hubL, float64(broadcasts)}},
		"ecows_hub_written_total":        {{hubL, float64(slowGot)}},
		"ecows_hub_evicted_total":        {{hubL, 1}},
		"ecows_hub_dropped_total":        {{hubL, 0}},
		"ecows_hub_publish_errors_total": {{hubL, 0}},
		"ecows_hub_received_total":       {{hubL, 0}}, // a node drops its own envelopes
		"ecows_hub_gaps_total":           {{hubL, 0}},
	}
	gauges := map[string][]sample{
		"ecows_connections_open":    {{L{"route": echoRoute}, 0}, {L{"route": hubRoute}, 0}},
		"ecows_hub_connections":     {{hubL, 0}}, // the evicted member has left
		"ecows_hub_rooms":           {{hubL, 0}},
		"ecows_hub_queued_messages": {{hubL, 0}},
		"ecows_hub_broker_up":       {{hubL, 1}},
	}

	// Cumulative counts per bound of sizeBounds, then +Inf.
	bounds := slices.Concat(sizeBounds, []float64{math.Inf(1)})
	echoSizeBuckets := func(extra ...int) []uint64 {
		var b []uint64
		for _, bound := range bounds {
			n := 0
			for _, s := range echoSizes {
				if float64(s) <= bound {
					n += nEcho
				}
			}
			for _, s := range extra {
				if float64(s) <= bound {
					n++
				}
			}
			b = append(b, uint64(n))
		}
		return b
	}
	slowBuckets := make([]uint64, len(bounds))
	for i, bound := range bounds {
		if slowSize <= bound {
			slowBuckets[i] = uint64(slowGot)
		}
	}
	histograms := map[string][]histSample{
		"ecows_message_size_bytes": {
			{dir(echoRoute, "in"), echoSizeBuckets(), echoInBytes},
			{dir(echoRoute, "out"), echoSizeBuckets(len("pinged")), echoOutBytes},
			{dir(hubRoute, "in"), make([]uint64, len(bounds)), 0},
			{dir(hubRoute, "out"), slowBuckets, slowBytes},
		},
	}

	want := slices.Concat(slices.Collect(maps.Keys(counters)), slices.Collect(maps.Keys(gauges)),
		slices.Collect(maps.Keys(histograms)), []string{"ecows_ping_rtt_seconds"})
	if w, g := slices.Sorted(slices.Values(want)), slices.Sorted(maps.Keys(fams)); !slices.Equal(w, g) {
		t.Errorf("families:\nwant %v\n got %v", w, g)
	}
	for name, ss := range counters {
		checkValues(t, fams[name], dto.MetricType_COUNTER, ss)
	}
	for name, ss := range gauges {
		checkValues(t, fams[name], dto.MetricType_GAUGE, ss)
	}
	for name, hs := range histograms {
		checkHistograms(t, fams[name], hs)
	}

	// The round trip is a measurement: only its count is known, one on the echo route.
	rtt := fams["ecows_ping_rtt_seconds"]
	counts := map[string]uint64{}
	for _, m := range rtt.GetMetric() {
		counts[labelKey(m.GetLabel())] = m.GetHistogram().GetSampleCount()
	}
	if want := map[string]uint64{labelKey(pairs(L{"route": echoRoute})): 1, labelKey(pairs(L{"route": hubRoute})): 0}; !maps.Equal(counts, want) {
		t.Errorf("ecows_ping_rtt_seconds counts %v, want %v", counts, want)
	}
}

// histSample is a histogram's expected buckets (cumulative, the last +Inf) and sum.
type histSample struct {
	labels  L
	buckets []uint64
	sum     float64
}

// checkValues checks that f is of type typ and has exactly the series of want.
func checkValues(t *testing.T, f *dto.MetricFamily, typ dto.MetricType, want []sample) {
	t.Helper()
	if f.GetType() != typ {
		t.Errorf("%s: type %v, want %v", f.GetName(), f.GetType(), typ)
	}
	got := map[string]float64{}
	for _, m := range f.GetMetric() {
		v := m.GetCounter().GetValue()
		if typ == dto.MetricType_GAUGE {
			v = m.GetGauge().GetValue()
		}
		got[labelKey(m.GetLabel())] = v
	}
	w := map[string]float64{}
	for _, s := range want {
		w[labelKey(pairs(s.labels))] = s.value
	}
	if !maps.Equal(got, w) {
		t.Errorf("%s:\n got %v\nwant %v", f.GetName(), got, w)
	}
}

// checkHistograms checks that f is a histogram family with exactly the series of want.
func checkHistograms(t *testing.T, f *dto.MetricFamily, want []histSample) {
	t.Helper()
	if f.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("%s: type %v, want histogram", f.GetName(), f.GetType())
	}
	got := map[string]string{}
	for _, m := range f.GetMetric() {
		h := m.GetHistogram()
		var bounds []float64
		var counts []uint64
		for _, b := range h.GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
			counts = append(counts, b.GetCumulativeCount())
		}
		if !math.IsInf(bounds[len(bounds)-1], 1) {
			// The parser leaves out no bucket the text has; both outputs write +Inf.
			t.Errorf("%s %s: no +Inf bucket", f.GetName(), labelKey(m.GetLabel()))
		}
		if !slices.Equal(bounds[:len(bounds)-1], sizeBounds) {
			t.Errorf("%s %s: bounds %v", f.GetName(), labelKey(m.GetLabel()), bounds)
		}
		got[labelKey(m.GetLabel())] = fmt.Sprint(counts, h.GetSampleCount(), h.GetSampleSum())
	}
	w := map[string]string{}
	for _, s := range want {
		w[labelKey(pairs(s.labels))] = fmt.Sprint(s.buckets, s.buckets[len(s.buckets)-1], s.sum)
	}
	if !maps.Equal(got, w) {
		t.Errorf("%s (buckets, count, sum):\n got %v\nwant %v", f.GetName(), got, w)
	}
}

// pairs returns l as label pairs.
func pairs(l L) []*dto.LabelPair {
	var ps []*dto.LabelPair
	for k, v := range l {
		ps = append(ps, &dto.LabelPair{Name: &k, Value: &v})
	}
	return ps
}

// labelKey returns a label set as a string, its names sorted. A label with an empty value is
// left out, as Prometheus treats it as absent.
func labelKey(ps []*dto.LabelPair) string {
	var kv []string
	for _, p := range ps {
		if p.GetValue() != "" {
			kv = append(kv, p.GetName()+"="+p.GetValue())
		}
	}
	slices.Sort(kv)
	return "{" + strings.Join(kv, ",") + "}"
}
