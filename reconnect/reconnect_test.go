package reconnect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

func TestTransient(t *testing.T) {
	status := func(code int) error {
		return &handshake.StatusError{Response: &http.Response{StatusCode: code, Status: fmt.Sprint(code)}}
	}
	closed := func(code frame.CloseCode) error { return &transport.CloseError{Code: code} }
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"400", status(400), false},
		{"401", status(401), false},
		{"403", status(403), false},
		{"404", status(404), false},
		{"408", status(408), true},
		{"429", status(429), true},
		{"500", status(500), true},
		{"502", status(502), true},
		{"503", status(503), true},
		{"proxy 407", &handshake.ProxyError{Response: &http.Response{StatusCode: 407}}, false},
		{"proxy 502", &handshake.ProxyError{Response: &http.Response{StatusCode: 502}}, true},
		{"1000", closed(frame.CloseNormal), true},
		{"1001", closed(frame.CloseGoingAway), true},
		{"1002", closed(frame.CloseProtocolError), false},
		{"1003", closed(frame.CloseUnsupportedData), false},
		{"1005", closed(frame.CloseNoStatus), true},
		{"1006", &transport.CloseError{Code: frame.CloseAbnormal, Err: io.EOF}, true},
		{"1007", closed(frame.CloseInvalidPayload), false},
		{"1008", closed(frame.ClosePolicyViolation), false},
		{"1009", closed(frame.CloseMessageTooBig), false},
		{"1010", closed(frame.CloseMandatoryExtension), false},
		{"1011", closed(frame.CloseInternalError), true},
		{"1012", closed(frame.CloseServiceRestart), true},
		{"1013", closed(frame.CloseTryAgainLater), true},
		{"1014", closed(frame.CloseBadGateway), true},
		{"4000", closed(4000), true},
		{"peer's protocol error", frame.ErrReservedOpcode, false},
		{"usage error", fmt.Errorf("send: %w", transport.ErrInvalidUTF8), false},
		{"cancelled", fmt.Errorf("dial: %w", context.Canceled), false},
		{"dial timeout", fmt.Errorf("dial: %w: %w", context.DeadlineExceeded, os.ErrDeadlineExceeded), true},
		{"reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, true},
		{"refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{"EOF", fmt.Errorf("reading the answer: %w", io.ErrUnexpectedEOF), true},
		{"pong timeout", fmt.Errorf("%w (%w)", transport.ErrPongTimeout, closed(frame.CloseAbnormal)), true},
		{"bad accept", fmt.Errorf("%w: got x", handshake.ErrAccept), false},
		{"bad URL", handshake.ErrURL, false},
		{"subprotocol", handshake.ErrSubprotocol, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Transient(tc.err); got != tc.want {
				t.Fatalf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	ms := time.Millisecond
	top := func(n int64) int64 { return n - 1 }
	for _, tc := range []struct {
		name string
		opts Options
		rnd  func(int64) int64
		want []time.Duration // for attempts 1, 2, ...
	}{
		{"windows double up to the cap", Options{BaseDelay: 10 * ms, MaxDelay: 70 * ms}, top,
			[]time.Duration{10*ms - 1, 20*ms - 1, 40*ms - 1, 70*ms - 1, 70*ms - 1}},
		{"defaults", Options{}, top,
			[]time.Duration{time.Second - 1, 2*time.Second - 1, 4*time.Second - 1, 8*time.Second - 1, 16*time.Second - 1, 30*time.Second - 1, 30*time.Second - 1}},
		{"the draw starts at zero", Options{BaseDelay: 10 * ms}, func(int64) int64 { return 0 },
			[]time.Duration{0, 0, 0}},
		{"a cap below the base", Options{BaseDelay: 10 * ms, MaxDelay: 5 * ms}, top,
			[]time.Duration{10*ms - 1, 10*ms - 1}},
		{"negative base: at once", Options{BaseDelay: -1}, top, []time.Duration{0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, want := range tc.want {
				if got := backoff(i+1, &tc.opts, tc.rnd); got != want {
					t.Fatalf("attempt %d: %v, want %v", i+1, got, want)
				}
			}
		})
	}
}

// window is the bound of the delay after attempt with BaseDelay base and MaxDelay limit.
func window(attempt int, base, limit time.Duration) time.Duration {
	w := base
	for i := 1; i < attempt; i++ {
		w *= 2
	}
	return min(w, limit)
}

func TestRunReconnectsAfterFaults(t *testing.T) {
	const base, limit = 20 * time.Millisecond, 200 * time.Millisecond
	for _, tc := range []struct {
		name   string
		inject func(s *server, p *proxy)
		heal   func(s *server, p *proxy) // after the first failed attempt, if any
		check  func(t *testing.T, err error)
	}{
		{"close", func(_ *server, p *proxy) { p.closeAll() }, nil, closeCode(frame.CloseAbnormal)},
		{"reset", func(_ *server, p *proxy) { p.resetAll() }, nil, closeCode(frame.CloseAbnormal)},
		{"stall", func(_ *server, p *proxy) { p.stallAll() }, nil, func(t *testing.T, err error) {
			if !errors.Is(err, transport.ErrPongTimeout) {
				t.Errorf("reason %v, want ErrPongTimeout", err)
			}
		}},
		{"refuse", func(_ *server, p *proxy) { p.mode.Store("refuse"); p.closeAll() },
			func(_ *server, p *proxy) { p.mode.Store("pass") }, nil},
		{"503", func(s *server, p *proxy) { s.mode.Store("status 503"); p.closeAll() },
			func(s *server, _ *proxy) { s.mode.Store("echo") }, nil},
		{"1001", func(s *server, _ *proxy) { s.closeAll(frame.CloseGoingAway) }, nil, closeCode(frame.CloseGoingAway)},
		{"1011", func(s *server, _ *proxy) { s.closeAll(frame.CloseInternalError) }, nil, closeCode(frame.CloseInternalError)},
		{"1012", func(s *server, _ *proxy) { s.closeAll(frame.CloseServiceRestart) }, nil, closeCode(frame.CloseServiceRestart)},
		{"1013", func(s *server, _ *proxy) { s.closeAll(frame.CloseTryAgainLater) }, nil, closeCode(frame.CloseTryAgainLater)},
		{"1014", func(s *server, _ *proxy) { s.closeAll(frame.CloseBadGateway) }, nil, closeCode(frame.CloseBadGateway)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			s := newServer(t, "echo")
			p := newProxy(t, s.Listener.Addr().String())
			rec := newRecorder()
			opts := rec.hook(&Options{
				BaseDelay: base, MaxDelay: limit,
				Keepalive: 50 * time.Millisecond, PongTimeout: 200 * time.Millisecond,
				Dial: &handshake.DialOptions{Timeout: 2 * time.Second},
			})
			r := start(t, p.url(), readAll, opts)
			rec.waitFor(t, "first connection", func(ev []recorded) bool { return count(ev, true) == 1 })
			s.waitLive(t, 1)
			tc.inject(s, p)
			if tc.heal != nil {
				rec.waitFor(t, "a failed attempt", func(ev []recorded) bool {
					for _, e := range ev {
						if !e.connect && !e.Connected {
							return true
						}
					}
					return false
				})
				tc.heal(s, p)
			}
			rec.waitFor(t, "a new connection", func(ev []recorded) bool { return count(ev, true) == 2 })
			if err := r.stop(t); err != context.Canceled {
				t.Fatalf("Run after cancel: %v", err)
			}
			ev := rec.all()
			if !ev[0].connect || ev[0].Attempt != 1 {
				t.Fatalf("first event %+v", ev[0])
			}
			// Every event between the two connections is a retried disconnect, numbered on
			// from the first attempt, with a delay in its window; the wait really happened.
			second := 0
			for i := 1; i < len(ev); i++ {
				if ev[i].connect {
					second = i
					break
				}
				e := ev[i]
				if !e.Retry || e.Err == nil || e.Attempt != i {
					t.Fatalf("event %d: %+v", i, e)
				}
				if i == 1 && (!e.Connected || e.Uptime <= 0) {
					t.Fatalf("the first disconnect does not report the connection: %+v", e)
				}
				if w := window(e.Attempt, base, limit); e.Delay < 0 || e.Delay >= w {
					t.Fatalf("attempt %d: delay %v outside [0, %v)", e.Attempt, e.Delay, w)
				}
				if next := ev[i+1]; next.at.Sub(e.at) < e.Delay {
					t.Fatalf("attempt %d came %v after its disconnect, before its delay %v", next.Attempt, next.at.Sub(e.at), e.Delay)
				}
			}
			if ev[second].Attempt != second {
				t.Fatalf("the new connection is attempt %d, want %d", ev[second].Attempt, second)
			}
			if tc.check != nil {
				tc.check(t, ev[1].Err)
			}
			last := ev[len(ev)-1]
			if last.connect || last.Retry || !errors.Is(last.Err, context.Canceled) {
				t.Fatalf("last event %+v, want the cancelled end", last)
			}
		})
	}
}

func closeCode(want frame.CloseCode) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if got := transport.CloseStatus(err); got != want {
			t.Errorf("reason %v (code %d), want %d", err, got, want)
		}
	}
}

func TestRunGrowingDelays(t *testing.T) {
	wstest.CheckGoroutines(t)
	const base, limit = 5 * time.Millisecond, 40 * time.Millisecond
	s := newServer(t, "echo")
	p := newProxy(t, s.Listener.Addr().String())
	p.mode.Store("refuse")
	rec := newRecorder()
	r := start(t, p.url(), readAll, rec.hook(&Options{BaseDelay: base, MaxDelay: limit}))
	const n = 8
	rec.waitFor(t, fmt.Sprint(n, " attempts"), func(ev []recorded) bool { return len(ev) >= n })
	r.stop(t)
	ev := rec.all()
	distinct := map[time.Duration]bool{}
	for i, e := range ev[:n] {
		if e.connect || e.Connected || !e.Retry || e.Attempt != i+1 {
			t.Fatalf("event %d: %+v", i, e)
		}
		if w := window(e.Attempt, base, limit); e.Delay < 0 || e.Delay >= w {
			t.Fatalf("attempt %d: delay %v outside [0, %v)", e.Attempt, e.Delay, w)
		}
		if i > 0 && e.at.Sub(ev[i-1].at) < ev[i-1].Delay {
			t.Fatalf("attempt %d came before the delay of the one before", e.Attempt)
		}
		distinct[e.Delay] = true
	}
	if len(distinct) < n/2 {
		t.Fatalf("delays %v: not jittered", distinct)
	}
}

func TestRunStopsAtFinalError(t *testing.T) {
	for _, tc := range []struct {
		mode      string
		connected bool
		check     func(t *testing.T, err error)
	}{
		{"status 400", false, status(400)},
		{"status 401", false, status(401)},
		{"status 403", false, status(403)},
		{"status 404", false, status(404)},
		{"close 1002", true, closeCode(1002)},
		{"close 1003", true, closeCode(1003)},
		{"close 1007", true, closeCode(1007)},
		{"close 1008", true, closeCode(1008)},
		{"close 1010", true, closeCode(1010)},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			s := newServer(t, tc.mode)
			rec := newRecorder()
			err := start(t, s.url(), readAll, rec.hook(&Options{BaseDelay: time.Millisecond})).wait(t)
			tc.check(t, err)
			ev := rec.all()
			want := 1
			if tc.connected {
				want = 2
			}
			if len(ev) != want {
				t.Fatalf("events %+v, want %d", ev, want)
			}
			last := ev[len(ev)-1]
			if last.connect || last.Retry || last.Connected != tc.connected || last.Err != err {
				t.Fatalf("last event %+v", last)
			}
		})
	}
}

func status(want int) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var se *handshake.StatusError
		if !errors.As(err, &se) || se.Response.StatusCode != want {
			t.Errorf("Run: %v, want a StatusError with %d", err, want)
		}
	}
}

func TestRunRetryOverride(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := newServer(t, "close 1013")
	attempts := 0
	err := start(t, s.url(), readAll, &Options{
		BaseDelay: time.Millisecond,
		OnConnect: func(Event) { attempts++ },
		Retry: func(err error) bool {
			return transport.CloseStatus(err) != frame.CloseTryAgainLater && Transient(err)
		},
	}).wait(t)
	if transport.CloseStatus(err) != frame.CloseTryAgainLater || attempts != 1 {
		t.Fatalf("Run: %v after %d connections, want 1013 after 1", err, attempts)
	}
}

func TestRunSessionEnds(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := newServer(t, "echo")
	got := ""
	err := start(t, s.url(), func(ctx context.Context, c *transport.Conn) error {
		if _, err := c.WriteMessage(context.Background(), frame.OpText, []byte("hi")); err != nil {
			return err
		}
		_, msg, err := c.ReadMessage(ctx, nil)
		got = string(msg)
		return err
	}, nil).wait(t)
	if err != nil || got != "hi" {
		t.Fatalf("Run: %v, echo %q", err, got)
	}
}

func TestRunResetAfter(t *testing.T) {
	for _, tc := range []struct {
		name        string
		resetAfter  time.Duration
		wantAttempt int // of the third connection
	}{
		{"up long enough", 50 * time.Millisecond, 1},
		{"never", -1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			s := newServer(t, "echo")
			rec := newRecorder()
			r := start(t, s.url(), readAll, rec.hook(&Options{BaseDelay: time.Millisecond, ResetAfter: tc.resetAfter}))
			for n := 1; n <= 2; n++ {
				rec.waitFor(t, "a connection", func(ev []recorded) bool { return count(ev, true) == n })
				s.waitLive(t, 1)
				time.Sleep(100 * time.Millisecond) // past ResetAfter
				s.closeAll(frame.CloseServiceRestart)
			}
			ev := rec.waitFor(t, "the third connection", func(ev []recorded) bool { return count(ev, true) == 3 })
			r.stop(t)
			if got := ev[len(ev)-1].Attempt; got != tc.wantAttempt {
				t.Fatalf("third connection is attempt %d, want %d; events %+v", got, tc.wantAttempt, ev)
			}
		})
	}
}

func TestRunCancelledWhileWaiting(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := newServer(t, "status 503")
	rec := newRecorder()
	r := start(t, s.url(), readAll, rec.hook(&Options{BaseDelay: time.Hour}))
	rec.waitFor(t, "a failed attempt", func(ev []recorded) bool { return len(ev) == 1 })
	begin := time.Now()
	if err := r.stop(t); err != context.Canceled {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Fatalf("Run returned %v after cancel", d)
	}
}
