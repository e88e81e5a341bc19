package conformance

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/internal/wstest"
)

// TestMain runs the suite and then checks that every goroutine it started, in the testees
// and in the suite, has ended.
func TestMain(m *testing.M) {
	base := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		if n, ok := wstest.WaitGoroutines(base, 10*time.Second); !ok {
			buf := make([]byte, 1<<20)
			fmt.Fprintf(os.Stderr, "goroutine leak: %d goroutines, %d before the tests:\n%s\n", n, base, buf[:runtime.Stack(buf, true)])
			code = 1
		}
	}
	os.Exit(code)
}

// TestServer runs every group against an ecows echo server (handshake.Upgrade), the suite
// being a raw TCP client: go test -run 'Server/6' runs group 6, -run 'Server/6-utf8/6.4.1' one case.
func TestServer(t *testing.T) {
	s := newEchoServer(t, serverOpts)
	echoSrvMu.Lock()
	echoSrv = s
	echoSrvMu.Unlock()
	runGroups(t, server)
}

// TestClient runs every group against an ecows echo client (handshake.Dial), the suite being
// a raw TCP server.
func TestClient(t *testing.T) {
	runGroups(t, client)
}

// runGroups runs every group as a subtest, and checks the naming contract on the way: case
// ids are unique and each Autobahn id starts with its group's number.
func runGroups(t *testing.T, r role) {
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			num, _, _ := strings.Cut(g.name, "-")
			seen := make(map[string]bool)
			for _, c := range g.cases() {
				if seen[c.id] {
					t.Fatalf("case %s listed twice", c.id)
				}
				if !strings.HasPrefix(c.id, "x-") && !strings.HasPrefix(c.id, num+".") {
					t.Fatalf("case %s in group %s", c.id, g.name)
				}
				seen[c.id] = true
				t.Run(c.id, func(t *testing.T) {
					start := time.Now()
					defer func() {
						if t.Failed() {
							t.Logf("case %s (%s): %s", c.id, r, c.desc)
						}
						if d := time.Since(start); d > time.Second {
							t.Logf("case %s took %v", c.id, d.Round(time.Millisecond))
						}
					}()
					run(t, r, c)
				})
			}
		})
	}
}
