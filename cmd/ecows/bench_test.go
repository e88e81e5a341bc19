package main

import (
	"context"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

func TestBench(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := startServe(t, serveConfig{})
	var progress wstest.Buffer
	start := time.Now()
	res, err := bench(context.Background(), benchConfig{url: s.wsURL(), conns: 4, size: 256, window: 8, duration: time.Second}, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a 1 s run took %v", d)
	}
	if res.Messages == 0 || res.MessagesPerSec() <= 0 || res.MBPerSec() <= 0 || res.Bytes != res.Messages*256 {
		t.Fatalf("%+v", res)
	}
	if !(0 < res.P50 && res.P50 <= res.P99 && res.P99 <= res.P999) {
		t.Fatalf("latencies out of order: %+v", res)
	}
	if res.Elapsed < time.Second-50*time.Millisecond || res.Elapsed > 2*time.Second {
		t.Errorf("elapsed %v for a 1 s run", res.Elapsed)
	}
	t.Logf("%d messages, %.0f/s, p50 %v p99 %v p99.9 %v", res.Messages, res.MessagesPerSec(), res.P50, res.P99, res.P999)
}

func TestBenchCommand(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := startServe(t, serveConfig{})
	var stdout, stderr wstest.Buffer
	code := run(context.Background(), []string{"bench", "-c", "2", "-duration", "1100ms", s.wsURL(), "-size", "64"}, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"2 connections, 64-byte messages", "messages ", "/s)", "MB/s", "p50 ", "p99 ", "p99.9 "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("no %q in\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "bench:   1s") {
		t.Errorf("no progress line in %q", stderr.String())
	}
}

func TestBenchStopsOnCancel(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := startServe(t, serveConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := bench(ctx, benchConfig{url: s.wsURL(), conns: 2, size: 16, window: 1, duration: time.Hour}, &wstest.Buffer{})
	if err != nil || res.Messages == 0 {
		t.Fatalf("%+v, %v", res, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v after cancel", d)
	}
}

func TestBenchNotAnEchoServer(t *testing.T) {
	wstest.CheckGoroutines(t)
	url := wsServer(t, nil, func(c *transport.Conn, _ *http.Request) {
		for {
			if _, _, err := c.ReadMessage(context.Background(), nil); err != nil {
				return
			}
			c.WriteMessage(context.Background(), frame.OpText, []byte("thanks"))
		}
	})
	_, err := bench(context.Background(), benchConfig{url: url, conns: 2, size: 32, window: 2, duration: 5 * time.Second}, &wstest.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "is it an echo server?") {
		t.Fatalf("got %v", err)
	}

	if strings.Count(err.Error(), "echo server") != 1 {
		t.Errorf("the same error from every connection should be reported once: %v", err)
	}
}

func TestBenchDialFailure(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := startServe(t, serveConfig{})
	_, err := bench(context.Background(), benchConfig{url: s.wsURL() + "/nowhere", conns: 3, size: 32, window: 2, duration: time.Second}, &wstest.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "404 Not Found") {
		t.Fatalf("got %v", err)
	}
	if n := s.ws.Len(); n != 0 {
		t.Errorf("%d connections left open", n)
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 {
		t.Fatal("empty histogram")
	}
	for v := range uint64(64) {
		if b := bucketOf(v); b != int(v) {
			t.Fatalf("bucketOf(%d) = %d", v, b)
		}
	}
	vals := make([]uint64, 100_000)
	for i := range vals {
		vals[i] = uint64(rand.ExpFloat64() * 1e6) // around 1 ms
		h.record(vals[i])
	}
	h.record(1<<64 - 1) // the largest value has a bucket
	vals = append(vals, 1<<64-1)
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := float64(vals[int(q*float64(len(vals)))-1])
		got := float64(h.quantile(q))
		if got < exact*0.96 || got > exact*1.04 {
			t.Errorf("q%v = %v, exact %v", q, got, exact)
		}
	}
	var sum histogram
	sum.merge(&h)
	sum.merge(&h)
	if sum.n != 2*h.n || sum.quantile(0.5) != h.quantile(0.5) {
		t.Error("merge")
	}
}
