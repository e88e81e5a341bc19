//go:build !unix

package reliability

import (
	"syscall"
	"testing"
)

// setNofile leaves the limit as it is where RLIMIT_NOFILE does not exist.
func setNofile(uint64) (string, error) { return "", nil }

func raiseNofile(t testing.TB, need uint64) {
	t.Skipf("%d file descriptors needed; this test raises RLIMIT_NOFILE on unix only", need)
}

// smallRcvbuf leaves the receive buffer as it is where SO_RCVBUF cannot be set portably.
func smallRcvbuf(int) func(network, address string, c syscall.RawConn) error { return nil }
