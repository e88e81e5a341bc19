package metrics

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// Registry is the Recorder built in: it counts per route with atomic counters, so that
// recording a message allocates nothing and takes no lock, and samples hubs when read. Gather
// returns the counts as Families; ServeHTTP and WriteText write them in the Prometheus text
// format. The zero value is ready to use; a Registry must not be copied after first use.
type Registry struct {
	routes sync.Map // route name → *route

	mu         sync.Mutex
	handshakes map[handshakeKey]uint64
	hubs       map[*hubEntry]struct{}
}

type handshakeKey struct {
	route  string
	status int
	reason string
}

type hubEntry struct {
	name  string
	stats func() HubStats
}

// Handshake implements Recorder.
func (g *Registry) Handshake(route string, status int, reason string) {
	g.mu.Lock()
	if g.handshakes == nil {
		g.handshakes = make(map[handshakeKey]uint64)
	}
	g.handshakes[handshakeKey{route, status, reason}]++
	g.mu.Unlock()
}

// Conn implements Recorder. The Observer it returns buffers its connection's counts and adds
// them to the route's when the Conn flushes it, or every few dozen messages.
func (g *Registry) Conn(_ *http.Request, route string) transport.Observer {
	rt := g.route(route)
	rt.opened.Add(1)
	return &connCounts{rt: rt}
}

// Hub implements Recorder.
func (g *Registry) Hub(name string, stats func() HubStats) func() {
	e := &hubEntry{name: name, stats: stats}
	g.mu.Lock()
	if g.hubs == nil {
		g.hubs = make(map[*hubEntry]struct{})
	}
	g.hubs[e] = struct{}{}
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		delete(g.hubs, e)
		g.mu.Unlock()
	}
}

// route returns the counters of the route named name, made on first use.
func (g *Registry) route(name string) *route {
	if rt, ok := g.routes.Load(name); ok {
		return rt.(*route)
	}
	rt, _ := g.routes.LoadOrStore(name, newRoute(name))
	return rt.(*route)
}

// route counts the connections of one route.
type route struct {
	name           string
	opened, closed atomic.Uint64
	in, out        flow
	rtt            histogram // nanoseconds

	mu     sync.Mutex
	closes map[closeKey]uint64
}

// flow counts the messages one way: their number and size in size's buckets, and what
// compression saved (size minus wire bytes), from which the wire bytes follow.
type flow struct {
	size  histogram
	saved atomic.Int64
}

type closeKey struct {
	code string
	by   transport.Side
}

func newRoute(name string) *route {
	return &route{
		name: name,
		in:   flow{size: newHistogram(len(sizeBounds))},
		out:  flow{size: newHistogram(len(sizeBounds))},
		rtt:  newHistogram(len(rttBounds)),
	}
}

// connCounts is the transport.Observer of one connection. It gathers what its Conn reads
// and what it sends apart, each only ever touched under the Conn's lock of that side (as
// transport.Observer promises), so without atomics, and adds them to the route's on flushes:
// a message then costs a few plain additions instead of several atomic ones, which in an echo
// held in memory is the difference between 3% and 12% of its time (BenchmarkMetricsEcho).
type connCounts struct {
	rt      *route
	in, out batch
}

// batch is a flow's counts not yet added to the route's.
type batch struct {
	counts     [len(sizeBounds)]uint16
	n          uint16
	sum, saved int64
}

// batchLen bounds a batch, and so how far the route's counts may lag behind a connection that
// reads or sends without pause; the counts of a bucket never overflow.
const batchLen = 64

func (b *batch) add(f *flow, size, wire int64) {
	b.counts[sizeBucket(size)]++
	b.n++
	b.sum += size
	b.saved += size - wire
	if b.n == batchLen {
		b.flush(f)
	}
}

// flush adds b to f with an atomic add per bucket used, and empties it.
func (b *batch) flush(f *flow) {
	if b.n == 0 {
		return
	}
	sum := uint64(b.sum)
	for i, n := range b.counts {
		if n != 0 {
			f.size.add(i, uint64(n), sum)
			sum = 0
		}
	}
	if b.saved != 0 {
		f.saved.Add(b.saved)
	}
	*b = batch{}
}

func (c *connCounts) Received(size, wire int64) { c.in.add(&c.rt.in, size, wire) }

func (c *connCounts) Sent(size, wire int64) { c.out.add(&c.rt.out, size, wire) }

func (c *connCounts) FlushReceived() { c.in.flush(&c.rt.in) }

func (c *connCounts) FlushSent() { c.out.flush(&c.rt.out) }

func (c *connCounts) Pinged(d time.Duration) {
	i, _ := slices.BinarySearch(rttBounds, d.Seconds())
	c.rt.rtt.observe(i, uint64(max(d, 0)))
}

func (c *connCounts) Closed(code frame.CloseCode, by transport.Side) {
	rt := c.rt
	k := closeKey{CloseLabel(code, by), by}
	rt.mu.Lock()
	if rt.closes == nil {
		rt.closes = make(map[closeKey]uint64)
	}
	rt.closes[k]++
	rt.mu.Unlock()
	rt.closed.Add(1)
}

// CloseLabel returns a close code as the label value Registry gives it. Codes from 3000 on
// that the peer chose are grouped ("3xxx", "4xxx"), so that a peer cannot make labels
// without end; the codes below 3000 that may be on the wire are few, and this side's are the
// application's own.
func CloseLabel(code frame.CloseCode, by transport.Side) string {
	if code >= 3000 && by == transport.SidePeer {
		return strconv.Itoa(int(code)/1000) + "xxx"
	}
	return strconv.Itoa(int(code))
}

// Gather returns the counts so far as Families, in a fixed order, each with its metrics in
// the order of their label values. Counters only grow; a hub's go once the hub is closed.
func (g *Registry) Gather() []Family {
	var routes []*route
	g.routes.Range(func(_, v any) bool {
		routes = append(routes, v.(*route))
		return true
	})
	slices.SortFunc(routes, func(a, b *route) int { return cmp.Compare(a.name, b.name) })

	fams := []Family{
		g.handshakeFamily(),
		{Name: "ecows_connections_opened_total", Help: "WebSocket connections accepted.", Type: Counter},
		{Name: "ecows_connections_open", Help: "WebSocket connections open now.", Type: Gauge},
		{Name: "ecows_connections_closed_total", Help: "WebSocket connections closed, by close code and by the side that sent the first close frame (none: no close frame).", Type: Counter},
		{Name: "ecows_messages_total", Help: "Data messages received (in) and sent (out).", Type: Counter},
		{Name: "ecows_message_bytes_total", Help: "Payload bytes of data messages, uncompressed.", Type: Counter},
		{Name: "ecows_message_wire_bytes_total", Help: "Payload bytes of data messages as on the wire (compressed when compression applied; frame headers excluded).", Type: Counter},
		{Name: "ecows_message_size_bytes", Help: "Uncompressed size of data messages.", Type: Histogram},
		{Name: "ecows_ping_rtt_seconds", Help: "Round-trip times of pings answered.", Type: Histogram},
	}
	for _, rt := range routes {
		rl := []Label{{"route", rt.name}}
		opened, closed := rt.opened.Load(), rt.closed.Load()
		fams[1].Metrics = append(fams[1].Metrics, Metric{Labels: rl, Value: float64(opened)})
		fams[2].Metrics = append(fams[2].Metrics, Metric{Labels: rl, Value: float64(opened) - float64(closed)})
		fams[3].Metrics = append(fams[3].Metrics, rt.closeMetrics()...)
		for _, d := range []struct {
			dir string
			f   *flow
		}{{"in", &rt.in}, {"out", &rt.out}} {
			dl := []Label{{"direction", d.dir}, {"route", rt.name}}
			h := d.f.size.metric(dl, sizeBounds[:], 1)
			fams[4].Metrics = append(fams[4].Metrics, Metric{Labels: dl, Value: float64(h.Count)})
			fams[5].Metrics = append(fams[5].Metrics, Metric{Labels: dl, Value: h.Sum})
			fams[6].Metrics = append(fams[6].Metrics, Metric{Labels: dl, Value: h.Sum - float64(d.f.saved.Load())})
			fams[7].Metrics = append(fams[7].Metrics, h)
		}
		fams[8].Metrics = append(fams[8].Metrics, rt.rtt.metric(rl, rttBounds, 1e-9))
	}
	for i := range fams {
		sortMetrics(fams[i].Metrics)
	}
	return append(fams, g.hubFamilies()...)
}

func (g *Registry) handshakeFamily() Family {
	f := Family{Name: "ecows_handshakes_total", Help: "WebSocket upgrade requests answered, by status (101, or 200 over HTTP/2, when accepted) and refusal reason.", Type: Counter}
	g.mu.Lock()
	for k, n := range g.handshakes {
		f.Metrics = append(f.Metrics, Metric{
			Labels: []Label{{"reason", k.reason}, {"route", k.route}, {"status", strconv.Itoa(k.status)}},
			Value:  float64(n),
		})
	}
	g.mu.Unlock()
	return f
}

func (rt *route) closeMetrics() []Metric {
	rt.mu.Lock()
	ms := make([]Metric, 0, len(rt.closes))
	for k, n := range rt.closes {
		ms = append(ms, Metric{
			Labels: []Label{{"code", k.code}, {"route", rt.name}, {"side", k.by.String()}},
			Value:  float64(n),
		})
	}
	rt.mu.Unlock()
	return ms
}

func (g *Registry) hubFamilies() []Family {
	g.mu.Lock()
	hubs := make([]*hubEntry, 0, len(g.hubs))
	for e := range g.hubs {
		hubs = append(hubs, e)
	}
	g.mu.Unlock()
	fams := []Family{
		{Name: "ecows_hub_connections", Help: "Connections a hub knows, now.", Type: Gauge},
		{Name: "ecows_hub_rooms", Help: "Rooms with at least one local member, now.", Type: Gauge},
		{Name: "ecows_hub_queued_messages", Help: "Messages waiting in connections' send queues, now.", Type: Gauge},
		{Name: "ecows_hub_encoded_total", Help: "Frames a hub encoded: one per broadcast, send or envelope received.", Type: Counter},
		{Name: "ecows_hub_written_total", Help: "Frames a hub wrote to connections.", Type: Counter},
		{Name: "ecows_hub_dropped_total", Help: "Frames dropped for slow connections (SlowDrop).", Type: Counter},
		{Name: "ecows_hub_evicted_total", Help: "Connections closed with 1008 for being too slow.", Type: Counter},
		{Name: "ecows_hub_published_total", Help: "Envelopes the broker took.", Type: Counter},
		{Name: "ecows_hub_publish_errors_total", Help: "Envelopes the broker refused.", Type: Counter},
		{Name: "ecows_hub_received_total", Help: "Envelopes from other nodes delivered here.", Type: Counter},
		{Name: "ecows_hub_gaps_total", Help: "Gaps in what this node received from the others.", Type: Counter},
		{Name: "ecows_hub_broker_up", Help: "1 while the broker's link to its engine is up.", Type: Gauge},
	}
	for _, e := range hubs {
		s := e.stats()
		l := []Label{{"hub", e.name}}
		up := 0.0
		if s.LinkUp {
			up = 1
		}
		for i, v := range []float64{
			float64(s.Conns), float64(s.Rooms), float64(s.Queued), float64(s.Encoded),
			float64(s.Written), float64(s.Dropped), float64(s.Evicted), float64(s.Published),
			float64(s.PublishErrors), float64(s.Received), float64(s.Gaps), up,
		} {
			fams[i].Metrics = append(fams[i].Metrics, Metric{Labels: l, Value: v})
		}
	}
	for i := range fams {
		sortMetrics(fams[i].Metrics)
	}
	return fams
}

// sortMetrics orders metrics by their label values, for a stable output.
func sortMetrics(ms []Metric) {
	slices.SortFunc(ms, func(a, b Metric) int {
		for i := range min(len(a.Labels), len(b.Labels)) {
			if c := cmp.Compare(a.Labels[i].Value, b.Labels[i].Value); c != 0 {
				return c
			}
		}
		return cmp.Compare(len(a.Labels), len(b.Labels))
	})
}
