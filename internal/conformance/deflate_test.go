package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/compressflag"
)

// Groups 12 and 13 (permessage-deflate, RFC 7692), mirrored from Autobahn's case12_x_x.py:
// each case opens a connection with an offer and an answer, sends compressed messages one at
// a time, each the next slice of a data set, and checks every echo. The testee runs in each
// -compress mode of examples/autobahn. Beyond Autobahn, every message the testee sends is
// walked (deflatewalk_test.go): no back-reference may reach further than the window agreed
// for it, nor, without context takeover, into an earlier message, which compress/flate,
// primed with exactly the window the agreement allows, would refuse anyway.

// deflateModes are the testee's -compress modes, as examples/autobahn takes them.
var deflateModes = []string{"on", "takeover"}

// Bounds of groups 12 and 13: a case moves its messages through two compressors and three
// inflaters, under -race on a busy machine, so the number of messages is bounded by bytes.
const (
	deflateCaseTimeout = 60 * time.Second
	deflateBudget      = 16 << 10 // bytes per case, in messages of the case's size...
	deflateMaxCount    = 16       // ...at most this many...
	deflateMinCount    = 2        // ...and at least this many up to 64 KiB, one beyond
	// compressFrom is the size from which the testee must send its echoes compressed: over
	// transport.DefaultCompressionThreshold, so that a testee that never compresses fails.
	compressFrom = 1024
)

// dcase is one case of groups 12 and 13.
type dcase struct {
	id, desc string
	op       frame.Opcode
	data     func() []byte
	size     int
	count    int
	frag     int      // the suite's fragment size for its compressed payloads; 0: one frame
	params   []params // as a client the suite offers each in order; as a server it answers the first
}

// deflateGroup is a group of dcases; its subtests are named name-mode.
type deflateGroup struct {
	name  string
	cases func() []dcase
}

var deflateGroups = []deflateGroup{
	{"12-deflate", deflateCases},
	{"13-deflate-params", deflateParamCases},
}

// Autobahn's message sizes (MSG_SIZES), with their auto-fragment sizes; the last two go
// beyond it.
var deflateSizes = []struct{ size, frag int }{
	{16, 0}, {64, 0}, {256, 0}, {1024, 0}, {4096, 0}, {8192, 0}, {16384, 0}, {32768, 0}, {65536, 0}, {131072, 0},
	{8192, 256}, {16384, 256}, {32768, 256}, {65536, 256}, {131072, 256}, {131072, 1024}, {131072, 4096}, {131072, 32768},
	{262144, 0}, {524288, 0},
}

// autobahnSizes is how many of deflateSizes are Autobahn's.
const autobahnSizes = 18

// sized returns a case for each size deflateSizes[i] for i in sizes, numbered i+1 after
// prefix, as Autobahn numbers them.
func sized(prefix, desc string, op frame.Opcode, data func() []byte, sizes []int, ps ...params) []dcase {
	var cs []dcase
	for _, i := range sizes {
		s := deflateSizes[i]
		c := dcase{
			id: fmt.Sprintf("%s.%d", prefix, i+1), op: op, data: data, size: s.size, frag: s.frag, params: ps,
			count: deflateCount(s.size),
		}
		c.desc = fmt.Sprintf("%s: %d messages of %d bytes", desc, c.count, s.size)
		if s.frag > 0 {
			c.desc += fmt.Sprintf(", compressed payloads in fragments of %d bytes", s.frag)
		}
		if i >= autobahnSizes {
			c.id = "x-" + c.id
		}
		cs = append(cs, c)
	}
	return cs
}

// Which of deflateSizes each group runs: group 12 all of Autobahn's with text, the
// unfragmented ones with binary data, and one size beyond Autobahn's with each; group 13 four
// sizes from 16 bytes to 32 KiB, the largest window.
var (
	textSizes   = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}
	binarySizes = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 19}
	paramSizes  = []int{0, 2, 4, 7}
)

// deflateCount is how many messages of size a case sends: deflateBudget bytes, bounded.
func deflateCount(size int) int {
	if size > 64<<10 {
		return 1
	}
	return min(deflateMaxCount, max(deflateMinCount, deflateBudget/size))
}

// Group 12: compressed text and binary messages of every size under the default offer
// (Autobahn's 12.1-12.5 send five data sets; here one text and one binary).
func deflateCases() []dcase {
	return append(
		sized("12.1", "JSON text", frame.OpText, jsonData, textSizes, params{}),
		sized("12.2", "binary", frame.OpBinary, binaryData, binarySizes, params{})...)
}

// Group 13: the JSON data set under each parameter set. 13.1-13.7 are Autobahn's, which ask
// only the testee; the x- sets ask the suite's own side as well, and every window size.
func deflateParamCases() []dcase {
	sets := []struct {
		id, desc string
		ps       []params
	}{
		{"13.1", "default offer", []params{{}}},
		{"13.2", "testee: no context takeover", []params{{testee: ask{noContext: true}}}},
		{"13.3", "testee: window bits 8", []params{{testee: ask{bits: 8}}}},
		{"13.4", "testee: window bits 15", []params{{testee: ask{bits: 15}}}},
		{"13.5", "testee: no context takeover, window bits 8", []params{{testee: ask{true, 8}}}},
		{"13.6", "testee: no context takeover, window bits 15", []params{{testee: ask{true, 15}}}},
		{"13.7", "three offers, the first preferred", []params{{testee: ask{true, 8}}, {testee: ask{noContext: true}}, {}}},
		{"x-13.suite-no-takeover", "suite: no context takeover", []params{{suite: ask{noContext: true}}}},
		{"x-13.no-takeover", "neither side takes context over", []params{{testee: ask{noContext: true}, suite: ask{noContext: true}}}},
		{"x-13.windows-9-12", "testee: window bits 9; suite: 12", []params{{testee: ask{bits: 9}, suite: ask{bits: 12}}}},
		{"x-13.windows-10-8", "testee: no takeover, window bits 10; suite: no takeover, 8", []params{{testee: ask{true, 10}, suite: ask{true, 8}}}},
		{"x-13.windows-14-15", "testee: window bits 14; suite: no takeover, 15", []params{{testee: ask{bits: 14}, suite: ask{true, 15}}}},
	}
	for bits := 8; bits < 15; bits++ {
		sets = append(sets, struct {
			id, desc string
			ps       []params
		}{fmt.Sprintf("x-13.bits-%d", bits), fmt.Sprintf("both: window bits %d", bits), []params{{testee: ask{bits: bits}, suite: ask{bits: bits}}}})
	}
	var cs []dcase
	for _, s := range sets {
		cs = append(cs, sized(s.id, s.desc, frame.OpText, jsonData, paramSizes, s.ps...)...)
	}
	return cs
}

// TestServerDeflate runs groups 12 and 13 against the ecows echo server in each -compress
// mode, the suite being the client: go test -run 'ServerDeflate/13-deflate-params-takeover/13.3'.
func TestServerDeflate(t *testing.T) {
	runDeflateGroups(t, server)
}

// TestClientDeflate runs groups 12 and 13 against the ecows echo client in each -compress
// mode, the suite being the server.
func TestClientDeflate(t *testing.T) {
	runDeflateGroups(t, client)
}

// runDeflateGroups runs every case of groups 12 and 13, in parallel, against testees of
// role r in each mode.
func runDeflateGroups(t *testing.T, r role) {
	for _, mode := range deflateModes {
		var s *echoServer
		if r == server {
			opts := *serverOpts
			opts.Compression, _ = compressflag.Options(mode)
			s = newEchoServer(t, &opts)
		}
		for _, g := range deflateGroups {
			t.Run(g.name+"-"+mode, func(t *testing.T) {
				for _, c := range g.cases() {
					t.Run(c.id, func(t *testing.T) {
						t.Parallel()
						defer func() {
							if t.Failed() {
								t.Logf("case %s (%s, -compress %s): %s", c.id, r, mode, c.desc)
							}
						}()
						runDeflate(t, r, mode, s, c)
					})
				}
			})
		}
	}
}

// runDeflate plays one case: the handshake, the messages and their echoes, the close
// handshake, the TCP end and the end of the testee's goroutine.
func runDeflate(t *testing.T, r role, mode string, s *echoServer, c dcase) {
	deadline := time.Now().Add(deflateCaseTimeout)
	var dc *deflateConn
	if r == server {
		var offers []extParams
		for _, p := range c.params {
			offers = append(offers, offerFor(p))
		}
		dc = connectServerDeflate(t, s, mode, offers, deadline)
	} else {
		dc = connectClientDeflate(t, mode, c.params[0], deadline)
	}
	dc.conn.SetDeadline(deadline)
	mask := r == server
	tx := newDeflater(dc.ag.suite)
	defer tx.release()
	rx := history{size: dc.ag.testee.window()}
	data := c.data()
	seeded, reach := 0, 0
	for k := range c.count {
		msg := make([]byte, c.size)
		for n := 0; n < len(msg); {
			n += copy(msg[n:], data[(k*c.size+n)%len(data):])
		}
		if dc.ag.suite.bits < 15 {
			seeded += seedWindowReach(tx.hist.dict(dc.ag.suite), msg, dc.ag.suite.window())
		}
		dict := bytes.Clone(tx.hist.dict(dc.ag.suite))
		p := tx.compress(msg)
		// The suite's own encoder first: a fault here is the suite's, not the testee's.
		if dc.ag.suite.bits < 15 {
			w, err := walkDeflate(dict, p)
			if err != nil || !bytes.Equal(w.out[len(dict):], msg) || w.maxDist > dc.ag.suite.window() {
				t.Fatalf("message %d: the suite's own encoder (%v) is wrong: %v, longest distance %d", k+1, dc.ag.suite, err, w.maxDist)
			}
			reach = max(reach, w.maxDist)
		}
		var out []byte
		for i, f := range fragments(c.op, p, cmp0(c.frag, len(p)+1)) {
			if i == 0 {
				f.rsv = 4
			}
			out = append(out, encode(f, mask)...)
		}
		if _, err := dc.conn.Write(out); err != nil {
			t.Fatalf("message %d: writing to the %v: %v", k+1, r, err)
		}
		op, got, compressed, err := dc.readMessage(r)
		if err != nil {
			t.Fatalf("message %d of %d bytes: %v", k+1, len(msg), err)
		}
		if op != c.op {
			t.Fatalf("message %d: echoed as %v, sent as %v", k+1, op, c.op)
		}
		if !compressed {
			if !bytes.Equal(got, msg) {
				t.Fatalf("message %d: echoed uncompressed, %d bytes differing from the %d sent", k+1, len(got), len(msg))
			}
			if len(msg) >= compressFrom {
				t.Fatalf("message %d: %d bytes echoed uncompressed", k+1, len(msg))
			}
			continue
		}
		checkCompressed(t, k+1, rx.dict(dc.ag.testee), got, msg, dc.ag.testee)
		rx.add(msg)
	}
	if seeded > 0 && reach != dc.ag.suite.window() {
		t.Fatalf("the suite's messages reach back %d bytes at most; the window (%v) is %d", reach, dc.ag.suite, dc.ag.suite.window())
	}
	dc.closeAndEnd(t, r, mask)
}

// checkCompressed checks the testee's compressed message p, sent under s after the bytes of
// dict (the window it may refer to), against msg: the walker and compress/flate must both
// inflate it to msg, and no back-reference may reach past the window.
func checkCompressed(t *testing.T, k int, dict, p, msg []byte, s deflateSide) {
	t.Helper()
	w, err := walkDeflate(dict, p)
	switch {
	case w.maxDist > s.window():
		t.Fatalf("message %d: a back-reference reaches %d bytes back, past the agreed window of %d (%v)", k, w.maxDist, s.window(), s)
	case errors.Is(err, errWalk) && s.noContext && strings.Contains(err.Error(), "distance"):
		t.Fatalf("message %d: refers to an earlier message without context takeover: %v", k, err)
	case err != nil:
		t.Fatalf("message %d: %d compressed bytes (%v): %v", k, len(p), s, err)
	case !bytes.Equal(w.out[len(dict):], msg):
		t.Fatalf("message %d: inflates to %d bytes differing from the %d sent", k, len(w.out)-len(dict), len(msg))
	}
	if out, err := inflate(dict, p); err != nil || !bytes.Equal(out, msg) {
		t.Fatalf("message %d: compress/flate inflates %d bytes, %v; want the %d sent", k, len(out), err, len(msg))
	}
}

// readMessage reads the testee's next message, checking each frame against the rules of the
// testee's role and of permessage-deflate (RSV1 on the first frame only).
func (dc *deflateConn) readMessage(r role) (op frame.Opcode, p []byte, compressed bool, err error) {
	for {
		f, err := frame.ReadFrame(dc.br, maxLen+1)
		switch {
		case err != nil:
			return 0, nil, false, fmt.Errorf("reading the echo: %w", err)
		case r == server && f.Masked:
			return 0, nil, false, errors.New("masked frame from the server")
		case r == client && !f.Masked:
			return 0, nil, false, errors.New("unmasked frame from the client")
		case f.Rsv2 || f.Rsv3:
			return 0, nil, false, fmt.Errorf("RSV2 or RSV3 set in a %v frame", f.Opcode)
		case f.Opcode == frame.OpClose:
			return 0, nil, false, fmt.Errorf("%s instead of the echo", describeClose(f.Payload))
		case f.Opcode.IsControl():
			return 0, nil, false, fmt.Errorf("unexpected %v frame", f.Opcode)
		case f.Rsv1 && f.Opcode == frame.OpContinuation:
			return 0, nil, false, errors.New("RSV1 set in a continuation frame")
		case (op == 0) != (f.Opcode != frame.OpContinuation):
			return 0, nil, false, fmt.Errorf("%v frame out of order", f.Opcode)
		}
		if op == 0 {
			op, compressed = f.Opcode, f.Rsv1
		}
		p = append(p, f.Payload...)
		if f.Fin {
			return op, p, compressed, nil
		}
	}
}

// closeAndEnd closes with 1000, wants 1000 back, and then the end of the TCP connection
// and of the testee's goroutine: the server closes first (RFC 6455 section 7.1.1).
func (dc *deflateConn) closeAndEnd(t *testing.T, r role, mask bool) {
	t.Helper()
	if _, err := dc.conn.Write(encode(closeFrame(frame.CloseNormal, ""), mask)); err != nil {
		t.Fatalf("writing the close frame: %v", err)
	}
	f, err := frame.ReadFrame(dc.br, maxLen+1)
	if err != nil || f.Opcode != frame.OpClose || f.CloseCode() != frame.CloseNormal {
		t.Fatalf("got %v %s, %v; want the close frame with 1000", f.Opcode, describeClose(f.Payload), err)
	}
	if r == client {
		dc.conn.CloseWrite()
	}
	dc.conn.SetReadDeadline(time.Now().Add(endWithin))
	if n, err := io.Copy(io.Discard, dc.br); err != nil || n > 0 {
		t.Fatalf("after the close handshake: %d more bytes, %v; want the end of the connection", n, err)
	}
	select {
	case <-dc.done:
	case <-time.After(doneWithin):
		t.Fatalf("the %v testee has not returned %v after the TCP connection ended", r, doneWithin)
	}
}
