package deflate

import (
	"bytes"
	"fmt"
	"testing"
)

// roundTripSizes are the message sizes of the round trips: empty, one byte, around 127/128
// (where a WebSocket length changes form), a full window and past it.
var roundTripSizes = []int{0, 1, 100, 127, 128, 1000, 32768, 100000}

// roundTripContents are the kinds of message: prose repeats itself at every distance, random
// bytes never.
var roundTripContents = []struct {
	name string
	make func(seed uint64, n int) []byte
}{
	{"text", textBytes},
	{"random", randomBytes},
}

// TestRoundTrip compresses a sequence of messages of every size, then some of them again,
// at each level and window, with context takeover and without, and inflates every message
// with three Inflaters: fed whole, and fed in random pieces read into random buffers (large
// and tiny ones). Each must get every message back.
func TestRoundTrip(t *testing.T) {
	for bits := MinWindowBits; bits <= MaxWindowBits; bits++ {
		for _, level := range modeLevels(bits) {
			for _, takeover := range []bool{false, true} {
				for _, content := range roundTripContents {
					name := fmt.Sprintf("%s/bits%d/takeover=%t/%s", levelName(level), bits, takeover, content.name)
					t.Run(name, func(t *testing.T) {
						seed := uint64(level*1000 + bits*10)
						var msgs [][]byte
						for i, n := range roundTripSizes {
							msgs = append(msgs, content.make(seed+uint64(i), n))
						}
						msgs = append(msgs, msgs[5], msgs[2], msgs[6], msgs[0], msgs[5])
						roundTrip(t, NewCompressor(level, bits, takeover), msgs, []*receiver{
							{NewInflater(bits, takeover), whole},
							{NewInflater(bits, takeover), pieces(seed, 300, 700)},
							{NewInflater(bits, takeover), pieces(seed, 7, 33)},
						})
					})
				}
			}
		}
	}
}

// receiver is an Inflater with the way it is fed.
type receiver struct {
	z *Inflater
	f feeding
}

// roundTrip compresses msgs in turn with c and checks that every receiver inflates each.
func roundTrip(t *testing.T, c *Compressor, msgs [][]byte, rs []*receiver) {
	t.Helper()
	for i, msg := range msgs {
		payload := compress(t, c, msg)
		for j, r := range rs {
			got, err := inflate(r.z, payload, r.f, -1)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("message %d (%d bytes, %d compressed), receiver %d: %d bytes back, %v",
					i, len(msg), len(payload), j, len(got), err)
			}
		}
	}
}

// TestTakeoverRefersBack sends an incompressible message twice: with context takeover the
// second must refer to the first and compress to a few bytes, while without it cannot
// shrink at all. The peer inflates both either way. The largest message is one byte short
// of the window: the engine never refers exactly 2^bits back (RFC 1951 would allow it), so a
// message as large as the window cannot refer to itself sent before.
func TestTakeoverRefersBack(t *testing.T) {
	for bits := MinWindowBits; bits <= MaxWindowBits; bits++ {
		for _, level := range modeLevels(bits)[1:] { // HuffmanOnly never refers back
			for _, n := range []int{128, 200, min(1000, 1<<bits-1)} {
				for _, takeover := range []bool{false, true} {
					name := fmt.Sprintf("%s/bits%d/%d/takeover=%t", levelName(level), bits, n, takeover)
					t.Run(name, func(t *testing.T) {
						msg := randomBytes(uint64(n), n)
						c := NewCompressor(level, bits, takeover)
						z := NewInflater(bits, takeover)
						for i := range 2 {
							payload := compress(t, c, msg)
							if got, err := inflate(z, payload, whole, -1); err != nil || !bytes.Equal(got, msg) {
								t.Fatalf("message %d: %d bytes back of %d, %v", i, len(got), n, err)
							}
							switch {
							case i == 0 || !takeover:
								if len(payload) < n {
									t.Fatalf("message %d: %d random bytes compress to %d", i, n, len(payload))
								}
							case len(payload) > 16:
								t.Fatalf("the repeat of a %d-byte message compresses to %d bytes with takeover", n, len(payload))
							}
						}
					})
				}
			}
		}
	}
}
