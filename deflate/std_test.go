package deflate

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"testing"
)

// The package's output checked by an inflater it does not share code with, and its Inflater
// checked on a compressor it does not share code with: compress/flate, as a peer running
// another implementation would be (issue 20).

// independenceMsgs is a connection's traffic: prose, JSON, random bytes, and repeats.
func independenceMsgs() [][]byte {
	json := jsonMessages(6)
	msgs := [][]byte{
		textBytes(1, 100), json[2], textBytes(3, 5000), {}, randomBytes(4, 300),
		json[5], textBytes(6, 40000), textBytes(1, 100), randomBytes(4, 300), []byte("x"),
	}
	return append(msgs, msgs[1], msgs[6][1000:9000])
}

// TestStdInflatesCompressor inflates every message the Compressor sends with compress/flate,
// at each level and window, with context takeover (compress/flate primed with the last
// 2^bits bytes sent before, no more: a back-reference further back fails) and without
// (compress/flate primed with nothing).
func TestStdInflatesCompressor(t *testing.T) {
	eachMode(t, func(t *testing.T, level, bits int, takeover bool) {
		c := NewCompressor(level, bits, takeover)
		var sent []byte
		for i, msg := range independenceMsgs() {
			payload := compress(t, c, msg)
			var dict []byte
			if takeover {
				dict = lastBytes(sent, 1<<bits)
			}
			got, err := stdInflate(payload, dict)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("message %d (%d bytes): compress/flate inflates %d bytes, %v", i, len(msg), len(got), err)
			}
			sent = append(sent, msg...)
		}
	})
}

// TestInflaterInflatesStd inflates what compress/flate sends, as RFC 7692 has a sender do it:
// a sync flush per message, its last four bytes removed; with context takeover one writer for
// the whole connection, without it a writer reset per message. Each Inflater, fed whole or in
// pieces, must get every message back.
func TestInflaterInflatesStd(t *testing.T) {
	for _, level := range []int{stdflate.HuffmanOnly, stdflate.BestSpeed, stdflate.DefaultCompression, stdflate.BestCompression} {
		for _, takeover := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/takeover=%t", levelName(level), takeover), func(t *testing.T) {
				var wire bytes.Buffer
				w, err := stdflate.NewWriter(&wire, level)
				if err != nil {
					t.Fatal(err)
				}
				rs := []*receiver{
					{NewInflater(MaxWindowBits, takeover), whole},
					{NewInflater(MaxWindowBits, takeover), pieces(uint64(level+2), 50, 100)},
					{NewInflater(MaxWindowBits, takeover), pieces(uint64(level+3), 3, 5)},
				}
				for i, msg := range independenceMsgs() {
					if !takeover {
						w.Reset(&wire)
					}
					if _, err := w.Write(msg); err != nil {
						t.Fatal(err)
					}
					if err := w.Flush(); err != nil {
						t.Fatal(err)
					}
					payload, ok := bytes.CutSuffix(wire.Bytes(), end9[:4])
					if !ok {
						t.Fatalf("message %d: compress/flate's flush ends % x", i, lastBytes(wire.Bytes(), 4))
					}
					for j, r := range rs {
						got, err := inflate(r.z, payload, r.f, -1)
						if err != nil || !bytes.Equal(got, msg) {
							t.Fatalf("message %d (%d bytes), receiver %d: %d bytes back, %v", i, len(msg), j, len(got), err)
						}
					}
					wire.Reset()
				}
			})
		}
	}
}
