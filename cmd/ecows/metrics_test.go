package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/wstest"
)

// TestServeMetrics runs "ecows serve -metrics 127.0.0.1:0" as the README shows, echoes
// messages through it and reads the counts from the URL it prints.
func TestServeMetrics(t *testing.T) {
	wstest.CheckGoroutines(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr wstest.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"serve", "-addr", "127.0.0.1:0", "-metrics", "127.0.0.1:0", "-log-level", "disabled"}, strings.NewReader(""), &stdout, &stderr)
	}()
	defer func() {
		cancel()
		select {
		case c := <-code:
			if c != 0 {
				t.Errorf("exit %d, stderr:\n%s", c, stderr.String())
			}
		case <-time.After(shutdownTimeout + 5*time.Second):
			t.Error("serve did not stop")
		}
	}()
	lines := regexp.MustCompile(`WebSocket at (ws://\S+)\)\necows: metrics at (http://\S+)\n`)
	var m []string
	for deadline := time.Now().Add(10 * time.Second); m == nil; time.Sleep(10 * time.Millisecond) {
		if m = lines.FindStringSubmatch(stdout.String()); m == nil && time.Now().After(deadline) {
			t.Fatalf("no URLs printed; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
	}
	wsURL, metricsURL := m[1], m[2]
	if !strings.HasPrefix(metricsURL, "http://127.0.0.1:") || !strings.HasSuffix(metricsURL, "/metrics") {
		t.Fatalf("metrics URL %s", metricsURL)
	}

	c, _, err := handshake.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		c.WriteMessage(ctx, frame.OpText, []byte("hello"))
		if _, _, err := c.ReadMessage(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	c.Close(4001, "done")

	want := []string{
		`ecows_handshakes_total{reason="",route="/ws",status="101"} 1`,
		`ecows_messages_total{direction="in",route="/ws"} 3`,
		`ecows_message_bytes_total{direction="out",route="/ws"} 15`,
		`ecows_connections_closed_total{code="4xxx",route="/ws",side="peer"} 1`,
		`ecows_connections_open{route="/ws"} 0`,
	}
	var text string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(metricsURL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if text = string(b); resp.StatusCode == http.StatusOK && containsLines(text, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want lines %q in\n%s", want, text)
		}
	}
}

func containsLines(text string, lines []string) bool {
	for _, l := range lines {
		if !strings.Contains(text, "\n"+l+"\n") {
			return false
		}
	}
	return true
}
