package deflate

import (
	"fmt"
	"testing"

	"github.com/klauspost/compress/flate"
)

// BenchmarkCompressTakeover measures what priming an engine with the context costs, by how
// much of it is kept: 1 KiB JSON messages at BestSpeed, each compressed by a pooled engine
// primed with the last n bytes of the messages before it (0: no context). ratio is compressed
// over original bytes. It is the measurement behind sendContext.
func BenchmarkCompressTakeover(b *testing.B) {
	msgs := jsonMessages(64)
	for _, n := range []int{0, 1 << 10, sendContext, 8 << 10, 32 << 10} {
		b.Run(fmt.Sprint("context=", n), func(b *testing.B) {
			fw, _ := flate.NewWriter(nil, BestSpeed)
			w := newWindow(max(n, 1))
			out := &countWriter{}
			in := 0
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				m := msgs[i%len(msgs)]
				if n == 0 {
					fw.Reset(out)
				} else {
					fw.ResetDict(out, w.bytes())
				}
				fw.Write(m)
				fw.Flush()
				w.add(m)
				in += len(m)
			}
			b.ReportMetric(float64(out.n)/float64(in), "ratio")
		})
	}
}

// jsonMessages returns n JSON documents of 1 KiB, alike in shape as a chat's messages are.
func jsonMessages(n int) [][]byte {
	var out [][]byte
	for i := range n {
		m := fmt.Appendf(nil, `{"id":%d,"type":"chat.message","room":"general-%d","user":{"id":%d,"name":"user%d","roles":["member"]},"text":"`, i, i%7, i*31, i%97)
		for k := 0; len(m) < 1021; k++ {
			m = fmt.Appendf(m, "word%d lorem ipsum %d ", (i*7+k)%53, k%11)
		}
		out = append(out, append(m[:1021], `"}`+"\n"...))
	}
	return out
}

type countWriter struct{ n int }

func (w *countWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
