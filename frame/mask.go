package frame

import (
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// maskAlignMin is the length from which the pure-Go path of Mask first brings b to an 8-byte
// boundary. Unaligned 8-byte stores that straddle a cache line cost about a third of the
// throughput on amd64, but for short payloads the extra head steps cost more than the few
// straddling stores they save.
const maskAlignMin = 512

// Mask XORs b in place with the masking key, as RFC 6455 section 5.3 describes, starting at
// position pos of the key stream (byte i of b is XORed with key[(pos+i)%4]). It returns the
// position after b, so that a payload that arrives in pieces can be masked piece by piece:
// Mask(k, Mask(k, 0, a), b) leaves a and b as Mask(k, 0, ab) leaves ab. Only pos&3 matters,
// and the result is always in [0, 3]. Masking and unmasking are the same operation.
//
// Mask never allocates, because every payload a client sends or a server receives goes
// through it. Long payloads go to vector assembly where there is some (amd64, unless built
// with the purego tag); short ones, the common case, stay in Go, a machine word at a time,
// because an assembly call costs more than it saves on them.
func Mask(key [4]byte, pos int, b []byte) int {
	next := (pos + len(b)) & 3
	if len(b) < 8 {
		for i := range b {
			b[i] ^= key[(pos+i)&3]
		}
		return next
	}

	// k32 holds the next 4 bytes of the key stream, and k below the next 8, in the order
	// LittleEndian loads them, so the word loops below are correct on big-endian machines too.
	k32 := bits.RotateLeft32(binary.LittleEndian.Uint32(key[:]), -8*(pos&3))
	if maskAsm(b, k32) {
		return next
	}
	k := uint64(k32)<<32 | uint64(k32)

	if len(b) >= maskAlignMin {
		// Step to an 8-byte boundary with at most one 1-, 2- and 4-byte XOR, each of them
		// aligned, rotating k past the bytes used. The address is only read, never
		// dereferenced through unsafe; a wrong guess would cost speed, not correctness.
		a := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		if a&1 != 0 {
			b[0] ^= byte(k)
			k = bits.RotateLeft64(k, -8)
			b = b[1:]
			a++
		}
		if a&2 != 0 {
			binary.LittleEndian.PutUint16(b, binary.LittleEndian.Uint16(b)^uint16(k))
			k = bits.RotateLeft64(k, -16)
			b = b[2:]
			a += 2
		}
		if a&4 != 0 {
			// 4 bytes is a whole key period, so k stays as it is.
			binary.LittleEndian.PutUint32(b, binary.LittleEndian.Uint32(b)^uint32(k))
			b = b[4:]
		}
	}

	// The loop conditions are written as i < len(b)-63 (not i+64 <= len(b)) because that is
	// the form the compiler proves in bounds: each LittleEndian call below becomes a single
	// XOR to memory with no bounds checks.
	i := 0
	for ; i < len(b)-63; i += 64 {
		v := b[i : i+64]
		binary.LittleEndian.PutUint64(v[0:], binary.LittleEndian.Uint64(v[0:])^k)
		binary.LittleEndian.PutUint64(v[8:], binary.LittleEndian.Uint64(v[8:])^k)
		binary.LittleEndian.PutUint64(v[16:], binary.LittleEndian.Uint64(v[16:])^k)
		binary.LittleEndian.PutUint64(v[24:], binary.LittleEndian.Uint64(v[24:])^k)
		binary.LittleEndian.PutUint64(v[32:], binary.LittleEndian.Uint64(v[32:])^k)
		binary.LittleEndian.PutUint64(v[40:], binary.LittleEndian.Uint64(v[40:])^k)
		binary.LittleEndian.PutUint64(v[48:], binary.LittleEndian.Uint64(v[48:])^k)
		binary.LittleEndian.PutUint64(v[56:], binary.LittleEndian.Uint64(v[56:])^k)
	}
	b = b[i:]
	i = 0
	for ; i < len(b)-7; i += 8 {
		v := b[i : i+8]
		binary.LittleEndian.PutUint64(v, binary.LittleEndian.Uint64(v)^k)
	}
	for ; i < len(b); i++ {
		b[i] ^= byte(k >> (8 * (i & 7)))
	}
	return next
}
