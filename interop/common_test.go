package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// What every peer sends and expects. The scripts in peers/ repeat these values.
const (
	textMsg          = "héllo wörld ✓ 日本語 🎉 — ecows"   // text with 2-, 3- and 4-byte UTF-8
	fragText         = "fragmented: Grüße ✓ 日本語 🎉 end" // sent in fragments, split inside characters where the sender can
	fragBinaryLen    = 3000                            // a binary message sent in 3 fragments of 1000 bytes
	pingFromEcows    = "ecows ping ✓"
	pingFromPeer     = "peer ping ✓"
	codeFromEcows    = 4001
	reasonFromEcows  = "ecows says bye ✓"
	codeFromPeer     = 4002
	reasonFromPeer   = "peer says bye ✓"
	proto1, proto2   = "ecows.v1", "ecows.v2" // clients offer [v1 v2], servers prefer [v2 v1]
	smallLimit       = 1024                   // a receiver's limit in the oversize scenarios
	oversize         = 4096                   // what is sent to that receiver
	largeLimit       = 2 << 20                // limits raised on both sides for the 1 MiB message
	scenarioTimeout  = 15 * time.Second       // bound on any one scenario's I/O
	closeTimeout     = 5 * time.Second        // ecows' CloseTimeout in these tests
	closeFastEnough  = 4 * time.Second        // a close handshake that takes longer waited for CloseTimeout
	processStartWait = 20 * time.Second
)

// invalidUTF8 is a text payload that is not UTF-8 (0xff can never appear).
var invalidUTF8 = []byte("ok \xff\xfe bad")

// binarySizes are the binary message sizes every echo scenario sends: around the 7-bit,
// 16-bit and 64-bit length encodings, and 1 MiB.
var binarySizes = []int{0, 125, 126, 65535, 65536, 1 << 20}

// pattern returns n bytes, byte i being i % 251, as every peer builds them.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// thirds splits b into three parts of (nearly) equal length: for fragText the cuts fall inside
// multi-byte characters.
func thirds(b []byte) [][]byte {
	n := len(b)
	return [][]byte{b[:n/3], b[n/3 : 2*n/3], b[2*n/3:]}
}

// event is one observation a peer reports: the Go peers append them to an eventLog, the Node.js
// and Python peers print them as JSON lines on stdout.
type event struct {
	Ev      string `json:"ev"`             // listening, check, closed, proto, received, error, done
	Path    string `json:"path,omitempty"` // a server's request path, which names the scenario
	Name    string `json:"name,omitempty"` // check: what was checked
	OK      bool   `json:"ok,omitempty"`   // check: whether it held
	Detail  string `json:"detail,omitempty"`
	Code    int    `json:"code,omitempty"`   // closed: the code received; -1 when the peer cannot tell
	Reason  string `json:"reason,omitempty"` // closed: the reason received
	Proto   string `json:"proto,omitempty"`
	Port    int    `json:"port,omitempty"`    // listening
	TLSPort int    `json:"tlsPort,omitempty"` // listening
}

func (e event) String() string {
	b, _ := json.Marshal(e)
	return string(b)
}

// eventLog collects events from a peer, for waiting on them.
type eventLog struct {
	mu     sync.Mutex
	events []event
	notify chan struct{} // closed and replaced on each add
}

func newEventLog() *eventLog { return &eventLog{notify: make(chan struct{})} }

func (l *eventLog) add(e event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
}

// check adds a check event.
func (l *eventLog) check(name string, ok bool, format string, args ...any) {
	l.add(event{Ev: "check", Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

func (l *eventLog) all() []event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]event(nil), l.events...)
}

// wait returns the first event with this ev and path, waiting up to timeout for it.
func (l *eventLog) wait(t *testing.T, ev, path string, timeout time.Duration) (event, bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for _, e := range l.events {
			if e.Ev == ev && e.Path == path {
				l.mu.Unlock()
				return e, true
			}
		}
		ch := l.notify
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Errorf("no %q event for %s within %v; events: %v", ev, path, timeout, l.all())
			return event{}, false
		}
	}
}

// peerReport is what a peer client said about one scenario run.
type peerReport []event

func (r peerReport) find(ev string) (event, bool) {
	for _, e := range r {
		if e.Ev == ev {
			return e, true
		}
	}
	return event{}, false
}

// verify fails t for each failed check, for an error event, and when a check in want did not
// happen or the run did not finish.
func (r peerReport) verify(t *testing.T, want ...string) {
	t.Helper()
	seen := map[string]bool{}
	for _, e := range r {
		switch e.Ev {
		case "check":
			seen[e.Name] = true
			if !e.OK {
				t.Errorf("peer check %s failed: %s", e.Name, e.Detail)
			}
		case "error":
			t.Errorf("peer error: %s", e.Detail)
		}
	}
	for _, name := range want {
		if !seen[name] {
			t.Errorf("peer did not report check %q; report: %v", name, r)
		}
	}
	if _, ok := r.find("done"); !ok {
		t.Errorf("peer did not finish; report: %v", r)
	}
}

// closed returns the closed event of the report, failing t when there is none.
func (r peerReport) closed(t *testing.T) event {
	t.Helper()
	e, ok := r.find("closed")
	if !ok {
		t.Errorf("peer reported no close; report: %v", r)
	}
	return e
}

// requirement checks, cached per test binary.
var (
	reqMu    sync.Mutex
	reqCache = map[string]string{} // name -> "" when present, else why not
)

// require skips t (or, with CI=true, fails it) when a peer is missing. probe returns "" when the
// peer is usable, else why not; install says how to get it.
func require(t *testing.T, name, install string, probe func() string) {
	t.Helper()
	reqMu.Lock()
	why, ok := reqCache[name]
	if !ok {
		why = probe()
		reqCache[name] = why
	}
	reqMu.Unlock()
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing (%s); install it: %s", name, why, install)
	}
	t.Skipf("%s is missing (%s); install it with %s (with CI=true this fails)", name, why, install)
}

// probeCommand runs a short command and reports why it failed, or "".
func probeCommand(name string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return ""
}

// testCert is a self-signed certificate for 127.0.0.1 and localhost, made once per test binary,
// with its PEM files in certDir for the peers that read files.
var (
	certOnce    sync.Once
	testCert    tls.Certificate
	testCertPEM []byte
	certPool    *x509.CertPool
	certDir     string
	certFile    string // certificate PEM (also the CA file peers trust)
	keyFile     string
)

func setupCert(t *testing.T) {
	t.Helper()
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(time.Now().UnixNano()),
			Subject:               pkix.Name{CommonName: "ecows interop test"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
			DNSNames:              []string{"localhost"},
			IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			panic(err)
		}
		testCertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
		testCert, err = tls.X509KeyPair(testCertPEM, keyPEM)
		if err != nil {
			panic(err)
		}
		certPool = x509.NewCertPool()
		certPool.AppendCertsFromPEM(testCertPEM)
		certFile = filepath.Join(certDir, "cert.pem")
		keyFile = filepath.Join(certDir, "key.pem")
		if err := os.WriteFile(certFile, testCertPEM, 0o600); err != nil {
			panic(err)
		}
		if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
			panic(err)
		}
	})
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ecows-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	certDir = dir
	before := runtime.NumGoroutine()
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 && !goroutinesSettle(before) {
		buf := make([]byte, 1<<20)
		fmt.Fprintf(os.Stderr, "goroutines left running after the tests (%d before):\n%s\n", before, buf[:runtime.Stack(buf, true)])
		code = 1
	}
	os.Exit(code)
}

// goroutinesSettle waits up to 5 s for the number of goroutines to come back to n: every
// server, connection and reader the tests started must have stopped.
func goroutinesSettle(n int) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if runtime.NumGoroutine() <= n {
			return true
		}
	}
	return false
}

// serverTLS returns a TLS configuration serving the test certificate.
func serverTLS(t *testing.T) *tls.Config {
	setupCert(t)
	return &tls.Config{Certificates: []tls.Certificate{testCert}, NextProtos: []string{"http/1.1"}}
}

// clientTLS returns a TLS configuration that trusts the test certificate.
func clientTLS(t *testing.T) *tls.Config {
	setupCert(t)
	return &tls.Config{RootCAs: certPool}
}

// proc is a peer running as a child process in its own process group, which cleanup kills.
type proc struct {
	cmd    *exec.Cmd
	events *eventLog
	stderr *lockedBuffer
	done   chan struct{} // closed when the process has exited and its output is read
	err    error         // exit status, valid after done
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 1<<16 {
		l.b.Write(p)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startProc starts name with args; each JSON line it prints on stdout becomes an event.
func startProc(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	setProcessGroup(cmd)
	p := &proc{cmd: cmd, events: newEventLog(), stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var e event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Ev == "" {
				p.stderr.Write(append(append([]byte("stdout: "), sc.Bytes()...), '\n'))
				continue
			}
			p.events.add(e)
		}
		io.Copy(io.Discard, stdout)
		p.err = cmd.Wait()
	}()
	t.Cleanup(func() {
		killProcessGroup(cmd)
		<-p.done
		if out := p.stderr.String(); t.Failed() && out != "" {
			t.Logf("%s stderr:\n%s", filepath.Base(name), out)
		}
	})
	return p
}

// wait waits for the process to exit by itself, killing it after timeout.
func (p *proc) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("peer exited with %v; stderr:\n%s", p.err, p.stderr.String())
		}
	case <-time.After(timeout):
		killProcessGroup(p.cmd)
		<-p.done
		t.Errorf("peer did not finish within %v; events so far: %v; stderr:\n%s", timeout, p.events.all(), p.stderr.String())
	}
}

// startServerProc starts a peer server process and waits for its "listening" event.
func startServerProc(t *testing.T, env []string, name string, args ...string) *peerServer {
	t.Helper()
	p := startProc(t, env, name, args...)
	deadline := time.After(processStartWait)
	for {
		for _, e := range p.events.all() {
			if e.Ev == "listening" {
				return &peerServer{
					url:    fmt.Sprintf("ws://127.0.0.1:%d", e.Port),
					tlsURL: fmt.Sprintf("wss://127.0.0.1:%d", e.TLSPort),
					events: p.events,
				}
			}
		}
		select {
		case <-p.done:
			t.Fatalf("peer server exited before listening: %v; stderr:\n%s", p.err, p.stderr.String())
		case <-deadline:
			t.Fatalf("peer server not listening within %v; stderr:\n%s", processStartWait, p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// runClientProc runs a peer client process to completion and returns what it reported.
func runClientProc(t *testing.T, env []string, name string, args ...string) peerReport {
	t.Helper()
	p := startProc(t, env, name, args...)
	p.wait(t, scenarioTimeout+5*time.Second)
	return peerReport(p.events.all())
}

// listen opens a TCP listener on a free port of 127.0.0.1.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// peerServer is a running peer server: its base URLs and the events it reports. Its request
// paths choose the behaviour (see README.md): /echo/*, /fragments, /ping, /close-by-peer,
// /subprotocol/*, /big, /big-fragmented, /small/*.
type peerServer struct {
	url, tlsURL string
	events      *eventLog
}
