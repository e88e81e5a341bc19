//go:build unix

package conformance

import (
	"net"
	"syscall"
)

// socketError returns the pending error of c's socket (SO_ERROR), such as a reset that
// arrived after the stream had already ended.
func socketError(c *net.TCPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var soErr int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		soErr, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ERROR)
	}); err != nil {
		return err
	}
	if gerr != nil {
		return gerr
	}
	if soErr != 0 {
		return syscall.Errno(soErr)
	}
	return nil
}
