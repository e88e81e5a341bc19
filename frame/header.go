package frame

import (
	"encoding/binary"
	"io"
)

// MaxHeaderLen is the longest a frame header can be: 2 bytes, 8 of extended length, 4 of key.
const MaxHeaderLen = 14

// MaxControlPayload is the largest payload a control frame may carry (RFC 6455 section 5.5).
const MaxControlPayload = 125

// Header is the fixed part of a frame, everything before the payload.
type Header struct {
	Fin              bool
	Rsv1, Rsv2, Rsv3 bool
	Opcode           Opcode
	Masked           bool
	Key              [4]byte // masking key; meaningful only when Masked
	Length           int64   // payload length in bytes
}

// Len returns the encoded size of h in bytes, as AppendHeader writes it.
func (h Header) Len() int {
	n := 2
	switch {
	case h.Length > 0xffff:
		n += 8
	case h.Length > 125:
		n += 2
	}
	if h.Masked {
		n += 4
	}
	return n
}

// AppendHeader appends the wire form of h to dst, always in the shortest length form, and
// returns the extended slice. It encodes h as given: it does not check h against the rules
// that DecodeHeader enforces, so a caller can build frames that test a peer.
func AppendHeader(dst []byte, h Header) []byte {
	b0 := byte(h.Opcode & 0x0f)
	if h.Fin {
		b0 |= 0x80
	}
	if h.Rsv1 {
		b0 |= 0x40
	}
	if h.Rsv2 {
		b0 |= 0x20
	}
	if h.Rsv3 {
		b0 |= 0x10
	}
	var b1 byte
	if h.Masked {
		b1 = 0x80
	}
	switch {
	case h.Length > 0xffff:
		dst = append(dst, b0, b1|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(h.Length))
	case h.Length > 125:
		dst = append(dst, b0, b1|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(h.Length))
	default:
		dst = append(dst, b0, b1|byte(h.Length))
	}
	if h.Masked {
		dst = append(dst, h.Key[:]...)
	}
	return dst
}

// DecodeHeader parses the header at the start of b and returns it with its length in bytes.
// When b ends before the header does it returns ErrShortHeader, and n is the number of bytes
// the whole header needs as far as b tells (at least 2). Besides the wire format it enforces
// the rules no extension can change: reserved opcodes, the top bit of a 64-bit length, and the
// size and fragmentation of control frames. RSV bits and masking depend on the connection and
// are left to the caller. Lengths encoded in more bytes than needed are accepted: RFC 6455
// binds only the sender to the shortest form.
func DecodeHeader(b []byte) (h Header, n int, err error) {
	if len(b) < 2 {
		return h, 2, ErrShortHeader
	}
	b0, b1 := b[0], b[1]
	n = 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	if len(b) < n {
		return h, n, ErrShortHeader
	}
	h.Fin = b0&0x80 != 0
	h.Rsv1 = b0&0x40 != 0
	h.Rsv2 = b0&0x20 != 0
	h.Rsv3 = b0&0x10 != 0
	h.Opcode = Opcode(b0 & 0x0f)
	h.Masked = b1&0x80 != 0
	p := 2
	switch l := b1 & 0x7f; l {
	case 126:
		h.Length = int64(binary.BigEndian.Uint16(b[2:4]))
		p = 4
	case 127:
		u := binary.BigEndian.Uint64(b[2:10])
		if u>>63 != 0 {
			return h, n, ErrLengthMSB
		}
		h.Length = int64(u)
		p = 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		copy(h.Key[:], b[p:p+4])
	}
	return h, n, h.check()
}

// check enforces the connection-independent rules on a decoded header.
func (h Header) check() error {
	if !h.Opcode.Valid() {
		return ErrReservedOpcode
	}
	if h.Opcode.IsControl() {
		if !h.Fin {
			return ErrControlFragmented
		}
		if h.Length > MaxControlPayload {
			return ErrControlTooLong
		}
	}
	return nil
}

// ReadHeader reads one header from r and checks it as DecodeHeader does. It returns io.EOF
// when r ends before the header starts and io.ErrUnexpectedEOF when it ends inside it. When r
// is an io.ByteReader (bufio.Reader, bytes.Buffer, bytes.Reader) it allocates nothing.
func ReadHeader(r io.Reader) (Header, error) {
	if br, ok := r.(io.ByteReader); ok {
		return readHeaderBytes(br)
	}
	buf := make([]byte, MaxHeaderLen)
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return Header{}, err
	}
	_, n, err := DecodeHeader(buf[:2])
	if err == ErrShortHeader {
		if _, err = io.ReadFull(r, buf[2:n]); err != nil {
			return Header{}, unexpected(err)
		}
	}
	h, _, err := DecodeHeader(buf[:n])
	return h, err
}

func readHeaderBytes(br io.ByteReader) (Header, error) {
	var buf [MaxHeaderLen]byte
	need := 2
	for i := 0; i < need; i++ {
		c, err := br.ReadByte()
		if err != nil {
			if i > 0 {
				err = unexpected(err)
			}
			return Header{}, err
		}
		buf[i] = c
		if i == 1 {
			_, need, _ = DecodeHeader(buf[:2])
		}
	}
	h, _, err := DecodeHeader(buf[:need])
	return h, err
}

// unexpected turns an EOF inside a structure into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
