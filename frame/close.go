package frame

import (
	"encoding/binary"
	"strconv"
)

// CloseCode is the status code of a close frame (RFC 6455 section 7.4).
type CloseCode uint16

// The codes RFC 6455 and the IANA registry define. CloseNoStatus, CloseAbnormal and
// CloseTLSHandshake are for reporting only and never appear on the wire; 1004 is reserved.
const (
	CloseNormal             CloseCode = 1000
	CloseGoingAway          CloseCode = 1001
	CloseProtocolError      CloseCode = 1002
	CloseUnsupportedData    CloseCode = 1003
	CloseNoStatus           CloseCode = 1005
	CloseAbnormal           CloseCode = 1006
	CloseInvalidPayload     CloseCode = 1007
	ClosePolicyViolation    CloseCode = 1008
	CloseMessageTooBig      CloseCode = 1009
	CloseMandatoryExtension CloseCode = 1010
	CloseInternalError      CloseCode = 1011
	CloseServiceRestart     CloseCode = 1012
	CloseTryAgainLater      CloseCode = 1013
	CloseBadGateway         CloseCode = 1014
	CloseTLSHandshake       CloseCode = 1015
)

// MaxCloseReason is the longest close reason in bytes: a control payload of 125 less the code.
const MaxCloseReason = MaxControlPayload - 2

// Valid reports whether c may appear in a close frame on the wire: 1000-1003, 1007-1014 and
// the ranges for libraries and applications, 3000-4999.
func (c CloseCode) Valid() bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1014:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}

var closeNames = [...]string{
	"normal closure", "going away", "protocol error", "unsupported data", "reserved",
	"no status", "abnormal closure", "invalid payload", "policy violation", "message too big",
	"mandatory extension", "internal error", "service restart", "try again later",
	"bad gateway", "TLS handshake",
}

// String returns the code's registered name, or its number for codes without one.
func (c CloseCode) String() string {
	if c >= 1000 && int(c-1000) < len(closeNames) {
		return closeNames[c-1000]
	}
	return strconv.Itoa(int(c))
}

// ParseClose splits a close frame's payload into code and reason. An empty payload yields
// CloseNoStatus. A 1-byte payload, a code that may not be on the wire, and a reason that is
// not valid UTF-8 are protocol errors (ErrClosePayload, ErrCloseCode, ErrInvalidUTF8).
func ParseClose(p []byte) (CloseCode, string, error) {
	switch len(p) {
	case 0:
		return CloseNoStatus, "", nil
	case 1:
		return 0, "", ErrClosePayload
	}
	code := CloseCode(binary.BigEndian.Uint16(p))
	if !code.Valid() {
		return code, "", ErrCloseCode
	}
	if !ValidUTF8(p[2:]) {
		return code, "", ErrInvalidUTF8
	}
	return code, string(p[2:]), nil
}

// AppendClose appends the payload of a close frame with code and reason to dst. CloseNoStatus
// (or 0) with an empty reason gives an empty payload. A code that may not be on the wire, a
// reason over MaxCloseReason bytes or not valid UTF-8 are refused, and dst is returned as it was.
func AppendClose(dst []byte, code CloseCode, reason string) ([]byte, error) {
	if (code == 0 || code == CloseNoStatus) && reason == "" {
		return dst, nil
	}
	if !code.Valid() {
		return dst, ErrCloseCode
	}
	if len(reason) > MaxCloseReason {
		return dst, ErrReasonTooLong
	}
	if !ValidUTF8([]byte(reason)) {
		return dst, ErrInvalidUTF8
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, reason...), nil
}
