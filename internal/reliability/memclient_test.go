package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/transport"
)

// The memory tests (memory_test.go) run their clients in a child process, this test binary
// again with memClientEnv set to a memClientSpec in JSON: TestMain then runs memClientMain
// instead of the tests. The server process is so measured alone, and each side needs one file
// descriptor per connection, not two.
//
// The server process drives the child one step at a time, with a line on its standard input,
// and the child answers each step with one line on its standard output, prefixed with memTag:
//
//	dial N    open N more connections, in parallel; plain ones
//	dialx N   the same with spec.HeaderBytes of extra request headers
//	act N     do spec's action on the next N connections not yet acted on
//	close     close every connection at once (CloseNow) and forget them
//
// and "ok ..." or "error ..." as the answer. The child exits when its standard input ends,
// which is also how the server process stops it; setPdeathsig covers a server process that dies.
const (
	memClientEnv = "ECOWS_MEM_CLIENT"
	memTag       = "ecows-mem: "
)

// memClientSpec is what the child does to the server.
type memClientSpec struct {
	URL         string
	Compress    bool // offer permessage-deflate, and fail unless the server accepts it
	HeaderBytes int  // extra request header bytes sent by "dialx"

	// Declare, when set, makes act send the header of a binary frame declaring Declare bytes
	// of payload (RSV1 set when Compress), then Sent bytes of it, then nothing.
	Declare int64
	Sent    int

	// Message, when set, makes act send one message of Message bytes (text, JSON when JSON
	// is set) and wait for the server's answer, "ok" or the message echoed, so that the
	// server has handled it.
	Message int
	JSON    bool
}

// declaredFrame returns what act sends for a declared-but-unsent frame.
func (s *memClientSpec) declaredFrame() []byte {
	b := frame.AppendHeader(nil, frame.Header{Fin: true, Rsv1: s.Compress, Opcode: frame.OpBinary, Masked: true, Key: clientKey, Length: s.Declare})
	return append(b, bytes.Repeat([]byte{0x55}, s.Sent)...)
}

// message returns the message act sends: compressible text, or a JSON object with it.
func (s *memClientSpec) message() []byte {
	if !s.JSON {
		return bytes.Repeat([]byte("ecows "), s.Message/6+1)[:s.Message]
	}
	m := []byte(`{"data":"`)
	m = append(m, bytes.Repeat([]byte("x"), s.Message-len(m)-2)...)
	return append(m, `"}`...)
}

// extraHeaders returns HeaderBytes of request headers, counted as on the wire ("Name: value\r\n"),
// in lines of 512 bytes as a browser's cookies and tokens might come.
func (s *memClientSpec) extraHeaders() http.Header {
	h := http.Header{}
	for i, left := 0, s.HeaderBytes; left > 0; i++ {
		name := fmt.Sprintf("X-Pad-%03d", i)
		n := max(min(left, 512)-len(name)-4, 1)
		h.Set(name, strings.Repeat("p", n))
		left -= len(name) + 4 + n
	}
	return h
}

// memClientConn is one connection of the child.
type memClientConn struct {
	c   *transport.Conn
	raw net.Conn
}

// memClientMain is the child process; it returns the exit code.
func memClientMain(specJSON string) int {
	var spec memClientSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "%s=%q: %v\n", memClientEnv, specJSON, err)
		return 2
	}
	// A child the server process forgot must not outlive it by long, pdeathsig or not.
	time.AfterFunc(30*time.Minute, func() {
		fmt.Fprintln(os.Stderr, "memory client: still running after 30 minutes; exiting")
		os.Exit(3)
	})
	var conns []*memClientConn
	acted := 0
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		verb, arg, _ := strings.Cut(sc.Text(), " ")
		n, _ := strconv.Atoi(arg)
		var err error
		switch verb {
		case "dial", "dialx":
			if msg, err := setNofile(uint64(len(conns) + n + 1024)); err != nil {
				fmt.Printf("%serror %v\n", memTag, err)
				continue
			} else if msg != "" {
				fmt.Fprintln(os.Stderr, msg)
			}
			var more []*memClientConn
			more, err = memDial(&spec, n, verb == "dialx")
			conns = append(conns, more...)
		case "act":
			n = min(n, len(conns)-acted)
			err = memAct(&spec, conns[acted:acted+n])
			acted += n
		case "close":
			for _, mc := range conns {
				mc.c.CloseNow()
			}
			conns, acted = nil, 0
		default:
			err = fmt.Errorf("unknown step %q", sc.Text())
		}
		if err != nil {
			fmt.Printf("%serror %s: %v\n", memTag, verb, err)
			continue
		}
		fmt.Printf("%sok %s %d\n", memTag, verb, n)
	}
	return 0
}

// memParallel runs f(i) for i in [0, n) on up to 64 goroutines and returns the first error.
// Bounded: the listen backlog is finite, and the server has two cores.
func memParallel(n int, f func(i int) error) error {
	var next atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for range min(n, 64) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					err = fmt.Errorf("connection %d: %w", i, err)
					first.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		return *p
	}
	return nil
}

// memDial opens n connections, with the extra headers when headers is set.
func memDial(spec *memClientSpec, n int, headers bool) ([]*memClientConn, error) {
	conns := make([]*memClientConn, n)
	err := memParallel(n, func(i int) error {
		mc := &memClientConn{}
		opts := &handshake.DialOptions{Proxy: noProxy, NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, network, addr)
			mc.raw = nc
			return nc, err
		}}
		if spec.Compress {
			opts.Compression = &transport.CompressionOptions{}
		}
		if headers {
			opts.Header = spec.extraHeaders()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, _, err := handshake.Dial(ctx, spec.URL, opts)
		if err != nil {
			return err
		}
		mc.c = c
		conns[i] = mc
		if spec.Compress && !strings.Contains(c.Extensions(), "permessage-deflate") {
			return fmt.Errorf("the server did not accept permessage-deflate (extensions %q)", c.Extensions())
		}
		return nil
	})
	if err != nil {
		for _, mc := range conns {
			if mc != nil {
				mc.c.CloseNow()
			}
		}
		return nil, err
	}
	return conns, nil
}

// memAct does the spec's action on conns.
func memAct(spec *memClientSpec, conns []*memClientConn) error {
	switch {
	case spec.Declare > 0:
		b := spec.declaredFrame()
		return memParallel(len(conns), func(i int) error {
			// Past the Conn, which would not send a frame it does not have: the bytes go
			// straight to the socket, and the Conn is never used again.
			_, err := conns[i].raw.Write(b)
			return err
		})
	case spec.Message > 0:
		m := spec.message()
		op := frame.OpText
		return memParallel(len(conns), func(i int) error {
			c := conns[i].c
			out := c.Stats().BytesOut
			if _, err := c.WriteMessage(context.Background(), op, m); err != nil {
				return err
			}
			if sent := c.Stats().BytesOut - out; spec.Compress && sent >= uint64(len(m)) {
				return fmt.Errorf("a message of %d bytes took %d bytes on the wire: not compressed", len(m), sent)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_, ack, err := c.ReadMessage(ctx, nil)
			if err == nil && string(ack) != "ok" && !bytes.Equal(ack, m) {
				err = fmt.Errorf("the server answered %d bytes, want ok or the message back", len(ack))
			}
			return err
		})
	}
	return errors.New("the spec has no action")
}
