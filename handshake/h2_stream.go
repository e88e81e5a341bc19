package handshake

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// aLongTimeAgo is a deadline in the past, to interrupt blocked reads and writes at once.
var aLongTimeAgo = time.Unix(1, 0)

// h2Stream is the byte stream of a WebSocket that Upgrade accepted over HTTP/2: the request
// body brings the client's frames and the response carries the server's.
type h2Stream struct {
	h2Reader
	wd  h2WriteDeadline
	ctx context.Context // the request's, which ends when the handler returns
	w   http.ResponseWriter
	rc  *http.ResponseController

	closed atomic.Bool
	// wmu guards every use of w and rc after the upgrade, so that none comes after the
	// handler returned (net/http panics then); ended says it has.
	wmu   sync.Mutex
	ended bool
}

// h2Reader reads an HTTP/2 body with resumable read deadlines. They are kept here rather
// than set on the stream: net/http ends a body for good when its read deadline passes,
// while a Conn resumes reading after a timeout. So a Read that waits runs the body's Read on
// a goroutine of its own, which a later Read picks up where the timed-out one left it.
type h2Reader struct {
	body io.ReadCloser

	dmu  sync.Mutex
	rdl  time.Time     // the read deadline; dmu
	wake chan struct{} // closed when rdl changes under a waiting Read; dmu

	// The reading side; one Read at a time, as the Conn guarantees.
	res  chan h2Result // the outcome of the body read that runs on its own goroutine
	busy bool          // that read is running
	buf  []byte        // what it reads into; nil while no read runs or has data left
	left []byte        // what it read and Read has not returned yet
	rerr error         // the error it ended with, returned once left is empty
}

type h2Result struct {
	n   int
	err error
}

// h2ReadSize bounds the body read that runs on its own goroutine; the Conn reads in buffers
// of a few KiB, and the body delivers at most one DATA frame (16 KiB by default) per read.
const h2ReadSize = 16 << 10

func newH2Stream(r *http.Request, w http.ResponseWriter, rc *http.ResponseController) *h2Stream {
	s := &h2Stream{h2Reader: h2Reader{body: r.Body, res: make(chan h2Result, 1)}, ctx: r.Context(), w: w, rc: rc}
	// Resetting the stream is the only way to end a write that the client's flow control
	// holds up.
	s.wd.abort = func() { rc.SetWriteDeadline(aLongTimeAgo) }
	context.AfterFunc(s.ctx, s.handlerDone)
	return s
}

// usable reports whether w may be used; wmu is held. The context is checked too because it
// ends before net/http retires w, while handlerDone may run later.
func (s *h2Stream) usable() bool {
	return !s.ended && s.ctx.Err() == nil
}

// Read returns bytes of the request body, waiting no later than the read deadline.
func (s *h2Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(s.left) > 0 {
			n := copy(p, s.left)
			s.left = s.left[n:]
			if len(s.left) == 0 {
				s.left, s.buf = nil, nil // an idle stream holds no buffer
			}
			return n, nil
		}
		if s.rerr != nil {
			return 0, s.rerr
		}
		if !s.busy {
			s.busy = true
			s.buf = make([]byte, min(len(p), h2ReadSize))
			go s.readBody(s.buf)
		}
		if err := s.await(); err != nil {
			return 0, err
		}
	}
}

// readBody runs one body read on a goroutine of its own.
func (s *h2Reader) readBody(buf []byte) {
	n, err := s.body.Read(buf)
	s.res <- h2Result{n, err}
}

// await waits for the running body read to finish, or the read deadline to pass.
func (s *h2Reader) await() error {
	for {
		s.dmu.Lock()
		dl := s.rdl
		if !dl.IsZero() && !time.Now().Before(dl) {
			s.dmu.Unlock()
			return os.ErrDeadlineExceeded
		}
		wake := make(chan struct{})
		s.wake = wake
		s.dmu.Unlock()
		var expire <-chan time.Time
		var t *time.Timer
		if !dl.IsZero() {
			t = time.NewTimer(time.Until(dl))
			expire = t.C
		}
		select {
		case r := <-s.res:
			if t != nil {
				t.Stop()
			}
			s.busy = false
			s.left, s.rerr = s.buf[:r.n], r.err
			if r.n == 0 {
				s.buf, s.left = nil, nil
			}
			return nil
		case <-expire:
		case <-wake:
			if t != nil {
				t.Stop()
			}
		}
	}
}

// SetReadDeadline sets the read deadline, waking a Read that waits so that it sees it.
func (s *h2Reader) SetReadDeadline(t time.Time) error {
	s.dmu.Lock()
	s.rdl = t
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
	s.dmu.Unlock()
	return nil
}

// SetWriteDeadline sets the write deadline.
func (s *h2Stream) SetWriteDeadline(t time.Time) error {
	s.wd.set(t)
	return nil
}

// Write writes p to the response and flushes it, since the Conn has batched its frames
// already.
func (s *h2Stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if !s.usable() {
		return 0, net.ErrClosed
	}
	if err := s.wd.begin(); err != nil {
		return 0, err
	}
	n, err := s.w.Write(p)
	if err == nil {
		err = s.rc.Flush()
	}
	return n, s.wd.end(err)
}

// Close ends the stream: the body is closed, which ends a waiting Read, and the response
// ends when the handler returns. A write blocked by the client's flow control is ended by
// resetting the stream, so that Close does not wait for a client that stopped reading.
func (s *h2Stream) Close() error {
	if s.closed.Swap(true) {
		return net.ErrClosed
	}
	s.body.Close()
	s.wd.set(time.Time{})
	if !s.wmu.TryLock() {
		if s.ctx.Err() == nil {
			s.rc.SetWriteDeadline(aLongTimeAgo)
		}
		s.wmu.Lock()
	}
	s.ended = true
	s.wmu.Unlock()
	return nil
}

// CloseWrite ends the stream, as Close does. A Conn half-closes a TCP connection when it
// gives up on a peer that is out of step, so that the peer's unread bytes cannot turn the
// close into a reset that destroys the close frame just sent; net/http offers handlers no
// half-close of an HTTP/2 stream, and needs none: a stream reset after the close frame keeps
// the data sent before it. Ending the stream at once spares the client a wait for an end
// that would come only when the Conn's CloseTimeout passed.
func (s *h2Stream) CloseWrite() error { return s.Close() }

// handlerDone runs when the request's context ends, at the latest when the handler returns:
// from then on w must not be used.
func (s *h2Stream) handlerDone() {
	s.wmu.Lock()
	s.ended = true
	s.wmu.Unlock()
	s.body.Close()
}

// h2WriteDeadline keeps a write deadline for an HTTP/2 stream. The stream's own deadline
// (http.ResponseController's) resets the stream when it passes, even between writes, while a
// net.Conn's only fails a write that runs past it; here the deadline ends the stream only
// when a write is under way as it passes.
type h2WriteDeadline struct {
	abort func() // ends the stream, so that the write under way returns

	mu      sync.Mutex
	dl      time.Time
	timer   *time.Timer
	writing bool
	aborted bool // abort ran; the write's error is a timeout
}

func (d *h2WriteDeadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dl = t
	switch {
	case t.IsZero():
		if d.timer != nil {
			d.timer.Stop()
		}
	case d.timer == nil:
		d.timer = time.AfterFunc(time.Until(t), d.fire)
	default:
		d.timer.Reset(time.Until(t))
	}
}

// begin starts a write, which fails at once when the deadline has passed.
func (d *h2WriteDeadline) begin() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.aborted || !d.dl.IsZero() && !time.Now().Before(d.dl) {
		return os.ErrDeadlineExceeded
	}
	d.writing = true
	return nil
}

// end ends a write that returned err, and returns the error to report.
func (d *h2WriteDeadline) end(err error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writing = false
	if err != nil && d.aborted {
		return fmt.Errorf("%w: %w", os.ErrDeadlineExceeded, err)
	}
	return err
}

func (d *h2WriteDeadline) fire() {
	d.mu.Lock()
	expired := d.writing && !d.dl.IsZero() && !time.Now().Before(d.dl)
	if expired {
		d.aborted = true
	}
	d.mu.Unlock()
	if expired {
		d.abort()
	}
}
