// Command client runs every case of the Autobahn|Testsuite fuzzing server (wstest -m
// fuzzingserver), which tests a client against RFC 6455 and, with -compress on or takeover,
// permessage-deflate (RFC 7692, groups 12 and 13), with the ecows client echoing.
// Run: the suite with examples/autobahn/fuzzingserver.json (README.md), then:
// go run ./examples/autobahn/client [-url ws://127.0.0.1:9001] [-agent ecows] [-compress off]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/compressflag"
	"github.com/ecows/ecows/transport"
)

// maxLen is over the largest message of the suite (case 9.1.6 sends 16 MiB in one frame).
const maxLen = 16 << 20

// caseTimeout bounds one case; the slowest (9.* with 16 MiB messages) take seconds.
const caseTimeout = 2 * time.Minute

func main() {
	base := flag.String("url", "ws://127.0.0.1:9001", "the fuzzing server")
	agent := flag.String("agent", "ecows", "the name of this client in the reports")
	compress := compressflag.Flag(flag.CommandLine)
	flag.Parse()
	compression, ok := compressflag.Options(*compress)
	if !ok {
		fmt.Fprintf(os.Stderr, "-compress must be %s, not %q\n", compressflag.Values, *compress)
		flag.Usage()
		os.Exit(2)
	}
	if err := run(context.Background(), strings.TrimSuffix(*base, "/"), *agent, dialOptions(compression), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// dialOptions are the limits the suite needs, with compression as -compress says.
func dialOptions(compression *transport.CompressionOptions) *handshake.DialOptions {
	return &handshake.DialOptions{
		Options: transport.Options{MaxPayloadLen: maxLen, MaxMessageLen: maxLen, Compression: compression},
	}
}

// run asks the fuzzing server at base how many cases it has, runs each, and has it write
// its reports for agent. A case that fails is the suite's to judge, so only failures to talk
// to the suite at all end the run. Each case's line shows the extensions agreed for it.
func run(ctx context.Context, base, agent string, opts *handshake.DialOptions, out io.Writer) error {
	n, err := caseCount(ctx, base, opts)
	if err != nil {
		return fmt.Errorf("getCaseCount: %w", err)
	}
	q := "&agent=" + url.QueryEscape(agent)
	for i := 1; i <= n; i++ {
		ext, err := runCase(ctx, base+"/runCase?case="+strconv.Itoa(i)+q, opts)
		line := fmt.Sprintf("case %d/%d", i, n)
		if ext != "" {
			line += " (" + ext + ")"
		}
		if err != nil {
			line += ": " + err.Error()
		}
		fmt.Fprintln(out, line)
	}
	if err := wait(ctx, base+"/updateReports?agent="+url.QueryEscape(agent), opts); err != nil {
		return fmt.Errorf("updateReports: %w", err)
	}
	fmt.Fprintf(out, "reports updated for agent %s\n", agent)
	return nil
}

// caseCount reads the number of cases, sent as one text message.
func caseCount(ctx context.Context, base string, opts *handshake.DialOptions) (int, error) {
	c, _, err := handshake.Dial(ctx, base+"/getCaseCount", opts)
	if err != nil {
		return 0, err
	}
	defer c.CloseNow()
	_, msg, err := c.ReadMessage(ctx, nil)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(string(msg))
	if err != nil {
		return 0, fmt.Errorf("case count %q: %w", msg, err)
	}
	c.Close(frame.CloseNormal, "")
	return n, nil
}

// runCase echoes every message of one case, with its opcode, until the server closes, and
// returns the extensions agreed. The Conn answers pings and closes with the right code on any
// violation.
func runCase(ctx context.Context, u string, opts *handshake.DialOptions) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, caseTimeout)
	defer cancel()
	c, _, err := handshake.Dial(ctx, u, opts)
	if err != nil {
		return "", err
	}
	defer c.CloseNow()
	var buf []byte
	for {
		op, msg, err := c.ReadMessage(ctx, buf[:0])
		if err != nil {
			return c.Extensions(), ended(err)
		}
		if _, err := c.WriteMessage(context.Background(), op, msg); err != nil {
			return c.Extensions(), err
		}
		buf = msg
	}
}

// wait connects to u and waits for the server to close, which it does once it is done.
func wait(ctx context.Context, u string, opts *handshake.DialOptions) error {
	ctx, cancel := context.WithTimeout(ctx, caseTimeout)
	defer cancel()
	c, _, err := handshake.Dial(ctx, u, opts)
	if err != nil {
		return err
	}
	defer c.CloseNow()
	_, _, err = c.ReadMessage(ctx, nil)
	return ended(err)
}

// ended returns nil for a connection that ended with a close handshake, and err otherwise.
func ended(err error) error {
	var ce *transport.CloseError
	if errors.As(err, &ce) && ce.Code != frame.CloseAbnormal {
		return nil
	}
	return err
}
