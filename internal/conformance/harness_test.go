package conformance

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
)

// Bounds. Autobahn gives a testee 1 s (killAfter(1)) to fail a connection after the offending
// data; the same bound holds here for failing and for failing fast. The rest only keep a broken
// testee from hanging the suite.
const (
	failWithin  = time.Second      // the testee's close after a violation, and any awaited answer
	endWithin   = 2 * time.Second  // TCP end after the close handshake
	doneWithin  = 2 * time.Second  // the testee's goroutine after the TCP end
	caseTimeout = 10 * time.Second // the whole exchange of one case
	pause       = 100 * time.Millisecond
)

// maxLen is the testee's MaxPayloadLen and MaxMessageLen: over the largest message of the
// suite, as in examples/autobahn.
const maxLen = 16 << 20

// noStatus in a case's close codes stands for a close frame without a payload.
const noStatus = frame.CloseNoStatus

// role says which side of ecows is under test.
type role int

const (
	server role = iota // the testee is an ecows server; the suite is the client and masks its frames
	client             // the testee is an ecows client; the suite is the server
)

func (r role) String() string {
	if r == client {
		return "client"
	}
	return "server"
}

// wframe is a frame the suite sends, encoded for the role when it is written.
type wframe struct {
	fin     bool
	rsv     byte // Autobahn's rsv value: 4 is RSV1, 2 is RSV2, 1 is RSV3
	op      frame.Opcode
	payload []byte
	// When part is set only payload[from:to] goes out (with the header when from is 0), so
	// that one frame can be spread over steps with pauses between.
	part     bool
	from, to int
}

// step is one burst of bytes from the suite.
type step struct {
	frames []wframe
	chop   int // 0: one write; chopFrames: one write per frame; n > 0: writes of n bytes
	// await is the number of events (counted from the start of the case) that must have
	// arrived, within failWithin, before the suite goes on.
	await int
	pause time.Duration // sleep after the writes
	// open: after the pause the testee must not have closed the connection (Autobahn's
	// "timeout" events, which it records only while the connection is open).
	open bool
	// failFast: the testee's close must arrive within failWithin of these writes; the steps
	// after it are withheld, as Autobahn withholds them once the connection is failed.
	failFast bool
}

const chopFrames = -1

// event is what the testee sends: a whole message (OpText or OpBinary, reassembled), a ping,
// a pong or a close (the close's raw payload).
type event struct {
	op   frame.Opcode
	data []byte
}

func (e event) String() string {
	d := e.data
	s := ""
	if len(d) > 40 {
		d, s = d[:40], fmt.Sprintf("... (%d bytes)", len(e.data))
	}
	return fmt.Sprintf("%v %q%s", e.op, d, s)
}

// tcase is one conformance case: what the suite sends and what it must see.
type tcase struct {
	id, desc string
	steps    []step
	// want lists the events the testee must send before its close frame, in order, byte-exact.
	want []event
	// fails: the testee must fail the connection itself (Autobahn's closedByMe False); the
	// suite sends no close of its own but answers the testee's. Otherwise the suite closes
	// with 1000 once want has arrived, unless a step already sent a close frame.
	fails bool
	// codes are the close codes the testee may answer with (default: 1000). noStatus stands
	// for an empty close payload.
	codes []frame.CloseCode
	// slowAnswer: the suite answers the testee's close only after a pause. A testee that
	// has failed the connection must still be reading then (it may have half-closed), so
	// that the answer is not refused with a reset.
	slowAnswer bool
	limit      time.Duration // bound of the whole exchange; caseTimeout when zero
}

// Frame builders.

func text(s string) wframe     { return wframe{fin: true, op: frame.OpText, payload: []byte(s)} }
func binary(b []byte) wframe   { return wframe{fin: true, op: frame.OpBinary, payload: b} }
func ping(s string) wframe     { return wframe{fin: true, op: frame.OpPing, payload: []byte(s)} }
func pong(s string) wframe     { return wframe{fin: true, op: frame.OpPong, payload: []byte(s)} }
func closeRaw(p []byte) wframe { return wframe{fin: true, op: frame.OpClose, payload: p} }
func first(s string) wframe    { return wframe{op: frame.OpText, payload: []byte(s)} }
func cont(fin bool, s string) wframe {
	return wframe{fin: fin, op: frame.OpContinuation, payload: []byte(s)}
}

func closeFrame(code frame.CloseCode, reason string) wframe {
	p := []byte{byte(code >> 8), byte(code)}
	return closeRaw(append(p, reason...))
}

func (w wframe) withRSV(rsv byte) wframe { w.rsv = rsv; return w }

// fragments splits a message into frames of at most size bytes (at least one frame).
func fragments(op frame.Opcode, p []byte, size int) []wframe {
	var fs []wframe
	for first := true; first || len(p) > 0; first = false {
		n := min(size, len(p))
		f := wframe{op: frame.OpContinuation, payload: p[:n]}
		if first {
			f.op = op
		}
		p = p[n:]
		f.fin = len(p) == 0
		fs = append(fs, f)
	}
	return fs
}

// Event builders.

func msgText(s string) event   { return event{frame.OpText, []byte(s)} }
func msgBinary(b []byte) event { return event{frame.OpBinary, b} }
func pongEvent(s string) event { return event{frame.OpPong, []byte(s)} }
func send(fs ...wframe) step   { return step{frames: fs} }
func sendChop(n int, fs ...wframe) step {
	return step{frames: fs, chop: n}
}

// keyFor derives a masking key from the frame, so that consecutive frames get different keys
// while the parts of one frame share theirs.
func keyFor(w wframe) [4]byte {
	h := fnv.New32a()
	fmt.Fprintf(h, "%d/%v/%d/%d", w.op, w.fin, w.rsv, len(w.payload))
	s := h.Sum32() | 0x01010101 // no zero byte: a zero key would hide unmasking bugs
	return [4]byte{byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}
}

// encode returns the bytes of w on the wire, masked when the suite is the client.
func encode(w wframe, mask bool) []byte {
	h := frame.Header{
		Fin: w.fin, Rsv1: w.rsv&4 != 0, Rsv2: w.rsv&2 != 0, Rsv3: w.rsv&1 != 0,
		Opcode: w.op, Masked: mask, Key: keyFor(w),
	}
	b := frame.AppendFrame(nil, h, w.payload)
	if !w.part {
		return b
	}
	hl := len(b) - len(w.payload)
	start := hl + w.from
	if w.from == 0 {
		start = 0
	}
	return b[start : hl+w.to]
}

// rx is one item the suite's reader got from the testee.
type rx struct {
	ev  event
	err error // a protocol violation by the testee (bad), or how the stream ended (end)
	end bool
	at  time.Time
}

// stream is the suite's end of a connection: a *net.TCPConn, or an HTTP/2 stream (h2_test.go).
type stream interface {
	io.Writer
	SetWriteDeadline(time.Time) error
	CloseWrite() error
	Close() error
}

// peer is the suite's side of one connection.
type peer struct {
	role role
	conn stream
	br   *bufio.Reader

	mu     sync.Mutex
	got    []rx
	next   int // first item of got not yet taken
	notify chan struct{}
	ended  chan struct{} // closed when the reader has stopped
}

func newPeer(r role, conn stream, br *bufio.Reader) *peer {
	p := &peer{role: r, conn: conn, br: br, notify: make(chan struct{}, 1), ended: make(chan struct{})}
	go p.readLoop()
	return p
}

func (p *peer) push(it rx) {
	it.at = time.Now()
	p.mu.Lock()
	p.got = append(p.got, it)
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// readLoop parses every frame from the testee, checks it against the rules for the testee's
// role, reassembles messages, and records events until the stream ends.
func (p *peer) readLoop() {
	defer close(p.ended)
	var msg []byte
	var msgOp frame.Opcode
	closed := false
	for {
		f, err := frame.ReadFrame(p.br, maxLen+1)
		if err != nil {
			p.push(rx{err: err, end: true})
			return
		}
		bad := func(format string, args ...any) { p.push(rx{err: fmt.Errorf(format, args...)}) }
		switch {
		case closed:
			bad("%v frame after the close frame", f.Opcode)
		case p.role == server && f.Masked:
			bad("masked frame from the server")
		case p.role == client && !f.Masked:
			bad("unmasked frame from the client")
		case f.Rsv1 || f.Rsv2 || f.Rsv3:
			bad("RSV bit set in a %v frame", f.Opcode)
		}
		switch f.Opcode {
		case frame.OpText, frame.OpBinary:
			if msgOp != 0 {
				bad("new %v message inside a fragmented %v message", f.Opcode, msgOp)
			}
			msgOp, msg = f.Opcode, append([]byte(nil), f.Payload...)
		case frame.OpContinuation:
			if msgOp == 0 {
				bad("continuation frame without a message")
				continue
			}
			msg = append(msg, f.Payload...)
		default:
			if f.Opcode == frame.OpClose {
				closed = true
			}
			p.push(rx{ev: event{f.Opcode, f.Payload}})
			continue
		}
		if f.Fin {
			p.push(rx{ev: event{msgOp, msg}})
			msgOp, msg = 0, nil
		}
	}
}

// take returns the next item from the testee, waiting until deadline.
func (p *peer) take(deadline time.Time) (rx, bool) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		p.mu.Lock()
		if p.next < len(p.got) {
			it := p.got[p.next]
			p.next++
			p.mu.Unlock()
			return it, true
		}
		p.mu.Unlock()
		select {
		case <-p.notify:
		case <-t.C:
			return rx{}, false
		}
	}
}

// closedYet reports whether a close frame or the end of the stream has arrived, taken or not.
func (p *peer) closedYet() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, it := range p.got {
		if it.end || it.ev.op == frame.OpClose {
			return true
		}
	}
	return false
}

func (p *peer) write(b []byte, deadline time.Time) error {
	p.conn.SetWriteDeadline(deadline)
	_, err := p.conn.Write(b)
	return err
}

// conversation is the state of one case being run.
type conversation struct {
	t       *testing.T
	c       tcase
	p       *peer
	matched int    // events of c.want seen so far
	closeEv *event // the testee's close frame
	end     *rx    // the end of the stream
}

// takeUntil consumes items until cond holds; false means deadline passed first. Every item
// is checked as it comes: a violation by the testee, an unexpected event, or the end of the
// stream before a close frame fails the case.
func (cv *conversation) takeUntil(deadline time.Time, cond func() bool) bool {
	t := cv.t
	t.Helper()
	for !cond() {
		it, ok := cv.p.take(deadline)
		if !ok {
			return false
		}
		switch {
		case it.end:
			if cv.closeEv == nil {
				t.Fatalf("the connection ended (%v) without a close frame from the %v; %s", it.err, cv.p.role, cv.progress())
			}
			cv.end = &it
		case it.err != nil:
			t.Fatalf("the %v broke the protocol: %v", cv.p.role, it.err)
		case it.ev.op == frame.OpClose:
			if cv.closeEv != nil {
				t.Fatalf("second close frame from the %v", cv.p.role)
			}
			cv.closeEv = &it.ev
		case cv.matched >= len(cv.c.want) || !equalEvent(cv.c.want[cv.matched], it.ev):
			want := "nothing more before the close frame"
			if cv.matched < len(cv.c.want) {
				want = cv.c.want[cv.matched].String()
			}
			t.Fatalf("event %d from the %v: got %v, want %s", cv.matched+1, cv.p.role, it.ev, want)
		default:
			cv.matched++
		}
	}
	return true
}

func (cv *conversation) progress() string {
	return fmt.Sprintf("%d of %d expected events seen", cv.matched, len(cv.c.want))
}

func equalEvent(a, b event) bool { return a.op == b.op && bytes.Equal(a.data, b.data) }

// run plays one case against a connected testee: the steps, the close handshake, the TCP
// end, and the end of the testee's goroutine.
func run(t *testing.T, r role, c tcase) {
	limit := c.limit
	if limit == 0 {
		limit = caseTimeout
	}
	deadline := time.Now().Add(limit)
	p, testeeDone := connect(t, r, deadline)
	defer p.conn.Close()
	cv := &conversation{t: t, c: c, p: p}
	mask := r == server
	closeSent := false
	var last time.Time // when the last bytes went out
	for i, st := range c.steps {
		if p.closedYet() {
			break // the testee has closed: the rest is withheld, as Autobahn does
		}
		var chunks [][]byte
		var all []byte
		for _, f := range st.frames {
			b := encode(f, mask)
			if st.chop == chopFrames {
				chunks = append(chunks, b)
			}
			all = append(all, b...)
			// A final close frame without RSV bits counts as the suite's close even when its
			// payload is invalid, as Autobahn counts its own (closedByMe) in cases 7.3 and 7.9.
			closeSent = closeSent || f.op == frame.OpClose && f.fin && f.rsv == 0
		}
		switch {
		case st.chop > 0:
			for b := all; len(b) > 0; {
				n := min(st.chop, len(b))
				chunks, b = append(chunks, b[:n]), b[n:]
			}
		case st.chop == 0:
			chunks = [][]byte{all}
		}
		for _, b := range chunks {
			if err := p.write(b, deadline); err != nil {
				t.Fatalf("step %d: writing to the %v: %v", i+1, r, err)
			}
		}
		last = time.Now()
		if st.failFast {
			if !cv.takeUntil(last.Add(failWithin), func() bool { return cv.closeEv != nil }) {
				t.Fatalf("step %d: not failed fast: no close frame within %v of the offending bytes, with the rest withheld; %s", i+1, failWithin, cv.progress())
			}
			break
		}
		if st.await > 0 && !cv.takeUntil(last.Add(failWithin), func() bool { return cv.matched >= st.await }) {
			t.Fatalf("step %d: %s within %v, want %d", i+1, cv.progress(), failWithin, st.await)
		}
		time.Sleep(st.pause)
		if st.open && p.closedYet() {
			cv.takeUntil(time.Now(), func() bool { return false }) // report a bad event first
			t.Fatalf("step %d: the %v closed the connection after valid data (an Autobahn timeout event is missing)", i+1, r)
		}
	}

	codes := c.codes
	if len(codes) == 0 {
		codes = []frame.CloseCode{frame.CloseNormal}
	}
	switch {
	case c.fails:
		if !cv.takeUntil(last.Add(failWithin), func() bool { return cv.closeEv != nil }) {
			t.Fatalf("the %v did not fail the connection within %v; %s", r, failWithin, cv.progress())
		}
	case !closeSent:
		if !cv.takeUntil(deadline, func() bool { return cv.matched == len(c.want) || cv.closeEv != nil }) {
			t.Fatalf("timeout after %v: %s", limit, cv.progress())
		}
		if cv.closeEv == nil {
			if err := p.write(encode(closeFrame(frame.CloseNormal, ""), mask), deadline); err != nil {
				t.Fatalf("writing the close frame: %v", err)
			}
			closeSent = true
		}
		fallthrough
	default:
		if !cv.takeUntil(deadline, func() bool { return cv.closeEv != nil }) {
			t.Fatalf("no close frame from the %v (timeout after %v); %s", r, limit, cv.progress())
		}
	}
	if cv.matched != len(c.want) {
		t.Fatalf("the %v closed with %s after %s; missing %v", r, describeClose(cv.closeEv.data), cv.progress(), c.want[cv.matched])
	}
	code, err := closeCode(cv.closeEv.data)
	if err != nil || !slices.Contains(codes, code) {
		t.Fatalf("close from the %v: %s, want code %v", r, describeClose(cv.closeEv.data), codes)
	}
	if !closeSent {
		if c.slowAnswer {
			time.Sleep(pause)
		}
		// Answer the testee's close, echoing its code as Autobahn does.
		answer := closeRaw(nil)
		if code != noStatus {
			answer = closeFrame(code, "")
		}
		if err := p.write(encode(answer, mask), time.Now().Add(endWithin)); err != nil {
			t.Fatalf("answering the close frame: %v", err)
		}
	}
	tcpEnd(t, cv)
	select {
	case err := <-testeeDone:
		t.Logf("the %v testee returned: %v", r, err)
	case <-time.After(doneWithin):
		t.Fatalf("the %v testee has not returned %v after the TCP connection ended", r, doneWithin)
	}
	// A reset that came after the EOF (the testee's socket was gone when the suite's last
	// bytes arrived) does not show in reads; the socket's pending error shows it.
	if tc, ok := p.conn.(*net.TCPConn); ok {
		if err := socketError(tc); err != nil {
			t.Fatalf("the %v reset the TCP connection after its FIN: %v (it had stopped reading before the suite's last bytes arrived)", r, err)
		}
	}
}

// tcpEnd checks that the TCP connection ends cleanly after the close handshake: the server
// closes first (RFC 6455 section 7.1.1), with a FIN, never a reset.
func tcpEnd(t *testing.T, cv *conversation) {
	t.Helper()
	p := cv.p
	if p.role == client {
		// The suite is the server: the client must wait for the server's FIN before it
		// closes, so nothing may have ended yet; then the client must close on the FIN.
		if cv.takeUntil(time.Now(), func() bool { return cv.end != nil }) {
			t.Fatalf("the client closed the TCP connection (%v) before the server did", cv.end.err)
		}
		if err := p.conn.CloseWrite(); err != nil {
			t.Fatalf("closing the server's side: %v", err)
		}
	}
	if !cv.takeUntil(time.Now().Add(endWithin), func() bool { return cv.end != nil }) {
		if p.role == server {
			t.Fatalf("the server did not close the TCP connection within %v of the close handshake", endWithin)
		}
		t.Fatalf("the client did not close the TCP connection within %v of the server's FIN", endWithin)
	}
	if p.role == server {
		p.conn.CloseWrite() // the server has closed: the client closes too
	}
	switch err := cv.end.err; {
	case err == io.EOF:
	case errors.Is(err, syscall.ECONNRESET):
		t.Fatalf("the %v reset the TCP connection instead of closing it", p.role)
	default:
		t.Fatalf("the TCP connection ended with %v, want a clean EOF", err)
	}
}

// closeCode decodes a close payload without judging it: noStatus for an empty one.
func closeCode(p []byte) (frame.CloseCode, error) {
	switch len(p) {
	case 0:
		return noStatus, nil
	case 1:
		return 0, errors.New("1-byte close payload")
	}
	return frame.CloseCode(p[0])<<8 | frame.CloseCode(p[1]), nil
}

func describeClose(p []byte) string {
	code, err := closeCode(p)
	switch {
	case err != nil:
		return err.Error()
	case code == noStatus:
		return "an empty close frame"
	case len(p) > 2:
		return fmt.Sprintf("close %d %q", code, p[2:])
	}
	return fmt.Sprintf("close %d", code)
}

// hasToken reports whether a comma-separated header value contains tok, case-insensitively.
func hasToken(v, tok string) bool {
	for _, e := range strings.Split(v, ",") {
		if strings.EqualFold(strings.TrimSpace(e), tok) {
			return true
		}
	}
	return false
}
