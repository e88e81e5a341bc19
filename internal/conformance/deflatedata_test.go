package conformance

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
)

// The data sets of groups 12 and 13, made from fixed seeds: the same bytes on every run.

// jsonData is Autobahn's 13.x data set in kind: 256 KiB of JSON records, one per line.
var jsonData = sync.OnceValue(func() []byte { return []byte(jsonCorpus()) })

// jsonCorpus is jsonData as a string.
var jsonCorpus = sync.OnceValue(func() string {
	rng := rand.New(rand.NewPCG(12, 13))
	words := strings.Fields("alpha beta gamma delta socket frame deflate window context takeover server client " +
		"message offer answer header payload token stream buffer mask close ping pong text binary reserved")
	var b strings.Builder
	for id := 0; b.Len() < 256<<10; id++ {
		fmt.Fprintf(&b, `{"id":%d,"user":"%s%d","score":%.3f,"tags":["%s","%s"],"text":"`,
			id, words[rng.IntN(len(words))], rng.IntN(1000), rng.Float64()*100, words[rng.IntN(len(words))], words[rng.IntN(len(words))])
		for range 4 + rng.IntN(12) {
			b.WriteString(words[rng.IntN(len(words))] + " ")
		}
		b.WriteString("\"}\n")
	}
	return b.String()
})

// binaryData is 256 KiB of bytes in 64-byte chunks, each random, a run, or a slightly changed
// copy of an earlier chunk from up to 64 KiB back: matches at every distance, beyond the
// largest window too.
var binaryData = sync.OnceValue(func() []byte {
	rng := rand.New(rand.NewPCG(12, 2))
	p := make([]byte, 0, 256<<10)
	for len(p) < cap(p) {
		var chunk [64]byte
		switch k := rng.IntN(10); {
		case k < 3 || len(p) < 64:
			for i := range chunk {
				chunk[i] = byte(rng.Uint32())
			}
		case k < 4:
			for i := range chunk {
				chunk[i] = byte(k)
			}
		default:
			from := len(p) - 64 - rng.IntN(min(len(p)-64, 64<<10)+1)
			copy(chunk[:], p[from:])
			chunk[rng.IntN(64)] ^= 0x5a
		}
		p = append(p, chunk[:]...)
	}
	return p
})
