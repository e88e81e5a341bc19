package handshake

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	_ "github.com/ecows/ecows/internal/xconnect" // GODEBUG=http2xconnect=1 unless GODEBUG sets it
)

// TestMain serves as helperServer when asked to. The tests run with extended CONNECT on in
// net/http's HTTP/2 server (GODEBUG=http2xconnect=1), which internal/xconnect turns on before
// net/http reads it.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperServer())
	}
	os.Exit(m.Run())
}

// helperEnv names the variable that makes the test binary an HTTP/2 echo server without
// extended CONNECT: net/http cannot have it on and off in one process.
const helperEnv = "ECOWS_HANDSHAKE_H2_HELPER"

// helperServer serves Upgrade over HTTP/1.1 and HTTP/2 (without extended CONNECT) on
// 127.0.0.1, prints its URL and its certificate in base64 on one line, and serves until its
// standard input closes.
func helperServer() int {
	srv := httptest.NewUnstartedServer(echoHandler(nil))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	fmt.Println(srv.URL, base64.StdEncoding.EncodeToString(srv.Certificate().Raw))
	bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

// startHelperServer starts the test binary as helperServer with GODEBUG=http2xconnect=0 and
// returns its URL and certificate (DER).
func startHelperServer(t *testing.T) (url string, cert []byte) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=1", "GODEBUG=http2xconnect=0")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	var s string
	select {
	case s = <-line:
	case <-time.After(20 * time.Second):
		t.Fatal("helper server did not start within 20 s")
	}
	url, b64, ok := strings.Cut(strings.TrimSpace(s), " ")
	if cert, err = base64.StdEncoding.DecodeString(b64); !ok || err != nil {
		t.Fatalf("helper server said %q", s)
	}
	return url, cert
}
