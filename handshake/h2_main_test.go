package handshake

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain runs the tests with GODEBUG=http2xconnect=1, which net/http reads from the
// environment once, before any test code runs; without it the HTTP/2 server does not
// advertise extended CONNECT (RFC 8441). A //go:debug directive cannot set it, since
// net/http reads the variable itself rather than through the runtime's settings, so the test
// binary runs itself again with the variable set.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperServer())
	}
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

// helperEnv names the variable that makes the test binary an HTTP/2 echo server without
// extended CONNECT: net/http cannot have it on and off in one process.
const helperEnv = "ECOWS_HANDSHAKE_H2_HELPER"

// helperServer serves Upgrade over HTTP/1.1 and HTTP/2 (without extended CONNECT) on
// 127.0.0.1, prints its URL and its certificate in base64 on one line, and serves until its
// standard input closes.
func helperServer() int {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			op, msg, err := c.ReadMessage(context.Background(), nil)
			if err != nil {
				return
			}
			c.WriteMessage(op, msg)
		}
	}))
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
