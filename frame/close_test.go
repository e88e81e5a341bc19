package frame

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCloseCodeValid(t *testing.T) {
	valid := map[CloseCode]bool{}
	for _, c := range []CloseCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		valid[c] = true
	}
	for c := CloseCode(0); c < 6000; c++ {
		want := valid[c] || (c >= 3000 && c <= 4999)
		if c.Valid() != want {
			t.Errorf("%d.Valid() = %v", c, !want)
		}
	}
	if CloseCode(65535).Valid() {
		t.Error("65535 valid")
	}
}

func TestCloseCodeString(t *testing.T) {
	for c, want := range map[CloseCode]string{
		CloseNormal: "normal closure", 1004: "reserved", CloseTLSHandshake: "TLS handshake",
		CloseMessageTooBig: "message too big", 1016: "1016", 4000: "4000", 999: "999",
	} {
		if got := c.String(); got != want {
			t.Errorf("%d: %q, want %q", c, got, want)
		}
	}
}

func TestParseClose(t *testing.T) {
	tests := []struct {
		name   string
		in     []byte
		code   CloseCode
		reason string
		err    error
	}{
		{"empty", nil, CloseNoStatus, "", nil},
		{"code only", []byte{0x03, 0xe8}, CloseNormal, "", nil},
		{"code and reason", append([]byte{0x03, 0xe9}, "bye"...), CloseGoingAway, "bye", nil},
		{"utf8 reason", append([]byte{0x0f, 0xa0}, "κόσμε"...), 4000, "κόσμε", nil},
		{"one byte", []byte{0x03}, 0, "", ErrClosePayload},
		{"1005 on wire", []byte{0x03, 0xed}, 1005, "", ErrCloseCode},
		{"1006 on wire", []byte{0x03, 0xee}, 1006, "", ErrCloseCode},
		{"999", []byte{0x03, 0xe7}, 999, "", ErrCloseCode},
		{"5000", []byte{0x13, 0x88}, 5000, "", ErrCloseCode},
		{"bad utf8 reason", []byte{0x03, 0xe8, 0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80}, CloseNormal, "", ErrInvalidUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, reason, err := ParseClose(tt.in)
			if err != tt.err || code != tt.code || reason != tt.reason {
				t.Fatalf("ParseClose(%x) = %d, %q, %v; want %d, %q, %v", tt.in, code, reason, err, tt.code, tt.reason, tt.err)
			}
		})
	}
}

func TestAppendClose(t *testing.T) {
	tests := []struct {
		code   CloseCode
		reason string
		want   []byte
		err    error
	}{
		{0, "", nil, nil},
		{CloseNoStatus, "", nil, nil},
		{CloseNormal, "", []byte{0x03, 0xe8}, nil},
		{4999, "ok", []byte{0x13, 0x87, 'o', 'k'}, nil},
		{CloseNoStatus, "why", nil, ErrCloseCode},
		{CloseAbnormal, "", nil, ErrCloseCode},
		{1004, "", nil, ErrCloseCode},
		{CloseNormal, strings.Repeat("x", MaxCloseReason), append([]byte{0x03, 0xe8}, strings.Repeat("x", MaxCloseReason)...), nil},
		{CloseNormal, strings.Repeat("x", MaxCloseReason+1), nil, ErrReasonTooLong},
		{CloseNormal, "\xff", nil, ErrInvalidUTF8},
	}
	for _, tt := range tests {
		got, err := AppendClose([]byte("pre"), tt.code, tt.reason)
		if err != tt.err || !bytes.Equal(got, append([]byte("pre"), tt.want...)) {
			t.Errorf("AppendClose(%d, %q) = %x, %v; want %x, %v", tt.code, tt.reason, got, err, tt.want, tt.err)
		}
	}
}

func TestProtocolError(t *testing.T) {
	err := error(ErrInvalidUTF8)
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Code != CloseInvalidPayload {
		t.Fatalf("errors.As: %v", pe)
	}
	if got := err.Error(); got != "websocket: invalid UTF-8 in text (close 1007)" {
		t.Fatalf("Error() = %q", got)
	}
	for _, e := range []*ProtocolError{ErrReservedOpcode, ErrLengthMSB, ErrControlTooLong, ErrControlFragmented, ErrClosePayload, ErrCloseCode, ErrInvalidUTF8, ErrTooBig} {
		if !e.Code.Valid() || len(e.Reason) > MaxCloseReason {
			t.Errorf("%v cannot be sent as a close frame", e)
		}
	}
}

func FuzzParseClose(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x03})
	f.Add([]byte{0x03, 0xe8, 'h', 'i'})
	f.Add([]byte{0x0f, 0xa0, 0xed, 0xa0, 0x80})
	f.Fuzz(func(t *testing.T, p []byte) {
		code, reason, err := ParseClose(p)
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(p) == 0 {
			if code != CloseNoStatus || reason != "" {
				t.Fatalf("empty payload gave %d %q", code, reason)
			}
			return
		}
		if !code.Valid() || !utf8.ValidString(reason) {
			t.Fatalf("accepted code %d reason %q", code, reason)
		}
		if len(reason) <= MaxCloseReason {
			back, err := AppendClose(nil, code, reason)
			if err != nil || !bytes.Equal(back, p) {
				t.Fatalf("round trip %x -> %x, %v", p, back, err)
			}
		}
		f := Frame{Header: Header{Opcode: OpClose}, Payload: p}
		if f.CloseCode() != code || f.CloseReason() != reason {
			t.Fatalf("Frame accessors disagree: %d %q", f.CloseCode(), f.CloseReason())
		}
	})
}
