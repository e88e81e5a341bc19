package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/ecows/ecows/frame"
)

// NetConn returns a net.Conn that carries a byte stream over c, in messages of type op
// (frame.OpBinary, or frame.OpText when every Write is UTF-8 on its own; any other op makes
// every Read and Write return ErrOpcode).
//
// Each Write sends p as one message. Read returns the payload of the messages in order, over
// as many calls as a message needs when it is larger than the caller's buffer; empty messages
// are skipped. A message of the other type ends the stream: c is closed with 1003 Unsupported
// Data and Read returns a *frame.ProtocolError carrying that code. Once the peer has closed
// with 1000 Normal Closure, 1001 Going Away or no status, Read returns io.EOF. Pings are
// answered while Read waits; nothing reads c (so no ping is answered) while no Read runs.
//
// Deadlines are honoured as net.Conn says, also when set while a call is blocked: a call
// past its deadline returns os.ErrDeadlineExceeded, a net.Error whose Timeout is true, and the
// connection stays usable. A Read resumes the message it stopped in. A Write whose deadline
// passes while its message is being sent returns len(p) with the timeout: the message was
// taken whole and still goes out (a message cannot stop half way without breaking the
// connection), and the next Write waits for it, within its own deadline, and reports its
// failure if it failed. For that, each Write sends from a goroutine of its own, with a copy of
// p, so the caller may reuse p as soon as Write returns.
//
// Close runs the close handshake with 1000 Normal Closure (see Conn.Close). When ctx ends,
// c is closed at once, without a handshake (CloseNow), and blocked calls return. Calls after
// Close return errors matching net.ErrClosed. Read and Write may be called concurrently, and
// each of them from several goroutines (calls of one kind take turns).
func NetConn(ctx context.Context, c *Conn, op frame.Opcode) net.Conn {
	n := &netConn{c: c, op: op, wch: make(chan struct{})}
	n.stop = context.AfterFunc(ctx, func() { c.CloseNow() })
	return n
}

// netConn is what NetConn returns.
type netConn struct {
	c    *Conn
	op   frame.Opcode
	stop func() bool // stops closing c when NetConn's ctx ends

	rmu  sync.Mutex // held by a Read for the whole call, as are the fields up to wmu
	rbuf []byte     // the message being handed out: rbuf[rpos:] is left
	rpos int
	rerr error // sticky: the stream has ended

	wmu   sync.Mutex // held by a Write for the whole call, as are the fields up to mu
	wbuf  []byte     // the copy of p that the last finished Write sent, reused
	wpend chan error // the result of a message still going out after its Write timed out

	mu      sync.Mutex    // guards the fields below
	rdl     time.Time     // read deadline
	rgen    uint64        // counts read deadline changes
	rcancel func()        // ends the ReadMessage that is running, when the read deadline changes
	wdl     time.Time     // write deadline
	wch     chan struct{} // closed and replaced when the write deadline changes
	closed  bool
}

// maxKeptRead bounds the read buffer a netConn keeps between messages.
const maxKeptRead = 64 << 10

// Read implements net.Conn.
func (n *netConn) Read(p []byte) (int, error) {
	n.rmu.Lock()
	defer n.rmu.Unlock()
	if n.op != frame.OpText && n.op != frame.OpBinary {
		return 0, ErrOpcode
	}
	for n.rpos == len(n.rbuf) {
		if n.rerr != nil {
			return 0, n.rerr
		}
		if len(p) == 0 {
			return 0, nil
		}
		n.rbuf, n.rpos = n.rbuf[:0], 0
		if cap(n.rbuf) > maxKeptRead {
			n.rbuf = nil
		}
		n.mu.Lock()
		dl, gen := n.rdl, n.rgen
		if !dl.IsZero() && !time.Now().Before(dl) {
			n.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		ctx, cancel := context.WithCancel(context.Background())
		if !dl.IsZero() {
			ctx, cancel = context.WithDeadline(ctx, dl)
		}
		n.rcancel = cancel
		n.mu.Unlock()

		op, msg, err := n.c.ReadMessage(ctx, n.rbuf)

		n.mu.Lock()
		n.rcancel = nil
		changed := n.rgen != gen
		n.mu.Unlock()
		cancel()
		switch {
		case err == nil && op != n.op:
			n.rerr = &frame.ProtocolError{Code: frame.CloseUnsupportedData, Reason: fmt.Sprintf("%s message on a %s stream", op, n.op)}
			n.c.Close(frame.CloseUnsupportedData, "wrong message type")
		case err == nil:
			n.rbuf = msg
		case errors.Is(err, os.ErrDeadlineExceeded) && changed:
			// SetReadDeadline ended the call: go on under the new deadline.
		case errors.Is(err, os.ErrDeadlineExceeded):
			return 0, os.ErrDeadlineExceeded
		default:
			n.rerr = n.streamErr(err)
		}
	}
	k := copy(p, n.rbuf[n.rpos:])
	n.rpos += k
	return k, nil
}

// streamErr maps the error that ended c to what a net.Conn returns.
func (n *netConn) streamErr(err error) error {
	switch CloseStatus(err) {
	case frame.CloseNormal, frame.CloseGoingAway, frame.CloseNoStatus:
		return io.EOF
	}
	if errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %w", net.ErrClosed, err)
	}
	return err
}

// Write implements net.Conn.
func (n *netConn) Write(p []byte) (int, error) {
	n.wmu.Lock()
	defer n.wmu.Unlock()
	if n.wpend != nil {
		err, done := n.await(n.wpend)
		if !done {
			return 0, os.ErrDeadlineExceeded
		}
		n.wpend = nil
		if err != nil {
			return 0, n.streamErr(err)
		}
	}
	if n.deadlinePassed() {
		return 0, os.ErrDeadlineExceeded
	}
	// The message goes out from a goroutine of its own so that a deadline can end the call
	// while it is sent; that goroutine owns its copy of p until it is done.
	buf := append(n.wbuf[:0], p...)
	n.wbuf = nil
	res := make(chan error, 1)
	go func() {
		_, err := n.c.WriteMessage(context.Background(), n.op, buf) // the deadline, not a context, bounds it: see above
		res <- err
	}()
	err, done := n.await(res)
	if !done {
		n.wpend = res
		return len(p), os.ErrDeadlineExceeded
	}
	n.wbuf = buf
	if err != nil {
		return 0, n.streamErr(err)
	}
	return len(p), nil
}

func (n *netConn) deadlinePassed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.wdl.IsZero() && !time.Now().Before(n.wdl)
}

// await waits for res until the write deadline, following its changes, and says whether res
// came.
func (n *netConn) await(res chan error) (error, bool) {
	for {
		n.mu.Lock()
		dl, changed := n.wdl, n.wch
		n.mu.Unlock()
		var expire <-chan time.Time
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				select {
				case err := <-res:
					return err, true
				default:
					return nil, false
				}
			}
			t := time.NewTimer(d)
			defer t.Stop()
			expire = t.C
		}
		select {
		case err := <-res:
			return err, true
		case <-expire:
		case <-changed:
		}
	}
}

// Close implements net.Conn: it runs the close handshake with 1000 Normal Closure, within
// CloseTimeout, and returns nil however the handshake went, as closing a TCP connection does
// not say whether the peer read everything; a second Close returns net.ErrClosed.
func (n *netConn) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return net.ErrClosed
	}
	n.closed = true
	n.mu.Unlock()
	n.stop()
	n.c.Close(frame.CloseNormal, "")
	return nil
}

// LocalAddr implements net.Conn; it is c's local address, or an Addr of network "websocket"
// when c's stream has none.
func (n *netConn) LocalAddr() net.Addr {
	if a := n.c.LocalAddr(); a != nil {
		return a
	}
	return wsAddr{}
}

// RemoteAddr implements net.Conn, as LocalAddr does.
func (n *netConn) RemoteAddr() net.Addr {
	if a := n.c.RemoteAddr(); a != nil {
		return a
	}
	return wsAddr{}
}

// SetDeadline implements net.Conn.
func (n *netConn) SetDeadline(t time.Time) error {
	n.SetReadDeadline(t)
	return n.SetWriteDeadline(t)
}

// SetReadDeadline implements net.Conn; it applies to a Read that is blocked too.
func (n *netConn) SetReadDeadline(t time.Time) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rdl = t
	n.rgen++
	if n.rcancel != nil {
		n.rcancel()
	}
	return nil
}

// SetWriteDeadline implements net.Conn; it applies to a Write that is blocked too.
func (n *netConn) SetWriteDeadline(t time.Time) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.wdl = t
	close(n.wch)
	n.wch = make(chan struct{})
	return nil
}

// wsAddr is the address of a stream that has none.
type wsAddr struct{}

func (wsAddr) Network() string { return "websocket" }
func (wsAddr) String() string  { return "websocket" }
