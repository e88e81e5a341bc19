//go:build unix

package reliability

import (
	"fmt"
	"syscall"
	"testing"
)

// raiseNofile raises RLIMIT_NOFILE to at least need descriptors, the hard limit too when the
// process may (root, or CAP_SYS_RESOURCE), and fails the test with the numbers otherwise.
func raiseNofile(t testing.TB, need uint64) {
	t.Helper()
	if msg, err := setNofile(need); err != nil {
		t.Fatalf("%v; raise the hard limit (ulimit -Hn) or lower the connection count", err)
	} else if msg != "" {
		t.Log(msg)
	}
}

// setNofile is raiseNofile for the client processes, which have no testing.T: it returns
// what it changed, if anything, or why it could not.
func setNofile(need uint64) (string, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return "", fmt.Errorf("getrlimit: %w", err)
	}
	if rl.Cur >= need {
		return "", nil
	}
	want := syscall.Rlimit{Cur: need, Max: max(rl.Max, need)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return "", fmt.Errorf("RLIMIT_NOFILE is %d (hard %d) and %d descriptors are needed: %w", rl.Cur, rl.Max, need, err)
	}
	return fmt.Sprintf("RLIMIT_NOFILE raised from %d (hard %d) to %d (hard %d)", rl.Cur, rl.Max, want.Cur, want.Max), nil
}

// smallRcvbuf returns a net.Dialer Control function that sets SO_RCVBUF before connecting,
// so that the window the peer is offered is small from the first segment on. (Shrinking the
// buffer of an established connection below a window already offered stalls TCP instead.)
func smallRcvbuf(n int) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
		}); cerr != nil {
			return cerr
		}
		return err
	}
}
