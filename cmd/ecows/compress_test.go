package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/compressflag"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

func TestCompressBadValue(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "-compress", "yes"},
		{"serve", "-compress="},
		{"dial", "ws://127.0.0.1:1/ws", "-compress", "max"},
	} {
		var stdout, stderr wstest.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "-compress must be off, on or takeover") ||
			!strings.Contains(stderr.String(), "usage: ecows "+args[0]) {
			t.Errorf("ecows %s: exit %d, stderr:\n%s\nwant exit 2, the error and the usage", strings.Join(args, " "), code, stderr.String())
		}
	}
}

// TestCompressRoundTrip runs "ecows dial -compress on|takeover" against "serve -compress" in
// the same mode: dial shows the negotiated extension and the 2 KB line comes back.
func TestCompressRoundTrip(t *testing.T) {
	wstest.CheckGoroutines(t)
	for _, mode := range []string{"on", "takeover"} {
		t.Run(mode, func(t *testing.T) {
			o, _ := compressflag.Options(mode)
			s := startServe(t, serveConfig{compress: o})
			line := strings.Repeat("compress me ✓ ", 2000/len("compress me ✓ ")+1)[:2000]
			var stdout, stderr wstest.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			code := run(ctx, []string{"dial", s.wsURL(), "-compress", mode}, strings.NewReader(line+"\n"), &stdout, &stderr)
			if code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
			}
			out := stdout.String()
			wantExt := "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
			if mode == "takeover" {
				wantExt = "permessage-deflate"
			}
			want := "* connected to " + s.wsURL() + " (extensions " + wantExt + ")\n"
			if !strings.HasPrefix(out, want) {
				t.Errorf("dial printed\n%s\nwant it to start with\n%s", out, want)
			}
			if !strings.Contains(out, "< text: "+line+"\n") {
				t.Errorf("no echo of the 2000-byte line in\n%s", out)
			}
		})
	}
	// Without -compress on either side nothing is negotiated, and nothing shown.
	s := startServe(t, serveConfig{})
	var stdout, stderr wstest.Buffer
	if code := run(context.Background(), []string{"dial", s.wsURL(), "-compress", "on"}, strings.NewReader("x\n"), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	if want := "* connected to " + s.wsURL() + "\n"; !strings.HasPrefix(stdout.String(), want) {
		t.Errorf("dial -compress on to a server without it printed\n%s\nwant it to start with\n%s", stdout.String(), want)
	}
}

// TestServeCompressedEcho checks on the wire what serve -compress sends back: a message that
// came in one frame is echoed compressed (RSV1) through WriteMessage, fragments uncompressed
// through SendFrame, and both come back whole.
func TestServeCompressedEcho(t *testing.T) {
	wstest.CheckGoroutines(t)
	s := startServe(t, serveConfig{compress: &transport.CompressionOptions{}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := handshake.Dial(ctx, s.wsURL(), &handshake.DialOptions{Options: transport.Options{
		Compression: &transport.CompressionOptions{},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if !strings.Contains(c.Extensions(), "permessage-deflate") {
		t.Fatalf("extensions %q", c.Extensions())
	}
	msg := strings.Repeat("echo compressed ", 200)
	if _, err := c.WriteMessage(context.Background(), frame.OpText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	f, err := c.RecvFrame(5 * time.Second)
	if err != nil || !f.Fin || f.Opcode != frame.OpText || string(f.Payload) != msg || !f.Rsv1 {
		t.Fatalf("echo: fin %v %v rsv1 %v %d bytes, %v; want one compressed text frame with the message", f.Fin, f.Opcode, f.Rsv1, len(f.Payload), err)
	}
	// Fragments are echoed frame by frame, uncompressed.
	parts := []string{msg[:1000], msg[1000:2000], msg[2000:]}
	for i, p := range parts {
		op := frame.OpText
		if i > 0 {
			op = frame.OpContinuation
		}
		if _, err := c.SendFrame(i == len(parts)-1, op, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range parts {
		f, err := c.RecvFrame(5 * time.Second)
		if err != nil || f.Rsv1 || string(f.Payload) != p || f.Fin != (i == len(parts)-1) {
			t.Fatalf("fragment %d: fin %v %v rsv1 %v %d bytes, %v", i, f.Fin, f.Opcode, f.Rsv1, len(f.Payload), err)
		}
	}
	if err := c.Close(frame.CloseNormal, ""); err != nil {
		t.Error(err)
	}
}
