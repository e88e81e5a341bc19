package bench

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/bench/internal/load"
)

// latencyMux serves only l's latency endpoints.
func latencyMux(l LatencyServer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(load.WorkPath, l.Work())
	mux.Handle(load.PushPath, l.Push())
	return mux
}

// BenchmarkLatency measures each library's reply latency in the four latency scenarios
// (load.LatencyScenarios) over loopback TCP, one connection: one op is one reply (or pushed
// message), and p50-µs, p90-µs and p99-µs are its latency quantiles as package internal/load
// defines them (ns/op, meaningless here, is suppressed). A few unmeasured messages come first,
// so that even -benchtime=1x runs every handler through whole bursts.
//
// The servers run in a child process (this test binary, TestLatencyServerChild), one per
// library, as they do under run.sh: in one process with the client, a handler computing on
// the CPU holds up the client's own wake-up (no thread is left waiting on the network poller
// while the only busy goroutine spins), so every library's reply would seem to wait for the
// end of the work. run.sh measures the same scenarios with the libraries interleaved over
// several rounds, which is what RESULTS.md reports.
func BenchmarkLatency(b *testing.B) {
	warm := 40
	if testing.Short() {
		warm = 8
	}
	// One child per library, started by the first sub-benchmark that needs it and ended by
	// BenchmarkLatency's cleanups, after all of them.
	parent := b
	addrs := map[string]string{}
	for _, sc := range load.LatencyScenarios {
		for _, l := range LatencyServers() {
			b.Run(sc.Name+"/"+l.Lib, func(b *testing.B) {
				addr, ok := addrs[l.Lib]
				if !ok {
					var err error
					if addr, err = startLatencyChild(parent, l.Lib); err != nil {
						b.Fatal(err)
					}
					addrs[l.Lib] = addr
				}
				r, err := load.Latency(load.LatencyConfig{
					Addr: addr, Scenario: sc,
					WarmupSamples: warm, Samples: b.N,
				})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(r.P50us, "p50-µs")
				b.ReportMetric(r.P90us, "p90-µs")
				b.ReportMetric(r.P99us, "p99-µs")
			})
		}
	}
}

// Environment of the child process that serves a library's latency endpoints.
const latencyChildLib = "ECOWS_BENCH_LATENCY_LIB"

// startLatencyChild starts TestLatencyServerChild for lib and returns its address. The
// child ends when b does (its stdin closes), and is killed if it lingers.
func startLatencyChild(b *testing.B, lib string) (string, error) {
	addrR, addrW, err := os.Pipe()
	if err != nil {
		return "", err
	}
	defer addrR.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLatencyServerChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), latencyChildLib+"="+lib)
	cmd.Stderr = os.Stderr // its stdout says PASS
	cmd.ExtraFiles = []*os.File{addrW}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		addrW.Close()
		return "", err
	}
	err = cmd.Start()
	addrW.Close()
	if err != nil {
		return "", err
	}
	stop := func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	b.Cleanup(stop)
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(addrR).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		addr, ok := strings.CutPrefix(strings.TrimSpace(s), "listening on ")
		if !ok {
			return "", fmt.Errorf("latency server %s: %q", lib, s)
		}
		return addr, nil
	case <-time.After(30 * time.Second):
		return "", fmt.Errorf("latency server %s: no address in 30 s", lib)
	}
}

// TestLatencyServerChild is the server side of BenchmarkLatency, run in a child process: it
// serves the latency endpoints of the library named by ECOWS_BENCH_LATENCY_LIB on a loopback
// port, writes "listening on ADDR" to fd 3, and ends when its stdin closes (or after ten
// minutes). Run on its own, it skips.
func TestLatencyServerChild(t *testing.T) {
	lib := os.Getenv(latencyChildLib)
	if lib == "" {
		t.Skip("the server side of BenchmarkLatency")
	}
	l, ok := LookupLatency(lib)
	if !ok {
		t.Fatalf("no latency server for %q", lib)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: latencyMux(l)}
	go srv.Serve(ln)
	defer srv.Close()
	report := os.NewFile(3, "report")
	fmt.Fprintf(report, "listening on %s\n", ln.Addr())
	report.Close()
	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-eof:
	case <-time.After(10 * time.Minute):
	}
}

// TestLatencyServers runs every library's latency endpoints through every latency scenario
// briefly, in process: the replies arrive in order and well formed, for each request of each
// burst. (In process, the work scenarios' numbers mean little; see BenchmarkLatency.)
func TestLatencyServers(t *testing.T) {
	for _, l := range LatencyServers() {
		t.Run(l.Lib, func(t *testing.T) {
			srv := httptest.NewServer(latencyMux(l))
			defer srv.Close()
			for _, sc := range load.LatencyScenarios {
				r, err := load.Latency(load.LatencyConfig{
					Addr: srv.Listener.Addr().String(), Scenario: sc,
					WarmupSamples: 4, Samples: 12,
				})
				if err != nil {
					t.Fatalf("%s: %v", sc.Name, err)
				}
				if r.Samples < 12 || r.P50us <= 0 {
					t.Fatalf("%s: %d samples, p50 %.0f µs", sc.Name, r.Samples, r.P50us)
				}
			}
		})
	}
}
