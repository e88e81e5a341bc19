package wstest

import (
	"net"
	"testing"
	"time"
)

// TCPPair returns both ends of a new TCP connection on 127.0.0.1: client dialled, server
// accepted. Both are closed when t ends.
func TCPPair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{Timeout: wait}
	nc, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client = nc.(*net.TCPConn)
	t.Cleanup(func() { client.Close() })
	// The dialled connection waits in the listener's backlog: no goroutine needs to accept
	// it while Dial runs.
	ln.SetDeadline(time.Now().Add(wait))
	server, err = ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}
