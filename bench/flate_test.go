package bench

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"io"
	"runtime"
	"testing"

	kpflate "github.com/klauspost/compress/flate"
)

// Which DEFLATE implementation permessage-deflate should use (issue 20): compress/flate or
// github.com/klauspost/compress/flate, on the compressed echo benchmark's messages, in the
// ways a WebSocket connection uses a compressor:
//   - fresh: each message on its own (no context takeover), the compressor reset per message;
//   - dict: context takeover kept as a window only, so each message's compressor is primed
//     with the 32 KiB sent before it (compress/flate can prime only a new writer);
//   - window1KiB: a 2^10 window agreed (client_max_window_bits=10): klauspost has a real
//     1 KiB window, compress/flate can keep within it only by Huffman coding alone.
//
// Each reports ns and allocations per message and the compressed size as a fraction of the
// original ("ratio"); BenchmarkFlateInflate does the same for decompression, and
// TestFlateWriterSize logs the heap a compressor holds.
//
//	cd bench && go test -run '^$' -bench 'Flate' -benchmem .

// flateCodec is one implementation's compressor, made for a mode.
type flateCodec struct {
	name string
	// writer returns a compressor writing to w that is primed with dict (nil: none) and,
	// when window > 0, refers back at most window bytes.
	writer func(w io.Writer, dict []byte, window int) (flateWriter, error)
	reader func(r io.Reader, dict []byte) io.ReadCloser
}

type flateWriter interface {
	io.Writer
	Flush() error
}

var flateCodecs = []flateCodec{
	{
		name: "std",
		writer: func(w io.Writer, dict []byte, window int) (flateWriter, error) {
			if window > 0 {
				return stdflate.NewWriter(w, stdflate.HuffmanOnly)
			}
			return stdflate.NewWriterDict(w, stdflate.BestSpeed, dict)
		},
		reader: stdflate.NewReaderDict,
	},
	{
		name: "klauspost",
		writer: func(w io.Writer, dict []byte, window int) (flateWriter, error) {
			if window > 0 {
				return kpflate.NewWriterWindow(w, window)
			}
			return kpflate.NewWriterDict(w, kpflate.BestSpeed, dict)
		},
		reader: kpflate.NewReaderDict,
	},
}

// resetter is what both implementations' writers offer for reuse.
type resetter interface{ Reset(io.Writer) }

func BenchmarkFlateDeflate(b *testing.B) {
	for _, p := range compressPayloads {
		docs := p.docs()
		for _, mode := range []string{"fresh", "dict", "window1KiB"} {
			for _, fc := range flateCodecs {
				b.Run(fmt.Sprintf("%s/%s/%s", p.name, mode, fc.name), func(b *testing.B) {
					var out bytes.Buffer
					window := 0
					if mode == "window1KiB" {
						window = 1 << 10
					}
					zw, err := fc.writer(&out, nil, window)
					if err != nil {
						b.Fatal(err)
					}
					var in, wire int64
					var hist []byte // what was sent before, for dict
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						msg := docs[i%len(docs)]
						out.Reset()
						switch {
						case mode != "dict":
							zw.(resetter).Reset(&out)
						case fc.name == "klauspost":
							zw.(*kpflate.Writer).ResetDict(&out, hist)
						default:
							// compress/flate primes a writer only when making it.
							if zw, err = fc.writer(&out, hist, 0); err != nil {
								b.Fatal(err)
							}
						}
						zw.Write(msg)
						zw.Flush()
						in += int64(len(msg))
						wire += int64(out.Len() - 4) // RFC 7692 drops the sync flush's tail
						if mode == "dict" {
							hist = appendWindow(hist, msg, 32<<10)
						}
					}
					b.ReportMetric(float64(wire)/float64(in), "ratio")
					b.SetBytes(int64(len(docs[0])))
				})
			}
		}
	}
}

func BenchmarkFlateInflate(b *testing.B) {
	for _, p := range compressPayloads {
		docs := p.docs()
		for _, fc := range flateCodecs {
			b.Run(fmt.Sprintf("%s/fresh/%s", p.name, fc.name), func(b *testing.B) {
				// Every message compressed on its own, as a peer without context takeover sends it.
				wires := make([][]byte, len(docs))
				for i, d := range docs {
					var out bytes.Buffer
					zw, _ := stdflate.NewWriter(&out, stdflate.BestSpeed)
					zw.Write(d)
					zw.Flush()
					wires[i] = append(out.Bytes()[:out.Len()-4:out.Len()-4], 0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff)
				}
				var src bytes.Reader
				zr := fc.reader(&src, nil)
				dst := make([]byte, len(docs[0]))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					src.Reset(wires[i%len(wires)])
					zr.(kpflate.Resetter).Reset(&src, nil)
					if _, err := io.ReadFull(zr, dst); err != nil {
						b.Fatal(err)
					}
				}
				b.SetBytes(int64(len(docs[0])))
			})
		}
	}
}

// appendWindow appends msg to hist and keeps the last size bytes.
func appendWindow(hist, msg []byte, size int) []byte {
	hist = append(hist, msg...)
	if over := len(hist) - size; over > 0 {
		hist = append(hist[:0], hist[over:]...)
	}
	return hist
}

// TestFlateWriterSize logs the heap one compressor holds, at BestSpeed and with a 1 KiB
// window, and one decompressor: what a pool lends per message in flight, and what a
// connection would hold if it kept its own.
func TestFlateWriterSize(t *testing.T) {
	const n = 50
	measure := func(newOne func() any) int64 {
		keep := make([]any, n)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range keep {
			keep[i] = newOne()
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(keep)
		return (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	}
	for _, fc := range flateCodecs {
		for _, window := range []int{0, 1 << 10} {
			size := measure(func() any { w, _ := fc.writer(io.Discard, nil, window); return w })
			t.Logf("%s writer (window %d): %d KiB", fc.name, window, size>>10)
		}
		size := measure(func() any { return fc.reader(bytes.NewReader(nil), nil) })
		t.Logf("%s reader: %d KiB", fc.name, size>>10)
	}
}
