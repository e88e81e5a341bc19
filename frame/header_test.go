package frame

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestDecodeHeader(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want Header
		n    int
		err  error
	}{
		{"unmasked text hello", []byte{0x81, 0x05}, Header{Fin: true, Opcode: OpText, Length: 5}, 2, nil},
		{"masked text", []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d},
			Header{Fin: true, Opcode: OpText, Masked: true, Key: [4]byte{0x37, 0xfa, 0x21, 0x3d}, Length: 5}, 6, nil},
		{"fragment start", []byte{0x01, 0x03}, Header{Opcode: OpText, Length: 3}, 2, nil},
		{"rsv bits", []byte{0xf2, 0x00}, Header{Fin: true, Rsv1: true, Rsv2: true, Rsv3: true, Opcode: OpBinary}, 2, nil},
		{"16-bit length", []byte{0x82, 0x7e, 0x01, 0x00}, Header{Fin: true, Opcode: OpBinary, Length: 256}, 4, nil},
		{"64-bit length", []byte{0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}, Header{Fin: true, Opcode: OpBinary, Length: 65536}, 10, nil},
		{"64-bit max", []byte{0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
			Header{Fin: true, Opcode: OpBinary, Length: 1<<63 - 1}, 10, nil},
		{"non-minimal 16-bit accepted", []byte{0x82, 0x7e, 0x00, 0x05}, Header{Fin: true, Opcode: OpBinary, Length: 5}, 4, nil},
		{"ping 125", []byte{0x89, 0x7d}, Header{Fin: true, Opcode: OpPing, Length: 125}, 2, nil},
		{"empty", nil, Header{}, 2, ErrShortHeader},
		{"one byte", []byte{0x81}, Header{}, 2, ErrShortHeader},
		{"short 16-bit", []byte{0x82, 0x7e, 0x01}, Header{}, 4, ErrShortHeader},
		{"short 64-bit masked", []byte{0x82, 0xff, 0, 0}, Header{}, 14, ErrShortHeader},
		{"short key", []byte{0x81, 0x85, 1, 2}, Header{}, 6, ErrShortHeader},
		{"length msb", []byte{0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0}, Header{}, 10, ErrLengthMSB},
		{"reserved opcode 3", []byte{0x83, 0x00}, Header{}, 2, ErrReservedOpcode},
		{"reserved opcode B", []byte{0x8b, 0x00}, Header{}, 2, ErrReservedOpcode},
		{"ping 126", []byte{0x89, 0x7e, 0x00, 0x7e}, Header{}, 4, ErrControlTooLong},
		{"fragmented close", []byte{0x08, 0x00}, Header{}, 2, ErrControlFragmented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n, err := DecodeHeader(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if n != tt.n {
				t.Fatalf("n = %d, want %d", n, tt.n)
			}
			if err == nil && h != tt.want {
				t.Fatalf("header = %+v, want %+v", h, tt.want)
			}
		})
	}
}

func TestAppendHeaderShortestForm(t *testing.T) {
	for _, tt := range []struct {
		length int64
		masked bool
		size   int
	}{
		{0, false, 2}, {125, false, 2}, {126, false, 4}, {0xffff, false, 4},
		{0x10000, false, 10}, {1<<63 - 1, false, 10}, {0, true, 6}, {126, true, 8}, {0x10000, true, 14},
	} {
		h := Header{Fin: true, Opcode: OpBinary, Length: tt.length, Masked: tt.masked}
		if tt.masked {
			h.Key = [4]byte{1, 2, 3, 4}
		}
		b := AppendHeader(nil, h)
		if len(b) != tt.size || h.Len() != tt.size {
			t.Errorf("length %d masked %v: encoded %d bytes, Len %d, want %d", tt.length, tt.masked, len(b), h.Len(), tt.size)
		}
		got, n, err := DecodeHeader(b)
		if err != nil || n != len(b) || got != h {
			t.Errorf("round trip of %+v: %+v, %d, %v", h, got, n, err)
		}
	}
}

func TestReadHeader(t *testing.T) {
	h := Header{Fin: true, Opcode: OpBinary, Masked: true, Key: [4]byte{9, 8, 7, 6}, Length: 70000}
	wire := AppendHeader(nil, h)
	readers := map[string]func([]byte) io.Reader{
		"bytes.Reader": func(b []byte) io.Reader { return bytes.NewReader(b) },
		"bufio":        func(b []byte) io.Reader { return bufio.NewReader(bytes.NewReader(b)) },
		"one byte":     func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"plain":        func(b []byte) io.Reader { return io.MultiReader(bytes.NewReader(b)) },
	}
	for name, mk := range readers {
		t.Run(name, func(t *testing.T) {
			got, err := ReadHeader(mk(wire))
			if err != nil || got != h {
				t.Fatalf("ReadHeader = %+v, %v", got, err)
			}
			if _, err := ReadHeader(mk(nil)); err != io.EOF {
				t.Fatalf("empty input: %v, want io.EOF", err)
			}
			for cut := 1; cut < len(wire); cut++ {
				if _, err := ReadHeader(mk(wire[:cut])); err != io.ErrUnexpectedEOF {
					t.Fatalf("cut at %d: %v, want io.ErrUnexpectedEOF", cut, err)
				}
			}
			if _, err := ReadHeader(mk([]byte{0x84, 0})); err != ErrReservedOpcode {
				t.Fatalf("reserved opcode: %v", err)
			}
		})
	}
}

func TestReadHeaderPassesReadErrors(t *testing.T) {
	boom := errors.New("boom")
	if _, err := ReadHeader(iotest.ErrReader(boom)); err != boom {
		t.Fatalf("err = %v, want boom", err)
	}
	r := io.MultiReader(bytes.NewReader([]byte{0x82, 0x7e}), iotest.ErrReader(boom))
	if _, err := ReadHeader(r); err != boom {
		t.Fatalf("err = %v, want boom", err)
	}
}

func FuzzHeader(f *testing.F) {
	f.Add([]byte{0x81, 0x05})
	f.Add([]byte{0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4})
	f.Add([]byte{0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x89, 0x7e, 0x00, 0x7e})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := DecodeHeader(b)
		if err == ErrShortHeader {
			if n <= len(b) || n > MaxHeaderLen {
				t.Fatalf("short header with n = %d for %d bytes", n, len(b))
			}
			return
		}
		if n < 2 || n > MaxHeaderLen || n > len(b) {
			t.Fatalf("n = %d out of range for %d bytes", n, len(b))
		}
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) || !pe.Code.Valid() {
				t.Fatalf("error %v is not a protocol error with a wire code", err)
			}
			return
		}
		if h.Len() > n {
			t.Fatalf("shortest form %d longer than decoded %d", h.Len(), n)
		}
		enc := AppendHeader(nil, h)
		back, m, err := DecodeHeader(enc)
		if err != nil || m != len(enc) || back != h {
			t.Fatalf("round trip: %+v -> %x -> %+v, %d, %v", h, enc, back, m, err)
		}
		if h.Len() == n && !bytes.Equal(enc, b[:n]) {
			t.Fatalf("shortest-form input %x encoded as %x", b[:n], enc)
		}
		got, err := ReadHeader(bytes.NewReader(b))
		if err != nil || got != h {
			t.Fatalf("ReadHeader disagrees: %+v, %v", got, err)
		}
	})
}

func BenchmarkDecodeHeader(b *testing.B) {
	wire := AppendHeader(nil, Header{Fin: true, Opcode: OpBinary, Masked: true, Length: 1024})
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeHeader(wire); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadHeader(b *testing.B) {
	wire := AppendHeader(nil, Header{Fin: true, Opcode: OpBinary, Masked: true, Length: 1024})
	r := bytes.NewReader(wire)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(wire)
		if _, err := ReadHeader(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendHeader(b *testing.B) {
	h := Header{Fin: true, Opcode: OpBinary, Masked: true, Length: 1024}
	buf := make([]byte, 0, MaxHeaderLen)
	b.SetBytes(int64(h.Len()))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendHeader(buf[:0], h)
	}
}
