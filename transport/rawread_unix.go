//go:build unix

package transport

import (
	"io"
	"net"
	"os"
	"syscall"
)

// rawReader returns the raw descriptor of c's stream and the callback that reads it, when
// reading the descriptor directly reads the same bytes as the stream's Read: only for the
// standard library's own connection types, since a wrapper type that embeds one may do
// something in its Read that must not be bypassed.
func rawReader(c *Conn) (syscall.RawConn, func(uintptr) bool) {
	var sc syscall.Conn
	switch v := c.rwc.(type) {
	case *net.TCPConn:
		sc = v
	case *net.UnixConn:
		sc = v
	default:
		return nil, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, nil
	}
	return rc, c.rawRead
}

// rawRead is the callback of syscall.RawConn.Read, called with the stream's descriptor when it
// may be readable. When the socket is empty it gives the read buffer back and returns false,
// and the runtime parks the goroutine until the descriptor is readable, with no buffer held;
// the next call borrows one again. Between messages (waitIdle) it gives the reader state back
// as well.
func (c *Conn) rawRead(fd uintptr) bool {
	r := c.holdReader()
	if r.bufp == nil {
		r.acquire(c.cfg.rsize)
	}
	// readRaw is called with an empty buffer only, so the read starts at its beginning.
	for {
		n, err := syscall.Read(int(fd), r.buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			r.release()
			if c.idle {
				putReader(r)
				c.rd = nil
			}
			return false
		case err != nil:
			r.rawErr = os.NewSyscallError("read", err)
		case n == 0:
			r.rawErr = io.EOF
		default:
			r.end = n
		}
		return true
	}
}
