package middleware

import (
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

// A negative option means none, unlimited or off, as in transport.Options; zero means the
// default.
func TestNegativeOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    Handler[frame.Frame]
		ok   func(h Handler[frame.Frame]) bool
	}{
		{"RateLimit Rate -1: no limit, no layer", wrap[frame.Frame](RateLimit(RateLimitOptions{Rate: -1, Burst: 5}), echo), isEcho},
		{"RateLimit Burst -1: no burst, a bucket of 1", wrap[frame.Frame](RateLimit(RateLimitOptions{Rate: 10, Burst: -1}), echo), burst(1)},
		{"RateLimit Burst 0: the default, 1", wrap[frame.Frame](RateLimit(RateLimitOptions{Rate: 10}), echo), burst(1)},
		{"Keepalive interval -1: off", wrap[frame.Frame](Keepalive(-1, time.Second), echo), isEcho},
		{"Keepalive timeout -1: pings only", wrap[frame.Frame](Keepalive(time.Second, -1), echo), timeout(-1)},
		{"Keepalive timeout 0: the default, 2 intervals", wrap[frame.Frame](Keepalive(time.Second, 0), echo), timeout(2 * time.Second)},
		{"AutoPong Interval -1: no keepalive", AutoPong(&AutoPongOptions{Interval: -1})(echo), func(h Handler[frame.Frame]) bool {
			_, ok := h.(autoPong)
			return ok
		}},
		{"MaxPayload -1, -1: no caps, no layer", MaxPayload(-1, -1)(echo), isEcho},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.ok(tc.h) {
				t.Fatalf("got %T %+v", tc.h, tc.h)
			}
		})
	}
}

func isEcho(h Handler[frame.Frame]) bool {
	_, ok := h.(handlerFunc[frame.Frame])
	return ok
}

func burst(n int) func(Handler[frame.Frame]) bool {
	return func(h Handler[frame.Frame]) bool {
		a, ok := h.(*anyLayer[frame.Frame])
		return ok && a.outer.(*rateLimit).lim.Burst() == n
	}
}

func timeout(d time.Duration) func(Handler[frame.Frame]) bool {
	return func(h Handler[frame.Frame]) bool {
		a, ok := h.(*anyLayer[frame.Frame])
		return ok && a.outer.(*keepaliveHandler).timeout == d
	}
}

// With a negative timeout a silent peer is pinged and never cut.
func TestKeepalivePingsOnly(t *testing.T) {
	wstest.CheckGoroutines(t)
	const interval = 20 * time.Millisecond
	s := run(t, Frames(echo, Keepalive(interval, -1)))
	time.Sleep(20 * interval) // ten default timeouts of silence
	if !s.running() {
		t.Fatalf("cut: %v", s.result())
	}
	if f := s.recv(); f.Opcode != frame.OpPing {
		t.Fatalf("got %v, want a ping", f.Opcode)
	}
	s.closeClient()
}
