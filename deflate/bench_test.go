package deflate

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"io"
	"testing"
)

// The package's cost per message, on the payloads of the repository's compressed echo
// benchmarks (bench/): 1 KiB JSON documents and 64 KiB texts, sent in turn, so that with
// context takeover a message is never an exact repeat of one still in the window.
//
//	go test -run '^$' -bench . -benchmem ./deflate

var benchPayloads = []struct {
	name string
	docs func() [][]byte
}{
	{"json-1KiB", func() [][]byte { return jsonMessages(64) }},
	{"text-64KiB", func() [][]byte {
		return [][]byte{textBytes(0, 64<<10), textBytes(1, 64<<10), textBytes(2, 64<<10), textBytes(3, 64<<10)}
	}},
}

// benchModes are the agreements benchmarked: the full window and a 1 KiB one (as npm ws
// offers), each with and without context takeover.
var benchModes = []struct {
	bits     int
	takeover bool
}{{MaxWindowBits, false}, {MaxWindowBits, true}, {10, false}, {10, true}}

func benchModeName(bits int, takeover bool) string {
	if takeover {
		return fmt.Sprintf("bits%d/takeover", bits)
	}
	return fmt.Sprintf("bits%d/no-takeover", bits)
}

// BenchmarkCompress compresses one message per iteration, at DefaultLevel, and reports the
// compressed size as a fraction of the original. With context takeover each message's engine
// is primed with the context kept, which klauspost's fast levels do by compressing it and
// dropping the output: hence sendContext (BenchmarkCompressTakeover).
func BenchmarkCompress(b *testing.B) {
	for _, p := range benchPayloads {
		docs := p.docs()
		for _, m := range benchModes {
			b.Run(p.name+"/"+benchModeName(m.bits, m.takeover), func(b *testing.B) {
				c := NewCompressor(DefaultLevel, m.bits, m.takeover)
				benchCompress(b, docs, func(w io.Writer, msg []byte) error {
					c.Start(w)
					c.Write(msg)
					return c.Finish()
				})
			})
		}
	}
}

// benchCompress runs compress on docs in turn, one per iteration, and reports the compressed
// size as a fraction of the original.
func benchCompress(b *testing.B, docs [][]byte, compress func(w io.Writer, msg []byte) error) {
	var out bytes.Buffer
	in, wire := 0, 0
	b.SetBytes(int64(len(docs[0])))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		msg := docs[i%len(docs)]
		out.Reset()
		if err := compress(&out, msg); err != nil {
			b.Fatal(err)
		}
		in, wire = in+len(msg), wire+out.Len()
	}
	b.ReportMetric(float64(wire)/float64(in), "ratio")
}

// BenchmarkInflate inflates one message per iteration, fed whole (inflated directly) or in
// 4 KiB pieces (the coroutine), into a 4 KiB buffer.
func BenchmarkInflate(b *testing.B) {
	for _, p := range benchPayloads {
		docs := p.docs()
		for _, m := range benchModes {
			// Two rounds: the second's messages refer to the ones before them as they do when
			// the benchmark goes round, and the first primes the Inflater to match.
			c := NewCompressor(DefaultLevel, m.bits, m.takeover)
			var rounds [2][][]byte
			for r := range rounds {
				for _, d := range docs {
					rounds[r] = append(rounds[r], compress(b, c, d))
				}
			}
			for _, piece := range []int{0, 4096} {
				name := p.name + "/" + benchModeName(m.bits, m.takeover) + "/whole"
				if piece > 0 {
					name = p.name + "/" + benchModeName(m.bits, m.takeover) + "/4KiB-pieces"
				}
				b.Run(name, func(b *testing.B) {
					z := NewInflater(m.bits, m.takeover)
					defer z.Close()
					buf := make([]byte, 4096)
					for _, payload := range rounds[0] {
						benchInflate(b, z, payload, piece, buf)
					}
					b.SetBytes(int64(len(docs[0])))
					b.ReportAllocs()
					for i := 0; b.Loop(); i++ {
						if n := benchInflate(b, z, rounds[1][i%len(docs)], piece, buf); n != len(docs[i%len(docs)]) {
							b.Fatalf("%d bytes inflated, not %d", n, len(docs[i%len(docs)]))
						}
					}
				})
			}
		}
	}
}

// benchInflate inflates payload, fed in pieces of the given size (0: whole), into buf and
// returns the number of bytes it inflates to.
func benchInflate(b *testing.B, z *Inflater, payload []byte, piece int, buf []byte) int {
	z.Begin()
	if piece == 0 {
		piece = len(payload)
	}
	n := min(piece, len(payload))
	z.Feed(payload[:n], n == len(payload))
	payload = payload[n:]
	total := 0
	for {
		k, err := z.Read(buf)
		total += k
		switch err {
		case nil:
		case io.EOF:
			return total
		case ErrNeedInput:
			n := min(piece, len(payload))
			z.Feed(payload[:n], n == len(payload))
			payload = payload[n:]
		default:
			b.Fatal(err)
		}
	}
}

// BenchmarkStdCompress is the measurement behind the choice of engine (doc.go): messages
// compressed on their own at BestSpeed by this package (klauspost/compress/flate, engines
// pooled), and by compress/flate, with a new writer per message or one writer Reset per
// message. Only the first two are possible per message on a connection that keeps no
// compressor between messages without a pool; compress/flate also cannot be primed with a
// window when reset, nor bound its window below 32 KiB.
func BenchmarkStdCompress(b *testing.B) {
	for _, p := range benchPayloads {
		docs := p.docs()
		b.Run(p.name+"/deflate", func(b *testing.B) {
			c := NewCompressor(BestSpeed, MaxWindowBits, false)
			benchCompress(b, docs, func(w io.Writer, msg []byte) error {
				c.Start(w)
				c.Write(msg)
				return c.Finish()
			})
		})
		b.Run(p.name+"/std-new-writer", func(b *testing.B) {
			benchCompress(b, docs, func(w io.Writer, msg []byte) error {
				fw, _ := stdflate.NewWriter(w, stdflate.BestSpeed)
				fw.Write(msg)
				return fw.Flush()
			})
		})
		b.Run(p.name+"/std-reset", func(b *testing.B) {
			fw, _ := stdflate.NewWriter(io.Discard, stdflate.BestSpeed)
			benchCompress(b, docs, func(w io.Writer, msg []byte) error {
				fw.Reset(w)
				fw.Write(msg)
				return fw.Flush()
			})
		})
	}
}
