package deflate

import (
	"bytes"
	stdflate "compress/flate"
	"errors"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/ecows/ecows/internal/deflatewalk"
)

// fuzzLimit bounds what a fuzzed message may inflate to: reading stops there, as a connection
// stops a deflate bomb at its message limit.
const fuzzLimit = 1 << 16

// noHang makes a hang a failure the fuzzer keeps: a panic with every goroutine's stack.
func noHang() *time.Timer {
	return time.AfterFunc(10*time.Second, func() {
		buf := make([]byte, 1<<20)
		panic("HANG\n" + string(buf[:runtime.Stack(buf, true)]))
	})
}

// FuzzInflater inflates arbitrary data as two messages (cut where sched's first byte says)
// with two Inflaters, one fed each message whole, one fed random pieces into random buffers
// (drawn from sched), with or without context takeover. Neither may panic, hang or read past
// the limit; both must agree; and each message must be what compress/flate, an inflater
// sharing no code with the package, inflates from the data followed by the RFC 7692 tail and
// an empty final block. With takeover compress/flate is primed with the first message when it
// read all of it, the tail included (the peer did not end its data with a final block).
func FuzzInflater(f *testing.F) {
	c := NewCompressor(BestSpeed, MaxWindowBits, true)
	m1 := compress(f, c, textBytes(50, 3000))
	m2 := compress(f, c, textBytes(50, 2000))
	f.Add(append(bytes.Clone(m1), m2...), []byte{byte(len(m1) * 255 / (len(m1) + len(m2))), 9, 200}, true)
	f.Add(AppendCompressed(nil, randomBytes(51, 500), BestCompress, 10), []byte{255, 1, 1}, false)
	f.Add([]byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x02, 0x00}, []byte{128, 3}, true)
	f.Add([]byte{0x00, 0x05, 0x00, 0xfa, 0xff, 'h', 'e', 'l', 'l', 'o', 0x00}, []byte{0, 1}, false)
	f.Add(bytes.Repeat([]byte{0x00, 0x00, 0xff, 0xff}, 10), []byte{}, true)
	f.Add([]byte{}, []byte{}, false)
	f.Add([]byte{0xff, 0x01}, []byte{7, 7, 7}, true)
	f.Fuzz(func(t *testing.T, data, sched []byte, takeover bool) {
		defer noHang().Stop()
		cut := len(data)
		if len(sched) > 0 {
			cut = len(data) * int(sched[0]) / 255
		}
		h := fnv.New64a()
		h.Write(sched)
		split := feeding{rng: rand.New(rand.NewPCG(h.Sum64(), 0)), maxPiece: 1, maxRead: 1}
		if len(sched) > 2 {
			split.maxPiece, split.maxRead = 1+int(sched[1]), 1+int(sched[2])
		}
		zw, zs := NewInflater(MaxWindowBits, takeover), NewInflater(MaxWindowBits, takeover)
		defer zw.Close()
		defer zs.Close()
		var dict []byte
		for i, msg := range [][]byte{data[:cut], data[cut:]} {
			got, err := inflate(zw, msg, whole, fuzzLimit)
			gotSplit, errSplit := inflate(zs, msg, split, fuzzLimit)
			if errors.Is(err, errProtocol) || errors.Is(errSplit, errProtocol) || err != nil && err != ErrCorrupt {
				t.Fatalf("message %d: whole: %v; in pieces: %v", i, err, errSplit)
			}
			if err != errSplit || !bytes.Equal(got, gotSplit) {
				t.Fatalf("message %d: whole: %d bytes, %v; in pieces: %d bytes, %v", i, len(got), err, len(gotSplit), errSplit)
			}
			want, kept, wantErr := stdModel(msg, dict)
			switch {
			case len(want) > fuzzLimit:
				if err != nil || !bytes.Equal(got, want[:fuzzLimit]) {
					t.Fatalf("message %d: %d bytes up to the limit, %v; compress/flate differs", i, len(got), err)
				}
			case wantErr == nil && (err != nil || !bytes.Equal(got, want)):
				t.Fatalf("message %d: %d bytes, %v; compress/flate inflates %d bytes", i, len(got), err, len(want))
			case wantErr != nil && (err == nil || !bytes.HasPrefix(want, got)):
				t.Fatalf("message %d: %d bytes, %v; compress/flate fails (%v) after %d bytes", i, len(got), err, wantErr, len(want))
			}
			if takeover && (err != nil || len(got) == fuzzLimit) {
				return // the windows hold a message cut short: the next one has no right answer
			}
			if dict = nil; takeover && kept {
				dict = lastBytes(got, 1<<MaxWindowBits)
			}
		}
	})
}

// stdModel inflates msg with compress/flate, primed with dict, reading up to one byte past
// fuzzLimit, and reports whether it read all of msg and the end appended to it. An empty
// message is no DEFLATE data, but inflates to nothing (see Feed).
func stdModel(msg, dict []byte) (out []byte, readAll bool, err error) {
	if len(msg) == 0 {
		return nil, true, nil
	}
	src := bytes.NewReader(append(bytes.Clone(msg), end9...))
	r := stdflate.NewReaderDict(src, dict)
	out, err = io.ReadAll(io.LimitReader(r, fuzzLimit+1))
	return out, src.Len() == 0, err
}

// FuzzRoundTrip compresses arbitrary messages (data cut where cuts say) at an arbitrary level
// and window, with or without context takeover. compress/flate, primed with no more than the
// last 2^bits bytes sent, must inflate every message, as must the package's Inflater, and the
// walker must find no back-reference past the window.
func FuzzRoundTrip(f *testing.F) {
	f.Add(textBytes(60, 5000), []byte{10, 0, 200, 3}, byte(1), byte(7), true)
	f.Add(randomBytes(61, 3000), []byte{255}, byte(9), byte(0), false)
	f.Add(bytes.Repeat([]byte("abc"), 2000), []byte{1, 1, 1}, byte(0), byte(2), true)
	f.Add([]byte{}, []byte{0, 0}, byte(5), byte(3), true)
	f.Fuzz(func(t *testing.T, data, cuts []byte, level, bits byte, takeover bool) {
		defer noHang().Stop()
		lvl := []int{HuffmanOnly, 1, 2, 3, 4, 5, 6, 7, 8, 9}[int(level)%10]
		b := MinWindowBits + int(bits)%(MaxWindowBits-MinWindowBits+1)
		var msgs [][]byte
		for _, n := range cuts[:min(len(cuts), 32)] {
			n := min(int(n)*8, len(data))
			msgs, data = append(msgs, data[:n]), data[n:]
		}
		msgs = append(msgs, data)
		c := NewCompressor(lvl, b, takeover)
		z := NewInflater(b, takeover)
		defer z.Close()
		var sent []byte
		for i, msg := range msgs {
			payload := compress(t, c, msg)
			var dict []byte
			if takeover {
				dict = lastBytes(sent, 1<<b)
			}
			if got, err := stdInflate(payload, dict); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("message %d (%d bytes): compress/flate inflates %d bytes, %v", i, len(msg), len(got), err)
			}
			if _, st, err := deflatewalk.Walk(append(payload, end9...), dict); err != nil || st.MaxDist > 1<<b {
				t.Fatalf("message %d: the walker fails (%v) or finds a reference %d back", i, err, st.MaxDist)
			}
			if got, err := inflate(z, payload, whole, -1); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("message %d (%d bytes): the Inflater gives %d bytes, %v", i, len(msg), len(got), err)
			}
			sent = append(sent, msg...)
		}
	})
}
