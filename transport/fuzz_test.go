package transport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ecows/ecows/frame"
)

// FuzzRecvFrame feeds an arbitrary byte stream to a Conn in each role and calls RecvFrame
// until it fails. Whatever the bytes, the Conn must not panic or hang, every frame it returns
// must obey RFC 6455 for its role and limits, and the call must end with a *frame.ProtocolError
// whose valid close code was also written to the peer as a close frame, a *CloseError, or
// ErrClosed. The second argument schedules the reads of a second pass with small limits and
// buffers: read sizes, and timeouts (a zero entry) in the middle of headers and payloads. A
// timeout must lose nothing, so that pass must return exactly what a pass with whole reads
// returns, and write the same frames.
func FuzzRecvFrame(f *testing.F) {
	client := func(b []byte, fin bool, op frame.Opcode, p string) []byte {
		return frame.AppendFrame(b, frame.Header{Fin: fin, Opcode: op, Masked: true, Key: [4]byte{0x37, 0xfa, 0x21, 0x3d}}, []byte(p))
	}
	server := func(b []byte, fin bool, op frame.Opcode, p string) []byte {
		return frame.AppendFrame(b, frame.Header{Fin: fin, Opcode: op}, []byte(p))
	}
	closeP := func(code frame.CloseCode, reason string) string {
		b, _ := frame.AppendClose(nil, code, reason)
		return string(b)
	}
	sched := []byte{1, 0, 3, 0, 0, 7, 200, 0, 2}
	for _, enc := range []func([]byte, bool, frame.Opcode, string) []byte{client, server} {
		var b []byte
		b = enc(b, true, frame.OpText, "Hello")
		b = enc(b, false, frame.OpText, "Hel")
		b = enc(b, true, frame.OpPing, "ping")
		b = enc(b, true, frame.OpContinuation, "lo €")
		b = enc(b, true, frame.OpBinary, string(bytes.Repeat([]byte{0xfe}, 300)))
		b = enc(b, true, frame.OpPong, "")
		f.Add(enc(b, true, frame.OpClose, closeP(frame.CloseNormal, "bye")), sched)
		f.Add(enc(nil, true, frame.OpText, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"), sched) // surrogate
		f.Add(enc(nil, true, frame.OpClose, "\x03\xe8\xff"), sched)                                            // bad reason
		f.Add(enc(nil, true, frame.OpClose, "\x03\xed"), sched)                                                // 1005 on the wire
		f.Add(enc(nil, true, frame.OpContinuation, "x"), sched)
		f.Add(enc(enc(nil, false, frame.OpBinary, "a"), true, frame.OpText, "b"), sched)
		f.Add(enc(nil, false, frame.OpPing, ""), sched)
		f.Add(enc(nil, true, 0x3, ""), sched)
		f.Add(enc(nil, true, frame.OpBinary, string(make([]byte, 70000)))[:100], sched) // over 65535
		var frag []byte
		for range 600 {
			frag = enc(frag, false, frame.OpContinuation, "z")
		}
		f.Add(append(enc(nil, false, frame.OpBinary, "z"), frag...), sched)
	}
	// Headers declaring 2^63-1 bytes and a length with its top bit set.
	f.Add([]byte{0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}, []byte{})
	f.Add([]byte{0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0}, []byte{0, 1})
	f.Add([]byte{0xc1, 0x80, 1, 2, 3, 4}, []byte{}) // RSV1
	f.Add([]byte{}, []byte{0})

	f.Fuzz(func(t *testing.T, data, sched []byte) {
		// Longer inputs find nothing more and slow the fuzzer down.
		data, sched = data[:min(len(data), 4096)], sched[:min(len(sched), 256)]
		// The passes run in a goroutine of their own, so that a Conn stuck in a loop fails
		// the input instead of hanging the fuzzer.
		done := make(chan error, 1)
		go func() { done <- fuzzPasses(data, sched) }()
		watchdog := time.NewTimer(10 * time.Second)
		defer watchdog.Stop()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-watchdog.C:
			buf := make([]byte, 1<<16)
			t.Fatalf("RecvFrame hangs on %d bytes\n%s", len(data), buf[:runtime.Stack(buf, true)])
		}
	})
}

// fuzzPasses reads data in each role: with the default options, then with small limits and
// buffers both in whole reads and in reads cut as sched says, which must agree.
func fuzzPasses(data, sched []byte) error {
	small := &Options{MaxPayloadLen: 200, MaxMessageLen: 500, ReadBufferSize: 16}
	for _, role := range []Role{Server, Client} {
		ref, err := fuzzRun(role, data, nil, nil)
		if err == nil {
			err = ref.check(nil)
		}
		if err != nil {
			return fmt.Errorf("%s, default options: %w", role, err)
		}
		whole, err := fuzzRun(role, data, nil, small)
		if err == nil {
			err = whole.check(small)
		}
		if err != nil {
			return fmt.Errorf("%s, small limits: %w", role, err)
		}
		cut, err := fuzzRun(role, data, sched, small)
		if err == nil {
			err = cut.check(small)
		}
		if err != nil {
			return fmt.Errorf("%s, small limits, reads cut by %v: %w", role, sched, err)
		}
		if d := whole.diff(cut); d != "" {
			return fmt.Errorf("%s, small limits: reads cut by %v give another result than whole reads: %s", role, sched, d)
		}
	}
	return nil
}

// fuzzStream is the peer of a Conn under fuzzing, in memory: reads return the input, cut as a
// schedule says (an entry is the size of one read, 0 a timeout), then io.EOF; writes are kept.
type fuzzStream struct {
	in, sched []byte
	out       bytes.Buffer
	closed    bool
}

func (s *fuzzStream) Read(p []byte) (int, error) {
	if s.closed {
		return 0, errors.New("fuzzStream: read after close")
	}
	n := len(p)
	if len(s.sched) > 0 {
		step := int(s.sched[0])
		s.sched = s.sched[1:]
		if step == 0 {
			return 0, os.ErrDeadlineExceeded
		}
		n = min(n, step)
	}
	if len(s.in) == 0 {
		return 0, io.EOF
	}
	n = copy(p[:n], s.in)
	s.in = s.in[n:]
	return n, nil
}

func (s *fuzzStream) Write(p []byte) (int, error) {
	if s.closed {
		return 0, errors.New("fuzzStream: write after close")
	}
	return s.out.Write(p)
}

func (s *fuzzStream) Close() error                     { s.closed = true; return nil }
func (s *fuzzStream) SetReadDeadline(time.Time) error  { return nil }
func (s *fuzzStream) SetWriteDeadline(time.Time) error { return nil }

// fuzzResult is what one pass over the input produced.
type fuzzResult struct {
	role   Role
	frames []frame.Frame // payloads copied
	err    error         // the error that ended the pass
	next   error         // what the call after it returned
	out    []byte        // what the Conn wrote to the peer
	closed bool          // the Conn closed the stream
}

// fuzzRun reads data with RecvFrame on a Conn in role until an error other than a timeout,
// with a bound on the number of calls.
func fuzzRun(role Role, data, sched []byte, opts *Options) (*fuzzResult, error) {
	s := &fuzzStream{in: data, sched: append([]byte(nil), sched...)}
	c := NewConn(s, role, Setup{}, opts)
	res := &fuzzResult{role: role}
	// Every frame takes at least 2 bytes and every timeout a schedule entry.
	budget := len(data)/2 + len(sched) + 4
	for i := 0; ; i++ {
		if i > budget {
			return nil, fmt.Errorf("%d RecvFrame calls on %d bytes without an end", i, len(data))
		}
		fr, err := c.RecvFrame(time.Hour)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			res.err = err
			_, res.next = c.RecvFrame(time.Hour)
			break
		}
		fr.Payload = append([]byte{}, fr.Payload...)
		res.frames = append(res.frames, fr)
	}
	// A call with a timeout leaves the end of the read side to a goroutine (endCall), which
	// holds the read side until the stream is closed: read the stream once it lets go.
	c.rmu.Lock()
	res.out, res.closed = s.out.Bytes(), s.closed
	c.rmu.Unlock()
	return res, nil
}

// check asserts what must hold of any pass, with the limits of opts.
func (r *fuzzResult) check(opts *Options) error {
	maxPayload, maxMessage := int64(DefaultMaxPayloadLen), int64(DefaultMaxMessageLen)
	if opts != nil {
		maxPayload, maxMessage = opts.MaxPayloadLen, opts.MaxMessageLen
	}
	var (
		inMsg   bool
		msgOp   frame.Opcode
		msg     []byte
		msgLen  int64
		peerEnd = frame.CloseCode(0) // the code of a close frame returned, if any
	)
	for i, f := range r.frames {
		h := f.Header
		switch {
		case !h.Opcode.Valid():
			return fmt.Errorf("frame %d: opcode %v", i, h.Opcode)
		case h.Rsv1 || h.Rsv2 || h.Rsv3:
			return fmt.Errorf("frame %d: RSV bits without an extension", i)
		case h.Masked != (r.role == Server):
			return fmt.Errorf("frame %d: masked %v in role %s", i, h.Masked, r.role)
		case int64(len(f.Payload)) != h.Length:
			return fmt.Errorf("frame %d: %d payload bytes, header says %d", i, len(f.Payload), h.Length)
		case peerEnd != 0:
			return fmt.Errorf("frame %d returned after the peer's close frame", i)
		}
		if h.Opcode.IsControl() {
			if !h.Fin || len(f.Payload) > frame.MaxControlPayload {
				return fmt.Errorf("frame %d: control frame fin %v, %d bytes", i, h.Fin, len(f.Payload))
			}
			if h.Opcode == frame.OpClose {
				code, _, err := frame.ParseClose(f.Payload)
				if err != nil {
					return fmt.Errorf("frame %d: close frame returned with a bad payload: %v", i, err)
				}
				peerEnd = code
			}
			continue
		}
		if h.Length > maxPayload {
			return fmt.Errorf("frame %d: %d bytes over MaxPayloadLen %d", i, h.Length, maxPayload)
		}
		if (h.Opcode == frame.OpContinuation) != inMsg {
			return fmt.Errorf("frame %d: %v out of order", i, h.Opcode)
		}
		if h.Opcode != frame.OpContinuation {
			inMsg, msgOp, msg, msgLen = true, h.Opcode, msg[:0], 0
		}
		msgLen += h.Length
		if msgLen > maxMessage {
			return fmt.Errorf("frame %d: message of %d bytes over MaxMessageLen %d", i, msgLen, maxMessage)
		}
		if msgOp == frame.OpText {
			msg = append(msg, f.Payload...)
		}
		if h.Fin {
			inMsg = false
			if msgOp == frame.OpText && !utf8.Valid(msg) {
				return fmt.Errorf("frame %d ends a text message that is not UTF-8: %q", i, msg)
			}
		}
	}

	sent, err := r.sentFrames()
	if err != nil {
		return err
	}
	var closes []frame.Frame
	for _, f := range sent {
		if f.Opcode != frame.OpClose {
			return fmt.Errorf("the Conn sent a %v frame; RecvFrame answers nothing but close", f.Opcode)
		}
		closes = append(closes, f)
	}
	if len(closes) > 1 {
		return fmt.Errorf("%d close frames sent", len(closes))
	}
	var pe *frame.ProtocolError
	var ce *CloseError
	switch {
	case r.err == nil:
		return errors.New("the pass ended without an error")
	case errors.As(r.err, &pe):
		if !pe.Code.Valid() {
			return fmt.Errorf("protocol error %v with close code %d, which may not be sent", pe, pe.Code)
		}
		if peerEnd != 0 {
			return fmt.Errorf("protocol error %v after the peer's close frame", pe)
		}
		if len(closes) != 1 || closes[0].CloseCode() != pe.Code {
			return fmt.Errorf("protocol error %v, but the peer was sent %d close frames %v", pe, len(closes), closes)
		}
		if !errors.Is(r.next, pe) {
			return fmt.Errorf("after %v the next call returned %v", pe, r.next)
		}
	case errors.As(r.err, &ce):
		if ce.Code == frame.CloseAbnormal {
			if peerEnd != 0 {
				return fmt.Errorf("%v after the peer's close frame %d", ce, peerEnd)
			}
			break
		}
		if ce.Code != peerEnd {
			return fmt.Errorf("%v, but the close frame returned had code %d", ce, peerEnd)
		}
		if len(closes) != 1 || closes[0].CloseCode() != ce.Code {
			return fmt.Errorf("peer's close %d answered with %v", ce.Code, closes)
		}
	case errors.Is(r.err, ErrClosed):
	default:
		return fmt.Errorf("untyped error %T: %v", r.err, r.err)
	}
	if !r.closed {
		return fmt.Errorf("the Conn ended with %v without closing the stream", r.err)
	}
	return nil
}

// sentFrames parses what the Conn wrote, which must be whole frames masked as its role requires.
func (r *fuzzResult) sentFrames() ([]frame.Frame, error) {
	var out []frame.Frame
	rd := bytes.NewReader(r.out)
	for rd.Len() > 0 {
		f, err := frame.ReadFrame(rd, math.MaxInt32)
		if err != nil {
			return nil, fmt.Errorf("the Conn wrote a broken frame: %v in %x", err, r.out)
		}
		if f.Masked != (r.role == Client) {
			return nil, fmt.Errorf("the Conn in role %s wrote a frame with masked %v", r.role, f.Masked)
		}
		f.Masked, f.Key = false, [4]byte{}
		out = append(out, f)
	}
	return out, nil
}

// diff describes how two passes over the same input differ, or returns "".
func (r *fuzzResult) diff(o *fuzzResult) string {
	if len(r.frames) != len(o.frames) {
		return fmt.Sprintf("%d frames, then %d", len(r.frames), len(o.frames))
	}
	for i := range r.frames {
		a, b := r.frames[i], o.frames[i]
		if a.Header != b.Header || !bytes.Equal(a.Payload, b.Payload) {
			return fmt.Sprintf("frame %d: %+v %q, then %+v %q", i, a.Header, a.Payload, b.Header, b.Payload)
		}
	}
	if errString(r.err) != errString(o.err) {
		return fmt.Sprintf("error %v, then %v", r.err, o.err)
	}
	// Clients mask with random keys: compare what was sent unmasked.
	if a, b := unmaskAll(r.out), unmaskAll(o.out); !bytes.Equal(a, b) {
		return fmt.Sprintf("sent %x, then %x", a, b)
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// unmaskAll returns the frames in b with their masks removed, or b when it does not parse.
func unmaskAll(b []byte) []byte {
	var out []byte
	rd := bytes.NewReader(b)
	for rd.Len() > 0 {
		f, err := frame.ReadFrame(rd, math.MaxInt32)
		if err != nil {
			return b
		}
		f.Masked = false
		out = frame.AppendFrame(out, f.Header, f.Payload)
	}
	return out
}
