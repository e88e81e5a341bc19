package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/compressflag"
	"github.com/ecows/ecows/transport"
)

// dialMaxPayload is the frame and message limit of the dial client: it shows what a server
// sends rather than guarding memory like a server must.
const dialMaxPayload = 16 << 20

// hexShown is how many bytes of a binary payload are shown in hex.
const hexShown = 32

// http2Modes maps -http2's values to DialOptions.HTTP2.
var http2Modes = map[string]handshake.HTTP2Mode{
	"auto": handshake.HTTP2Auto, "require": handshake.HTTP2Require, "off": handshake.HTTP2Off,
}

func runDial(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("dial", "URL [flags]", stderr)
	header := http.Header{}
	fs.Func("H", "add a request `header` given as 'Name: value' (repeatable)", func(s string) error {
		name, value, ok := strings.Cut(s, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return errors.New("want 'Name: value'")
		}
		header.Add(name, strings.TrimSpace(value))
		return nil
	})
	subprotocols := fs.String("subprotocol", "", "offer these `protocols` (comma-separated, most preferred first)")
	origin := fs.String("origin", "", "send `origin` as the Origin header, as a browser page would")
	insecure := fs.Bool("insecure", false, "skip TLS certificate verification (wss:// to test servers)")
	timeout := fs.Duration("timeout", 10*time.Second, "bound on the opening handshake")
	compress := compressflag.Flag(fs)
	h2 := fs.String("http2", "off", "WebSocket over HTTP/2 (RFC 8441): `mode` auto (wss:// where the server offers it, else HTTP/1.1), require (h2c for ws://) or off")
	stay := fs.Bool("reconnect", false, "stay connected: dial again, after a growing random delay, when the connection ends or an attempt fails for a reason that may pass")
	pos, err := parse(fs, args, "URL")
	if err != nil {
		return exitCode("dial", err, stderr)
	}
	compression, ok := compressflag.Options(*compress)
	if !ok {
		return exitCode("dial", usagef(fs, "-compress must be %s, not %q", compressflag.Values, *compress), stderr)
	}
	h2Mode, ok := http2Modes[*h2]
	if !ok {
		return exitCode("dial", usagef(fs, "-http2 must be auto, require or off, not %q", *h2), stderr)
	}
	if u, err := url.Parse(pos[0]); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return exitCode("dial", usagef(fs, "URL must be ws://host/path or wss://host/path, not %q", pos[0]), stderr)
	}
	opts := &handshake.DialOptions{
		Options: transport.Options{
			MaxPayloadLen: dialMaxPayload, MaxMessageLen: dialMaxPayload,
			Compression: compression,
		},
		Header:             header,
		Origin:             *origin,
		InsecureSkipVerify: *insecure,
		Timeout:            *timeout,
		HTTP2:              h2Mode,
	}
	if *subprotocols != "" {
		for p := range strings.SplitSeq(*subprotocols, ",") {
			opts.Subprotocols = append(opts.Subprotocols, strings.TrimSpace(p))
		}
	}
	if *stay {
		return exitCode("dial", dialReconnect(ctx, pos[0], opts, stdin, stdout), stderr)
	}
	return exitCode("dial", dial(ctx, pos[0], opts, stdin, stdout), stderr)
}

// dial is "ecows dial": it connects to uri, sends each line of in as a text message (or runs
// it as a command: /ping [data], /close [code] [reason]) and prints every frame received to
// out, one line each. It closes with 1000 when in ends or ctx is done, and returns nil once
// the connection has ended with a close handshake that it started or that the server
// started with 1000, 1001 or no code. It returns when the connection has ended, even if a
// read from in is still blocked; that read's goroutine ends when in returns.
func dial(ctx context.Context, uri string, opts *handshake.DialOptions, in io.Reader, out io.Writer) error {
	c, _, err := handshake.Dial(ctx, uri, opts)
	if err != nil {
		return handshakeError(err)
	}
	lines := make(chan string)
	quit := make(chan struct{})
	defer close(quit)
	go readLines(in, lines, quit)
	ended, err := converse(ctx, c, uri, &lineWriter{w: out}, lines)
	if ended {
		return err
	}
	return serverEnd(err)
}

// converse runs one connection, c to uri: it sends lines and prints what comes. It returns
// ended true, with the error of the close handshake, when input ended, a /close command was
// given or ctx is done; otherwise the error that ended the connection.
func converse(ctx context.Context, c *transport.Conn, uri string, w *lineWriter, lines <-chan string) (ended bool, err error) {
	defer c.CloseNow()
	var agreed []string
	if p := c.Subprotocol(); p != "" {
		agreed = append(agreed, "subprotocol "+p)
	}
	if e := c.Extensions(); e != "" {
		agreed = append(agreed, "extensions "+e)
	}
	if c.HTTP2() {
		agreed = append(agreed, "over HTTP/2")
	}
	if len(agreed) > 0 {
		w.printf("* connected to %s (%s)", uri, strings.Join(agreed, ", "))
	} else {
		w.printf("* connected to %s", uri)
	}

	received := make(chan error, 1)
	go func() { received <- receive(c, w) }()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return true, closeAndWait(c, frame.CloseNormal, "", received)
			}
			if code, reason, isClose := command(c, w, line); isClose {
				return true, closeAndWait(c, code, reason, received)
			}
		case <-ctx.Done():
			return true, closeAndWait(c, frame.CloseNormal, "", received)
		case err := <-received:
			return false, err
		}
	}
}

// serverEnd is dial's result for a connection that the server, or the network, ended with err.
func serverEnd(err error) error {
	var ce *transport.CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case frame.CloseNormal, frame.CloseGoingAway, frame.CloseNoStatus:
			return nil
		case frame.CloseAbnormal:
			return fmt.Errorf("connection lost: %w", err)
		}
		return fmt.Errorf("server closed the connection with %s", closeText(ce.Code, ce.Reason))
	}
	return err
}

// command acts on one line of input. It returns the close code and reason for a /close
// command that can be sent, and isClose false for anything else.
func command(c *transport.Conn, w *lineWriter, line string) (code frame.CloseCode, reason string, isClose bool) {
	name, arg, _ := strings.Cut(line, " ")
	switch {
	case strings.HasPrefix(line, "//"):
		line = line[1:] // "//x" sends the text "/x"
	case name == "/ping":
		if _, err := c.SendPing([]byte(arg)); err != nil {
			w.printf("! ping not sent: %v", err)
		}
		return 0, "", false
	case name == "/close":
		code = frame.CloseNormal
		if arg != "" {
			num, rest, _ := strings.Cut(arg, " ")
			n, err := strconv.ParseUint(num, 10, 16)
			if err != nil || !frame.CloseCode(n).Valid() {
				w.printf("! close not sent: %q is not a close code that may be sent (1000-1003, 1007-1014, 3000-4999)", num)
				return 0, "", false
			}
			code, reason = frame.CloseCode(n), rest
		}
		if _, err := frame.AppendClose(nil, code, reason); err != nil {
			w.printf("! close not sent: %v", err)
			return 0, "", false
		}
		return code, reason, true
	case strings.HasPrefix(line, "/"):
		w.printf("! unknown command %s (commands: /ping [data], /close [code] [reason]; //text sends /text)", name)
		return 0, "", false
	}
	if _, err := c.WriteMessage(context.Background(), frame.OpText, []byte(line)); err != nil {
		w.printf("! not sent: %v", err)
	}
	return 0, "", false
}

// closeAndWait sends a close frame and waits for the receiver to see the server's answer and
// the end of the stream, at most the Conn's close timeout.
func closeAndWait(c *transport.Conn, code frame.CloseCode, reason string, received <-chan error) error {
	if _, err := c.SendClose(code, reason); err != nil && !errors.Is(err, transport.ErrClosed) {
		c.CloseNow()
		<-received
		return fmt.Errorf("sending close: %w", err)
	}
	t := time.NewTimer(transport.DefaultCloseTimeout)
	defer t.Stop()
	var err error
	select {
	case err = <-received:
	case <-t.C:
		c.CloseNow()
		<-received
		return errors.New("the server did not answer the close frame")
	}
	var ce *transport.CloseError
	if errors.As(err, &ce) && ce.Code == frame.CloseAbnormal {
		return fmt.Errorf("connection lost while closing: %w", err)
	}
	return nil
}

// receive prints every frame from c until the connection ends, answers pings, and returns
// the error that ended it.
func receive(c *transport.Conn, w *lineWriter) error {
	var msg frame.Opcode // opcode of the message being received, for its continuations
	for {
		f, err := c.RecvFrame(0)
		if err != nil {
			return err
		}
		more := ""
		if !f.Fin {
			more = " (fragment)"
		}
		switch f.Opcode {
		case frame.OpText, frame.OpBinary:
			msg = f.Opcode
			w.printf("< %s%s: %s", f.Opcode, more, payloadText(msg, f.Payload))
		case frame.OpContinuation:
			w.printf("< continuation%s: %s", more, payloadText(msg, f.Payload))
		case frame.OpPing:
			w.printf("< ping%s", controlText(f.Payload))
			if _, err := c.SendPong(f.Payload); err != nil && !errors.Is(err, transport.ErrClosed) {
				w.printf("! pong not sent: %v", err)
			}
		case frame.OpPong:
			w.printf("< pong%s", controlText(f.Payload))
		case frame.OpClose:
			w.printf("< close: %s", closeText(f.CloseCode(), f.CloseReason()))
		}
	}
}

// payloadText formats a data frame's payload: text as it is (quoted if it holds control
// characters), binary as its length and hex.
func payloadText(op frame.Opcode, p []byte) string {
	if op == frame.OpText {
		return printable(string(p))
	}
	s := fmt.Sprintf("%d bytes", len(p))
	if len(p) > hexShown {
		return s + " " + hex.EncodeToString(p[:hexShown]) + "..."
	}
	if len(p) > 0 {
		s += " " + hex.EncodeToString(p)
	}
	return s
}

// controlText formats a ping or pong payload as ": payload", or "" when it is empty.
func controlText(p []byte) string {
	switch {
	case len(p) == 0:
		return ""
	case utf8.Valid(p):
		return ": " + printable(string(p))
	}
	return ": " + payloadText(frame.OpBinary, p)
}

// closeText formats a close code and reason: "1000 (normal closure) bye".
func closeText(code frame.CloseCode, reason string) string {
	s := strconv.Itoa(int(code))
	if name := code.String(); name != s {
		s += " (" + name + ")"
	}
	if reason != "" {
		s += " " + printable(reason)
	}
	return s
}

// printable returns s, or s quoted when printing it as it is would break the line.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return strconv.Quote(s)
		}
	}
	return s
}

// handshakeError explains a failed Dial; a refusal's error already carries the server's
// status and the first line of its body.
func handshakeError(err error) error {
	return fmt.Errorf("handshake failed: %w", err)
}

// readLines sends each line of in, without its line ending, on lines until in ends or quit
// is closed, then closes lines.
func readLines(in io.Reader, lines chan<- string, quit <-chan struct{}) {
	defer close(lines)
	r := bufio.NewReader(in)
	for {
		line, err := r.ReadString('\n')
		if line != "" || err == nil {
			line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
			select {
			case lines <- line:
			case <-quit:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// lineWriter writes whole lines from several goroutines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *lineWriter) printf(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintf(w.w, format+"\n", args...)
}
