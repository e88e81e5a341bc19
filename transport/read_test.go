package transport

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

func TestProtocolViolations(t *testing.T) {
	type tc struct {
		name  string
		role  Role
		opts  *Options
		build func(p *peer) []byte
		good  int // frames RecvFrame returns before the error
		err   error
	}
	fr := func(fin bool, op frame.Opcode, payload string) func(p *peer) []byte {
		return func(p *peer) []byte { return p.frame(fin, op, []byte(payload)) }
	}
	cat := func(parts ...func(p *peer) []byte) func(p *peer) []byte {
		return func(p *peer) []byte {
			var b []byte
			for _, part := range parts {
				b = append(b, part(p)...)
			}
			return b
		}
	}
	hdr := func(h frame.Header) func(p *peer) []byte {
		return func(p *peer) []byte {
			h.Masked = p.masked
			return frame.AppendHeader(nil, h)
		}
	}
	raw := func(b ...byte) func(p *peer) []byte { return func(*peer) []byte { return b } }
	closePayload := func(code uint16, reason string) string {
		return string([]byte{byte(code >> 8), byte(code)}) + reason
	}
	tests := []tc{
		{"reserved opcode 3", Server, nil, fr(true, 3, "x"), 0, frame.ErrReservedOpcode},
		{"reserved opcode 0xB", Server, nil, fr(true, 0xb, ""), 0, frame.ErrReservedOpcode},
		{"RSV1 without extension", Server, nil, hdr(frame.Header{Fin: true, Rsv1: true, Opcode: frame.OpText}), 0, errRSV},
		{"RSV2", Client, nil, hdr(frame.Header{Fin: true, Rsv2: true, Opcode: frame.OpBinary}), 0, errRSV},
		{"RSV3 on ping", Server, nil, hdr(frame.Header{Fin: true, Rsv3: true, Opcode: frame.OpPing}), 0, errRSV},
		{"unmasked frame to server", Server, nil, raw(0x81, 0x02, 'h', 'i'), 0, errUnmasked},
		{"masked frame to client", Client, nil, raw(0x81, 0x82, 1, 2, 3, 4, 'h'^1, 'i'^2), 0, errMasked},
		{"ping of 126 bytes", Server, nil, fr(true, frame.OpPing, strings.Repeat("p", 126)), 0, frame.ErrControlTooLong},
		{"fragmented ping", Client, nil, fr(false, frame.OpPing, "p"), 0, frame.ErrControlFragmented},
		{"continuation without start", Server, nil, fr(true, frame.OpContinuation, "x"), 0, errContinuation},
		{"text inside fragmented message", Server, nil, cat(fr(false, frame.OpText, "a"), fr(true, frame.OpText, "b")), 1, errInterleaved},
		{"binary inside fragmented text", Client, nil, cat(fr(false, frame.OpText, "a"), fr(true, frame.OpBinary, "b")), 1, errInterleaved},
		{"invalid UTF-8", Server, nil, fr(true, frame.OpText, "caf\xc3\x28"), 0, frame.ErrInvalidUTF8},
		{"invalid UTF-8 across fragments", Server, nil, cat(fr(false, frame.OpText, "\xce\xba\xe1"), fr(false, frame.OpContinuation, "\xbd\xb9\xed\xa0"), fr(true, frame.OpContinuation, "ok")), 1, frame.ErrInvalidUTF8},
		{"text ends inside a character", Client, nil, cat(fr(false, frame.OpText, "ok"), fr(true, frame.OpContinuation, "\xe2\x82")), 1, frame.ErrInvalidUTF8},
		{"close of 1 byte", Server, nil, fr(true, frame.OpClose, "\x03"), 0, frame.ErrClosePayload},
		{"close with 1005", Server, nil, fr(true, frame.OpClose, closePayload(1005, "")), 0, frame.ErrCloseCode},
		{"close with 999", Client, nil, fr(true, frame.OpClose, closePayload(999, "")), 0, frame.ErrCloseCode},
		{"close with 5000", Server, nil, fr(true, frame.OpClose, closePayload(5000, "")), 0, frame.ErrCloseCode},
		{"close reason not UTF-8", Server, nil, fr(true, frame.OpClose, closePayload(1000, "\xff")), 0, frame.ErrInvalidUTF8},
		{"frame over MaxPayloadLen", Server, nil, hdr(frame.Header{Fin: true, Opcode: frame.OpBinary, Length: 65536}), 0, frame.ErrTooBig},
		{"2^63-1 byte frame", Client, nil, hdr(frame.Header{Fin: true, Opcode: frame.OpBinary, Length: 1<<63 - 1}), 0, frame.ErrTooBig},
		{"length with top bit", Server, nil, raw(0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4), 0, frame.ErrLengthMSB},
		{"message over MaxMessageLen", Server, &Options{MaxPayloadLen: 10, MaxMessageLen: 15},
			cat(fr(false, frame.OpBinary, "0123456789"), fr(true, frame.OpContinuation, "0123456789")), 1, errMessageTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			opts := &Options{CloseTimeout: 2 * time.Second}
			if tt.opts != nil {
				opts.MaxPayloadLen, opts.MaxMessageLen = tt.opts.MaxPayloadLen, tt.opts.MaxMessageLen
			}
			c, p := rawPair(t, tt.role, opts)
			p.write(tt.build(p))
			errc := make(chan error, 1)
			go func() {
				for i := 0; ; i++ {
					_, err := c.RecvFrame(0)
					if err != nil || i > tt.good {
						if err == nil {
							err = errors.New("no error")
						} else if i != tt.good {
							err = errors.New("error after " + string(rune('0'+i)) + " frames: " + err.Error())
						}
						errc <- err
						return
					}
				}
			}()
			want := CloseStatus(tt.err)
			if got := p.expectClose(); got != want {
				t.Fatalf("close code sent %d, want %d", got, want)
			}
			p.send(true, frame.OpClose, []byte{byte(want >> 8), byte(want)})
			if tt.role == Client {
				p.nc.Close() // the server closes TCP first; the client waits for that
			}
			err := <-errc
			if !errors.Is(err, tt.err) {
				t.Fatalf("RecvFrame error %v, want %v", err, tt.err)
			}
			if CloseStatus(err) != want {
				t.Fatalf("CloseStatus = %d", CloseStatus(err))
			}
			if _, again := c.RecvFrame(0); again != err {
				t.Fatalf("later call returned %v, want the same error", again)
			}
			if tt.role == Server {
				p.expectEOF()
			}
		})
	}
}

func TestOversizeRefusedBeforePayload(t *testing.T) {
	c, p := rawPair(t, Server, &Options{MaxPayloadLen: 100, CloseTimeout: time.Second})
	// Only the header is sent: the Conn must refuse without waiting for the payload.
	p.write(frame.AppendHeader(nil, frame.Header{Fin: true, Opcode: frame.OpBinary, Masked: true, Length: 101}))
	go p.expectClose()
	start := time.Now()
	_, err := c.RecvFrame(0)
	if !errors.Is(err, frame.ErrTooBig) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatal("refusal waited on the payload")
	}
}

func TestRecvFrameResumesAfterTimeout(t *testing.T) {
	for _, role := range []Role{Server, Client} {
		t.Run(role.String(), func(t *testing.T) {
			c, p := rawPair(t, role, nil)
			payload := bytes.Repeat([]byte("0123456789"), 30)
			wire := p.frame(true, frame.OpText, payload)
			// Pieces end inside the header, inside the extended length, inside the key and
			// inside the payload.
			cuts := []int{1, 3, 5, 40, 200, len(wire)}
			prev, timeouts := 0, 0
			for _, cut := range cuts {
				p.write(wire[prev:cut])
				prev = cut
				if cut == len(wire) {
					break
				}
				_, err := c.RecvFrame(20 * time.Millisecond)
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("after %d bytes: err = %v, want deadline exceeded", cut, err)
				}
				timeouts++
			}
			f, err := c.RecvFrame(time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if f.Opcode != frame.OpText || !f.Fin {
				t.Fatalf("header %+v", f.Header)
			}
			mustEqual(t, f.Payload, payload)
			if timeouts != len(cuts)-1 {
				t.Fatalf("%d timeouts", timeouts)
			}
			// Zero timeout means none: a frame sent late still arrives.
			go func() { time.Sleep(50 * time.Millisecond); p.send(true, frame.OpBinary, []byte("late")) }()
			f, err = c.RecvFrame(0)
			if err != nil || string(f.Payload) != "late" {
				t.Fatalf("late frame: %q %v", f.Payload, err)
			}
		})
	}
}

func TestRecvFrameFragmentsAndControls(t *testing.T) {
	c, p := rawPair(t, Server, nil)
	var wire []byte
	wire = append(wire, p.frame(false, frame.OpText, []byte("hel"))...)
	wire = append(wire, p.frame(true, frame.OpPing, []byte("are you there"))...)
	wire = append(wire, p.frame(false, frame.OpContinuation, []byte("lo "))...)
	wire = append(wire, p.frame(true, frame.OpPong, nil)...)
	wire = append(wire, p.frame(true, frame.OpContinuation, []byte("κόσμε"))...)
	wire = append(wire, p.frame(true, frame.OpBinary, nil)...)
	p.write(wire)
	want := []struct {
		fin     bool
		op      frame.Opcode
		payload string
	}{
		{false, frame.OpText, "hel"}, {true, frame.OpPing, "are you there"}, {false, frame.OpContinuation, "lo "},
		{true, frame.OpPong, ""}, {true, frame.OpContinuation, "κόσμε"}, {true, frame.OpBinary, ""},
	}
	for i, w := range want {
		f, err := c.RecvFrame(time.Second)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Fin != w.fin || f.Opcode != w.op || string(f.Payload) != w.payload {
			t.Fatalf("frame %d: fin %v %v %q, want %+v", i, f.Fin, f.Opcode, f.Payload, w)
		}
	}
}

func TestLargeFrameThroughFrameBuffer(t *testing.T) {
	c, p := rawPair(t, Client, &Options{ReadBufferSize: 64})
	payload := bytes.Repeat([]byte{0, 1, 2, 3, 4, 5, 6}, 9000)
	go p.send(true, frame.OpBinary, payload)
	f, err := c.RecvFrame(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, f.Payload, payload)
}

func TestAbnormalEnd(t *testing.T) {
	t.Run("EOF between frames", func(t *testing.T) {
		c, p := rawPair(t, Server, nil)
		p.nc.Close()
		_, err := c.RecvFrame(time.Second)
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Code != frame.CloseAbnormal || !errors.Is(err, io.EOF) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("EOF inside a frame", func(t *testing.T) {
		c, p := rawPair(t, Server, nil)
		p.write(p.frame(true, frame.OpBinary, []byte("truncated"))[:8])
		p.nc.Close()
		_, err := c.RecvFrame(time.Second)
		if CloseStatus(err) != frame.CloseAbnormal || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("reset", func(t *testing.T) {
		c, p := rawPair(t, Client, nil)
		if tc, ok := p.nc.(interface{ SetLinger(int) error }); ok {
			tc.SetLinger(0)
		}
		p.nc.Close()
		_, err := c.RecvFrame(time.Second)
		if CloseStatus(err) != frame.CloseAbnormal {
			t.Fatalf("err = %v", err)
		}
	})
}
