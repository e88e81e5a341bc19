package main

import (
	"bufio"
	"context"
	"flag"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string // in stderr
	}{
		{nil, 2, "usage: ecows <command>"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"help"}, 0, ""},
		{[]string{"dial"}, 2, "missing URL"},
		{[]string{"dial", "ws://a", "ws://b"}, 2, `unexpected argument "ws://b"`},
		{[]string{"dial", "http://example.com"}, 2, "URL must be ws://"},
		{[]string{"dial", "ws://a", "-H", "no colon"}, 2, "want 'Name: value'"},
		{[]string{"dial", "-nope", "ws://a"}, 2, "flag provided but not defined: -nope"},
		{[]string{"dial", "-h"}, 0, "usage: ecows dial URL"},
		{[]string{"serve", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"serve", "-log-level", "loud"}, 2, "-log-level must be"},
		{[]string{"serve", "-path", "ws"}, 2, "-path must start with /"},
		{[]string{"serve", "-rate", "-1"}, 2, "-rate must be"},
		{[]string{"serve", "-max-payload", "0"}, 2, "-max-payload must be"},
		{[]string{"serve", "-addr", "256.0.0.1:http"}, 1, "ecows serve: listen"},
		{[]string{"serve", "-addr", "127.0.0.1:0", "-metrics", "256.0.0.1:http"}, 1, "ecows serve: metrics: listen"},
		{[]string{"bench"}, 2, "missing URL"},
		{[]string{"bench", "ws://a", "-c", "0"}, 2, "-c must be"},
		{[]string{"bench", "ws://a", "-size", "8"}, 2, "-size must be"},
		{[]string{"bench", "ws://a", "-window", "0"}, 2, "-window must be"},
		{[]string{"bench", "ws://a", "-duration", "0s"}, 2, "-duration must be"},
		{[]string{"bench", "ws://a", "-duration", "soon"}, 2, "invalid value"},
	} {
		var stdout, stderr wstest.Buffer
		code := run(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("ecows %s: exit %d, stderr:\n%s\nwant exit %d and %q", strings.Join(tc.args, " "), code, stderr.String(), tc.code, tc.want)
		}
		if code == 2 && len(tc.args) > 0 && tc.args[0] != "frobnicate" && !strings.Contains(stderr.String(), "usage: ecows "+tc.args[0]) {
			t.Errorf("ecows %s: no usage in stderr:\n%s", strings.Join(tc.args, " "), stderr.String())
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	b := fs.Bool("b", false, "")
	n := fs.Int("n", 0, "")
	pos, err := parse(fs, []string{"-b", "one", "-n", "3", "two", "--", "-three"}, "a", "b", "c")
	if err != nil || !*b || *n != 3 || !slices.Equal(pos, []string{"one", "two", "-three"}) {
		t.Fatalf("%v %v %v %v", pos, err, *b, *n)
	}
}

// TestBinary builds the command and runs "ecows serve" as a user would: it reads the address
// from the first line, echoes a message through it and stops it with SIGTERM.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "ecows")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cmd := exec.CommandContext(ctx, bin, "serve", "-addr", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr wstest.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("%v; stderr:\n%s", err, stderr.String())
	}
	m := regexp.MustCompile(`^ecows: serving on http://127\.0\.0\.1:(\d+) \(WebSocket at (ws://127\.0\.0\.1:(\d+)/ws)\)\n$`).FindStringSubmatch(line)
	if m == nil || m[1] != m[3] || m[1] == "0" {
		t.Fatalf("first line %q", line)
	}

	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	c, _, err := handshake.Dial(dctx, m[2], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.WriteMessage(context.Background(), frame.OpText, []byte("through the binary"))
	if op, msg, err := c.ReadMessage(dctx, nil); err != nil || op != frame.OpText || string(msg) != "through the binary" {
		t.Fatalf("%v %q %v", op, msg, err)
	}

	// SIGTERM with the client connected: it gets 1001 and the process exits 0.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.ReadMessage(dctx, nil)
	if code := transport.CloseStatus(err); code != frame.CloseGoingAway {
		t.Errorf("client got %v, want 1001", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("exit: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(shutdownTimeout + 2*time.Second):
		t.Fatalf("no exit after SIGTERM; stderr:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "websocket close") {
		t.Errorf("the connection was not logged:\n%s", stderr.String())
	}
}
