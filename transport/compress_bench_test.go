package transport

import (
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"net"
	"runtime"
	"testing"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

// zModes are the agreements the benchmarks compare.
var zModes = []struct {
	name string
	d    DeflateParams
}{
	{"plain", DeflateParams{}},
	{"no-takeover", DeflateParams{Enabled: true, NoContextTakeover: true, PeerNoContextTakeover: true}},
	{"takeover", DeflateParams{Enabled: true}},
}

// idleModes are zModes and a small window, for the idle memory measures (whose Conns talk to
// each other, so that both ends honour the window).
var idleModes = append(zModes[:len(zModes):len(zModes)], struct {
	name string
	d    DeflateParams
}{"takeover-10", DeflateParams{Enabled: true, MaxWindowBits: 10, PeerMaxWindowBits: 10}})

// jsonMessage returns a 1 KiB JSON document, varied by i.
func jsonMessage(i int) []byte {
	b := fmt.Appendf(nil, `{"id":%d,"type":"chat.message","room":"general-%d","user":{"id":%d,"name":"user%d","roles":["member"]},"text":"`, i, i%7, i*31, i%97)
	b = append(b, testData(0, 1024-len(b)-3, uint64(i))...)
	return append(b, `"}`+"\n"...)
}

// benchKind is a set of messages the compression benchmarks read over and over.
type benchKind struct {
	name string
	msgs [][]byte
}

// benchKinds returns 1 KiB JSON messages and 64 KiB of text.
func benchKinds() []benchKind {
	kinds := []benchKind{{"1KiB-JSON", nil}, {"64KiB-text", nil}}
	for i := range 64 {
		kinds[0].msgs = append(kinds[0].msgs, jsonMessage(i))
	}
	for i := range 4 {
		kinds[1].msgs = append(kinds[1].msgs, testData(0, 64<<10, uint64(i)))
	}
	return kinds
}

// benchServer returns a server Conn with the agreement d that reads msgs, sent by a masking
// peer (compressed by compress/flate at level 1 when d is enabled), again and again.
func benchServer(msgs [][]byte, d DeflateParams) *Conn {
	p := &peer{masked: true}
	z := newPeerDeflate(flate.BestSpeed, !d.PeerNoContextTakeover)
	var wire []byte
	for _, msg := range msgs {
		if d.Enabled {
			wire = append(wire, p.zframes(frame.OpText, z.compress(msg), 0)...)
		} else {
			wire = append(wire, p.frame(true, frame.OpText, msg)...)
		}
	}
	return NewConn(&loopStream{data: wire}, Server, Setup{Deflate: d}, &Options{MaxPayloadLen: 1 << 17})
}

// BenchmarkCompressedEcho reads a message as a server (masked, compressed by a compress/flate
// peer at level 1 as the agreement allows) and writes it back compressed: 1 KiB JSON messages
// and 64 KiB of text, without compression, without context takeover (pooled compressors) and
// with it.
func BenchmarkCompressedEcho(b *testing.B) {
	kinds := benchKinds()
	for _, k := range kinds {
		for _, m := range zModes {
			b.Run(k.name+"/"+m.name, func(b *testing.B) {
				c := benchServer(k.msgs, m.d)
				buf := make([]byte, 0, 64<<10)
				b.SetBytes(int64(len(k.msgs[0])))
				b.ReportAllocs()
				for b.Loop() {
					op, msg, err := c.ReadMessage(context.Background(), buf[:0])
					if err != nil {
						b.Fatal(err)
					}
					if _, err := c.WriteMessage(context.Background(), op, msg); err != nil {
						b.Fatal(err)
					}
				}
				st := c.Stats()
				b.ReportMetric(float64(st.BytesOut)/float64(st.FramesOut), "wireB/msg")
			})
		}
	}
}

// BenchmarkCompressedRead reads what BenchmarkCompressedEcho reads, without writing back:
// the receive side alone, with ReadMessage into a reused buffer and with RecvFrame.
func BenchmarkCompressedRead(b *testing.B) {
	kinds := benchKinds()
	for _, api := range []string{"ReadMessage", "RecvFrame"} {
		for _, k := range kinds {
			for _, m := range zModes[1:] {
				b.Run(api+"/"+k.name+"/"+m.name, func(b *testing.B) {
					c := benchServer(k.msgs, m.d)
					buf := make([]byte, 0, 64<<10)
					b.SetBytes(int64(len(k.msgs[0])))
					b.ReportAllocs()
					for b.Loop() {
						var err error
						if api == "ReadMessage" {
							_, _, err = c.ReadMessage(context.Background(), buf[:0])
						} else {
							_, err = c.RecvFrame(0)
						}
						if err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// idleConnBytes opens n connection pairs over net.Pipe with the agreement d, sends one
// message each way on each so that every compressor and decompressor has been used, and
// returns the heap and goroutines each Conn holds once idle, and a func to close them all.
func idleConnBytes(n int, d DeflateParams) (bytesPerConn, goroutinesPerConn float64, closeAll func()) {
	msg := testData(0, 40<<10, 1) // more than a full window: context takeover keeps 32 KiB each way
	var conns []*Conn
	before := wstest.LiveHeap()
	g0 := runtime.NumGoroutine()
	for range n {
		a, b := net.Pipe()
		cl := NewConn(a, Client, Setup{Deflate: d}, nil)
		sv := NewConn(b, Server, Setup{Deflate: d}, nil)
		for _, pair := range [][2]*Conn{{cl, sv}, {sv, cl}} {
			done := make(chan struct{})
			go func() { pair[0].WriteMessage(context.Background(), frame.OpText, msg); close(done) }()
			if _, got, err := pair[1].ReadMessage(context.Background(), nil); err != nil || !bytes.Equal(got, msg) {
				panic(fmt.Sprint("exchange failed: ", err))
			}
			<-done
		}
		conns = append(conns, cl, sv)
	}
	after := wstest.LiveHeap()
	g1 := runtime.NumGoroutine()
	return float64(after-before) / float64(len(conns)), float64(g1-g0) / float64(len(conns)), func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}
}

// TestDeflateIdleMemory measures what an idle Conn holds once a message larger than the window
// has gone each way, and bounds it: without context takeover compression adds next to nothing
// (compressors and decompressors went back to their pools); with it, the two windows stay:
// 32 KiB each way at 15 bits (bound: 72 KiB more than a plain Conn), 1 KiB each way at 10
// bits (bound: 4 KiB more), and no goroutine.
func TestDeflateIdleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	var plain float64
	for _, m := range idleModes {
		per, gor, closeAll := idleConnBytes(16, m.d)
		closeAll()
		t.Logf("%-12s %8.0f B/conn, %.0f goroutines/conn", m.name, per, gor)
		bound := map[string]float64{"no-takeover": 4 << 10, "takeover": 72 << 10, "takeover-10": 4 << 10}
		if m.name == "plain" {
			plain = per
		} else if per > plain+bound[m.name] || gor != 0 {
			t.Errorf("%s: an idle Conn holds %.0f bytes more than a plain one (bound %.0f), and %.0f goroutines", m.name, per-plain, bound[m.name], gor)
		}
	}
}

// BenchmarkDeflateIdleConn reports the heap an idle Conn holds (B/conn), per agreement.
func BenchmarkDeflateIdleConn(b *testing.B) {
	for _, m := range idleModes {
		b.Run(m.name, func(b *testing.B) {
			var sum float64
			n := 0
			for b.Loop() {
				per, _, closeAll := idleConnBytes(8, m.d)
				closeAll()
				sum += per
				n++
			}
			b.ReportMetric(sum/float64(n), "B/conn")
		})
	}
}
