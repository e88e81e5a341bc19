package reconnect

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/option"
	"github.com/ecows/ecows/transport"
)

// Defaults for the zero values of Options.
const (
	DefaultBaseDelay  = time.Second
	DefaultMaxDelay   = 30 * time.Second
	DefaultResetAfter = time.Minute
)

// Session is the application's side of one connection. It returns when the connection ends,
// with the error that ended it (the error of its read calls, typically), or when ctx ends.
// Returning nil stops Run, which then returns nil; returning an error lets Run decide, from
// Options.Retry, whether to connect again. Run closes c after Session returns.
type Session func(ctx context.Context, c *transport.Conn) error

// Options configure Run. The zero value (or nil) dials with handshake's defaults, retries
// with delays from 1 s growing to 30 s, and sends no keepalive pings. Run never modifies them.
type Options struct {
	// Dial configures each handshake.Dial; nil uses its defaults.
	Dial *handshake.DialOptions

	// BaseDelay is the window of the first retry's random delay, doubled for each retry
	// after it up to MaxDelay (defaults 1 s and 30 s). A negative BaseDelay retries at once;
	// a negative MaxDelay keeps every window at BaseDelay.
	BaseDelay, MaxDelay time.Duration

	// ResetAfter is how long a connection must stay up for the retries after it to start
	// again from the first delay (default 1 minute); negative: the delays never shrink.
	ResetAfter time.Duration

	// Keepalive, when positive, runs Conn.Keepalive beside each Session with this interval
	// and PongTimeout (the interval when zero or negative), so that a dead peer or path ends the
	// connection (transport.ErrPongTimeout) even when the Session only waits to read. Pongs
	// are seen only while the Session reads from the Conn.
	Keepalive, PongTimeout time.Duration

	// Retry says whether the error that ended a connection, or an attempt, is worth another
	// attempt; nil uses Transient. An application wraps Transient to decide some errors
	// itself. The end of Run's context is final whatever Retry says.
	Retry func(err error) bool

	// OnConnect is called when a connection is up, before its Session starts.
	OnConnect func(Event)
	// OnDisconnect is called when a connection has ended, or an attempt has failed, with
	// the reason and what Run does next.
	OnDisconnect func(Event)
}

// Event describes a connection, or an attempt, to the hooks. They are called from Run's
// goroutine: Run waits for them.
type Event struct {
	// Attempt counts the attempts since the last connection that stayed up for ResetAfter,
	// this one included: 1 for the first.
	Attempt int
	// Conn and Response are the connection and the server's handshake answer (OnConnect).
	Conn     *transport.Conn
	Response *http.Response
	// Err is why the connection ended or the attempt failed (OnDisconnect).
	Err error
	// Connected says whether the attempt made a connection, which then stayed up for Uptime
	// (OnDisconnect).
	Connected bool
	Uptime    time.Duration
	// Retry says whether Run tries again, after Delay (OnDisconnect).
	Retry bool
	Delay time.Duration
}

// Run keeps a connection to url: it dials, runs session on the connection, and after the
// connection ends or an attempt fails, dials again as Options say. It returns nil when a
// session returns nil, ctx's error once ctx ends (after the session, which sees ctx end, has
// returned, and the connection has closed with 1001 Going Away), and otherwise the first
// error that Retry does not retry. When Run returns, every goroutine it started has ended.
func Run(ctx context.Context, url string, session Session, opts *Options) error {
	if opts == nil {
		opts = &Options{}
	}
	retry := opts.Retry
	if retry == nil {
		retry = Transient
	}
	attempt := 0
	for {
		attempt++
		ev := Event{Attempt: attempt}
		c, resp, err := handshake.Dial(ctx, url, opts.Dial)
		if err == nil {
			start := time.Now()
			if opts.OnConnect != nil {
				opts.OnConnect(Event{Attempt: attempt, Conn: c, Response: resp})
			}
			err = serve(ctx, c, session, opts)
			ev.Connected, ev.Uptime = true, time.Since(start)
			if err == nil {
				ev.Err = nil
				if opts.OnDisconnect != nil {
					opts.OnDisconnect(ev)
				}
				return nil
			}
			if opts.ResetAfter >= 0 && ev.Uptime >= option.Or(opts.ResetAfter, DefaultResetAfter) {
				attempt = 0
			}
		}
		ev.Err = err
		if cerr := ctx.Err(); cerr != nil {
			ev.Err = cerr
			if opts.OnDisconnect != nil {
				opts.OnDisconnect(ev)
			}
			return cerr
		}
		ev.Retry = retry(err)
		if ev.Retry {
			ev.Delay = backoff(attempt, opts, rand.Int64N)
		}
		if opts.OnDisconnect != nil {
			opts.OnDisconnect(ev)
		}
		if !ev.Retry {
			return err
		}
		if ev.Delay > 0 {
			t := time.NewTimer(ev.Delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
}

// serve runs session on c, with the keepalive if any, and closes c.
func serve(ctx context.Context, c *transport.Conn, session Session, opts *Options) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kerr := make(chan error, 1)
	if opts.Keepalive > 0 {
		go func() { kerr <- c.Keepalive(sctx, opts.Keepalive, opts.PongTimeout) }()
	} else {
		kerr <- nil
	}
	err := session(sctx, c)
	cancel()
	code := frame.CloseNormal
	if ctx.Err() != nil {
		code = frame.CloseGoingAway
	}
	c.Close(code, "")
	if kerr := <-kerr; errors.Is(kerr, transport.ErrPongTimeout) {
		// The session saw its connection cut under it: say why.
		err = fmt.Errorf("%w (%w)", kerr, err)
	}
	return err
}

// backoff returns the delay before the retry that follows attempt failed attempts: a
// uniform draw from [0, min(MaxDelay, BaseDelay·2^(attempt-1))). rnd(n) returns a number in
// [0, n), as rand.Int64N does.
func backoff(attempt int, opts *Options, rnd func(int64) int64) time.Duration {
	base := option.Or(opts.BaseDelay, DefaultBaseDelay)
	if base <= 0 {
		return 0
	}
	limit := max(option.Or(opts.MaxDelay, DefaultMaxDelay), base)
	window := base
	for i := 1; i < attempt && window < limit; i++ {
		window *= 2
	}
	window = min(window, limit)
	return time.Duration(rnd(int64(window)))
}
