package handshake

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain runs the tests with GODEBUG=http2xconnect=1, which net/http reads from the
// environment once, before any test code runs; without it the HTTP/2 server does not
// advertise extended CONNECT (RFC 8441). A //go:debug directive cannot set it, since
// net/http reads the variable itself rather than through the runtime's settings, so the test
// binary runs itself again with the variable set.
func TestMain(m *testing.M) {
	if strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1") {
		os.Exit(m.Run())
	}
	godebug := "http2xconnect=1"
	if v := os.Getenv("GODEBUG"); v != "" {
		godebug = v + "," + godebug
	}
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), "GODEBUG="+godebug)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.ExitCode())
	case err != nil:
		os.Stderr.WriteString("running the tests with GODEBUG=http2xconnect=1: " + err.Error() + "\n")
		os.Exit(2)
	}
	os.Exit(0)
}
