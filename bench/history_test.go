package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/redis/go-redis/v9"

	natsbroker "github.com/ecows/ecows/broker/nats"
	redisbroker "github.com/ecows/ecows/broker/redis"
	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/hub/hubtest"
	"github.com/ecows/ecows/transport"
)

// BenchmarkHistoryBroadcast measures broadcasts to one room with the room's history
// (hub.Options.History) off and on (issue 23), on three engines: bus, one node on the hub's
// own Bus; nats, two nodes through a NATS server run in this process with JetStream on a
// temporary directory (the natsbroker Broker with Options.History as the hub's); redis, two
// nodes through a redis-server from the system on a free port of 127.0.0.1 (skipped when it
// is not installed, unless CI is set). Each node has historyMembers members, connections over
// net.Pipe (hubtest.Pipe) whose clients read every message. One goroutine on the first node
// calls Publish, which is Broadcast without history and appends to the log (a round trip to
// the engine) with it, keeping at most historyWindow broadcasts in flight, below the members'
// queues, so that nobody drops or blocks.
//
// An op is one broadcast: broadcasts/s, deliveries/s (messages received by all members
// together), and p50-µs and p99-µs, the time from the call of Publish to a member's
// ReadMessage returning the message, over every delivery (from a histogram with buckets of
// 1/16 of a power of two). allocs/op counts what the whole process allocates per broadcast:
// hubs, members, brokers and, for nats, the NATS server itself.
func BenchmarkHistoryBroadcast(b *testing.B) {
	for _, eng := range historyEngines {
		b.Run(eng.name, func(b *testing.B) {
			links := eng.start(b)
			for _, on := range []bool{false, true} {
				name := "history=off"
				if on {
					name = "history=on"
				}
				b.Run(name, func(b *testing.B) { runHistoryBroadcast(b, links, on) })
			}
		})
	}
}

const (
	// historyMembers is the number of members on each node.
	historyMembers = 16
	// historyWindow bounds the broadcasts in flight, below the hub's default QueueLen (128).
	historyWindow = 32
	// historyPayload is the size of a broadcast: its number, the time it was published, and
	// padding.
	historyPayload = 64
	// historyWait bounds each wait for deliveries.
	historyWait = 30 * time.Second
)

// historyEngine starts an engine for the benchmark's rows and returns the links of its
// nodes: links(history) returns one Broker per node (nil: the hub's own Bus), made for a
// hub with history on or off.
type historyEngine struct {
	name  string
	start func(b *testing.B) (links func(history bool) []hub.Broker)
}

var historyEngines = []historyEngine{
	{"bus", func(*testing.B) func(bool) []hub.Broker {
		return func(bool) []hub.Broker { return []hub.Broker{nil} }
	}},
	{"nats", startHistoryNATS},
	{"redis", startHistoryRedis},
}

// startHistoryNATS runs a NATS server with JetStream, its store in a temporary directory,
// for two nodes.
func startHistoryNATS(b *testing.B) func(bool) []hub.Broker {
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: b.TempDir(),
	})
	if err != nil {
		b.Fatal(err)
	}
	go srv.Start()
	b.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats-server did not start")
	}
	warmJetStream(b, srv.ClientURL())
	return func(history bool) []hub.Broker {
		var bs []hub.Broker
		for range 2 {
			nb, err := natsbroker.Connect(srv.ClientURL(), &natsbroker.Options{History: history})
			if err != nil {
				b.Fatal(err)
			}
			bs = append(bs, nb)
		}
		return bs
	}
}

// warmJetStream makes the server create the log streams, whose goroutines outlive the
// Brokers, before a row counts its goroutines.
func warmJetStream(b *testing.B, url string) {
	nb, err := natsbroker.Connect(url, &natsbroker.Options{History: true})
	if err != nil {
		b.Fatal(err)
	}
	defer nb.Close()
	if err := nb.Open(nopReceiver{}); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), historyWait)
	defer cancel()
	if err := nb.Subscribe(ctx, "warm"); err != nil {
		b.Fatal(err)
	}
}

type nopReceiver struct{}

func (nopReceiver) Receive(hub.Envelope) {}
func (nopReceiver) LinkDown(error)       {}
func (nopReceiver) LinkUp()              {}

// startHistoryRedis runs a redis-server from the system on a free port of 127.0.0.1,
// without persistence, for two nodes; without redis-server it skips, unless CI is set.
func startHistoryRedis(b *testing.B) func(bool) []hub.Broker {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			b.Fatal("redis-server is not installed (apt-get install -y redis-server)")
		}
		b.Skip("redis-server is not installed (apt-get install -y redis-server)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), "--bind", "127.0.0.1",
		"--dir", b.TempDir(), "--save", "", "--appendonly", "no", "--logfile", "")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ping := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer ping.Close()
	for deadline := time.Now().Add(10 * time.Second); ping.Ping(context.Background()).Err() != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("redis-server did not start")
		}
	}
	return func(bool) []hub.Broker {
		var bs []hub.Broker
		for range 2 {
			c := redis.NewClient(&redis.Options{Addr: addr})
			b.Cleanup(func() { c.Close() })
			bs = append(bs, redisbroker.New(c, nil))
		}
		return bs
	}
}

// historyRooms numbers the rooms, so that no run reads another's log or subscriptions.
var historyRooms atomic.Int64

// runHistoryBroadcast publishes b.N broadcasts from the first node to a room with members on
// every node, and waits until every member has every one.
func runHistoryBroadcast(b *testing.B, links func(bool) []hub.Broker, history bool) {
	room := fmt.Sprintf("bench-%d", historyRooms.Add(1))
	var opts *hub.HistoryOptions
	if history {
		opts = &hub.HistoryOptions{}
	}
	// The cleanups run in reverse: connections closed, hubs closed, brokers' clients closed,
	// readers waited for, and then every goroutine the row started must be gone.
	before := runtime.NumGoroutine()
	b.Cleanup(func() {
		deadline := time.Now().Add(historyWait)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			b.Errorf("%d goroutines after the row, %d before", n, before)
		}
	})
	var readers sync.WaitGroup
	b.Cleanup(readers.Wait)
	var hubs []*hub.Hub
	for _, br := range links(history) {
		h, err := hub.New(&hub.Options{Broker: br, History: opts})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { h.Close() })
		hubs = append(hubs, h)
	}
	d := newDeliveries(historyMembers * len(hubs))
	t0 := time.Now()
	for i := range d.members {
		client, srv := hubtest.Pipe(b, nil)
		if err := hubs[i/historyMembers].Join(srv, room); err != nil {
			b.Fatal(err)
		}
		readers.Go(func() { d.read(client, i, t0) })
	}

	pub := hubs[0]
	payload := make([]byte, historyPayload)
	var sent uint64
	publish := func(n int) {
		for range n {
			if err := d.wait(int64(sent) + 1 - historyWindow); err != nil {
				b.Fatal(err)
			}
			sent++
			binary.BigEndian.PutUint64(payload, sent)
			binary.BigEndian.PutUint64(payload[8:], uint64(time.Since(t0)))
			if _, err := pub.Publish(room, frame.OpBinary, payload); err != nil {
				b.Fatal(err)
			}
		}
		if err := d.wait(int64(sent)); err != nil {
			b.Fatal(err)
		}
	}
	publish(historyWindow) // warm: subscriptions, streams and connections in place
	d.reset()

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	publish(b.N)
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "broadcasts/s")
	b.ReportMetric(float64(b.N)*float64(d.members)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(d.quantile(0.50).Seconds()*1e6, "p50-µs")
	b.ReportMetric(d.quantile(0.99).Seconds()*1e6, "p99-µs")
}

// deliveries follows what the members of one run have received: which broadcasts every
// member has, and a latency histogram per member.
type deliveries struct {
	members int
	// got counts, per broadcast number modulo len(got), the members that have it; the last
	// one to get it resets the count and raises done, so a slot is free again before the
	// publisher, historyWindow behind, can reuse it.
	got  [2 * historyWindow]atomic.Int32
	done atomic.Int64 // every broadcast up to done is at every member (each reads in order)
	kick chan struct{}
	lat  []latencyHist // one per member, written by its reader alone
	errs chan error
}

func newDeliveries(members int) *deliveries {
	return &deliveries{members: members, kick: make(chan struct{}, 1), lat: make([]latencyHist, members), errs: make(chan error, members)}
}

// read reads member i's messages from c until c ends.
func (d *deliveries) read(c *transport.Conn, i int, t0 time.Time) {
	buf := make([]byte, 0, historyPayload)
	for {
		_, p, err := c.ReadMessage(context.Background(), buf[:0])
		if err != nil {
			return
		}
		if len(p) != historyPayload {
			d.errs <- fmt.Errorf("member %d: a message of %d bytes, want %d", i, len(p), historyPayload)
			return
		}
		n := int64(binary.BigEndian.Uint64(p))
		d.lat[i].add(time.Since(t0) - time.Duration(binary.BigEndian.Uint64(p[8:])))
		slot := &d.got[n%int64(len(d.got))]
		if slot.Add(1) < int32(d.members) {
			continue
		}
		slot.Store(0)
		for {
			done := d.done.Load()
			if done >= n || d.done.CompareAndSwap(done, n) {
				break
			}
		}
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
}

// wait waits until every member has every broadcast up to n.
func (d *deliveries) wait(n int64) error {
	timeout := time.NewTimer(historyWait)
	defer timeout.Stop()
	for d.done.Load() < n {
		select {
		case <-d.kick:
		case err := <-d.errs:
			return err
		case <-timeout.C:
			return fmt.Errorf("after %v: every member has broadcasts up to %d, want %d", historyWait, d.done.Load(), n)
		}
	}
	return nil
}

// reset forgets the latencies so far; the caller has seen every member get every broadcast.
func (d *deliveries) reset() {
	for i := range d.lat {
		d.lat[i] = latencyHist{}
	}
}

// quantile returns the latency below which a fraction q of all deliveries came.
func (d *deliveries) quantile(q float64) time.Duration {
	var all latencyHist
	for i := range d.lat {
		for j, n := range d.lat[i].n {
			all.n[j] += n
		}
	}
	return all.quantile(q)
}

// latencyHist counts durations in buckets of 1/16 of a power of two (of nanoseconds).
type latencyHist struct{ n [64 * 16]uint64 }

func (h *latencyHist) add(d time.Duration) {
	h.n[latencyBucket(uint64(max(d, 0)))]++
}

// latencyBucket is the bucket of ns: its highest bit and the four bits after it.
func latencyBucket(ns uint64) int {
	if ns < 16 {
		return int(ns)
	}
	e := bits.Len64(ns) - 5
	return e*16 + int(ns>>e)
}

// latencyLow is the smallest duration in bucket i, the inverse of latencyBucket.
func latencyLow(i int) time.Duration {
	if i < 32 {
		return time.Duration(i)
	}
	e := i/16 - 1
	return time.Duration(uint64(16+i%16) << e)
}

func (h *latencyHist) quantile(q float64) time.Duration {
	var total uint64
	for _, n := range h.n {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total-1)) + 1
	var seen uint64
	for i, n := range h.n {
		if seen += n; seen >= rank {
			return (latencyLow(i) + latencyLow(i+1)) / 2
		}
	}
	return 0
}

// Every duration falls in the bucket whose bounds hold it, and a quantile is the middle of
// the bucket that holds its rank.
func TestLatencyHist(t *testing.T) {
	for _, ns := range []uint64{0, 1, 15, 16, 31, 32, 33, 47, 48, 1000, 65535, 1 << 40, 1<<40 + 1<<36 - 1} {
		i := latencyBucket(ns)
		if lo, hi := latencyLow(i), latencyLow(i+1); time.Duration(ns) < lo || time.Duration(ns) >= hi {
			t.Errorf("%d ns in bucket %d, [%d, %d)", ns, i, lo, hi)
		}
	}
	var h latencyHist
	if got := h.quantile(0.5); got != 0 {
		t.Errorf("empty: p50 %v, want 0", got)
	}
	for range 98 {
		h.add(10 * time.Microsecond)
	}
	h.add(time.Millisecond)
	h.add(time.Millisecond)
	for _, c := range []struct {
		q      float64
		lo, hi time.Duration
	}{
		{0.5, 9500 * time.Nanosecond, 10500 * time.Nanosecond},
		{0.98, 9500 * time.Nanosecond, 10500 * time.Nanosecond},
		{0.99, 950 * time.Microsecond, 1050 * time.Microsecond},
		{1, 950 * time.Microsecond, 1050 * time.Microsecond},
	} {
		if got := h.quantile(c.q); got < c.lo || got > c.hi {
			t.Errorf("q %v: %v, want within [%v, %v]", c.q, got, c.lo, c.hi)
		}
	}
}
