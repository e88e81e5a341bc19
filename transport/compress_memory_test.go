package transport

import (
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

// connHeap opens n connections with open, each left in or after a read call, and returns the
// live heap they add, per connection, after garbage collection. It measures after the first
// four too, and stops there when they already hold more than four times limit each, so that
// a regression cannot take the machine's memory.
func connHeap(t *testing.T, n int, limit float64, open func()) float64 {
	t.Helper()
	heap := func() int64 { return int64(wstest.LiveHeap()) }
	before := heap()
	for i := range n {
		open()
		if i == 3 {
			if per := float64(heap()-before) / 4; per > 4*limit {
				return per
			}
		}
	}
	return float64(heap()-before) / float64(n)
}

// TestDeflateDeclaredLength has peers send only the header of a compressed frame declaring a
// large payload, then a few bytes of it, while the Conn reads with each API, with and without
// context takeover: what the Conn holds must follow the bytes received, not the length
// declared. Over 200 connections, the live heap may grow by 64 KiB per connection beyond the
// bytes sent: a decompressor with its 32 KiB window, and read and output buffers, none of
// them sized by the header.
func TestDeflateDeclaredLength(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	const conns, limit = 200, 64 << 10
	cases := []struct {
		name     string
		opts     *Options
		declared int64
	}{
		{"1MiB", &Options{MaxPayloadLen: -1, CloseTimeout: -1}, 1 << 20}, // the default MaxMessageLen
		{"16MiB", &Options{MaxPayloadLen: 16 << 20, MaxMessageLen: 16 << 20, CloseTimeout: -1}, 16 << 20},
	}
	// The start of a real compressed message, so that the decompressor waits for more.
	prefix := newPeerDeflate(flate.BestSpeed, false).compress(testData(0, 1<<20, 1))[:240]
	for _, tc := range cases {
		for _, takeover := range []bool{false, true} {
			for api, name := range []string{"ReadMessage", "NextReader", "RecvFrame"} {
				t.Run(fmt.Sprintf("%s/takeover=%v/%s", tc.name, takeover, name), func(t *testing.T) {
					wstest.CheckGoroutines(t)
					var wg sync.WaitGroup
					var ends []net.Conn
					defer func() {
						for _, nc := range ends {
							nc.Close()
						}
						wg.Wait()
					}()
					h := frame.Header{Fin: true, Rsv1: true, Opcode: frame.OpText, Masked: true, Key: [4]byte{1, 2, 3, 4}, Length: tc.declared}
					hdr := frame.AppendHeader(nil, h)
					sent := len(hdr) + len(prefix)
					per := connHeap(t, conns, limit, func() {
						a, b := net.Pipe()
						ends = append(ends, a, b)
						c := NewConn(a, Server, Setup{Deflate: DeflateParams{Enabled: true, PeerNoContextTakeover: !takeover}}, tc.opts)
						wg.Add(1)
						go func() { // reads until the stream closes
							defer wg.Done()
							switch api {
							case 0:
								c.ReadMessage(context.Background(), nil)
							case 1:
								if _, r, err := c.NextReader(context.Background()); err == nil {
									r.Read(make([]byte, 64))
								}
							default:
								c.RecvFrame(0)
							}
						}()
						payload := bytes.Clone(prefix)
						frame.Mask(h.Key, 0, payload)
						// Each write returns once the Conn has read it: when the last one
						// returns, the Conn has inflated all but its byte.
						for _, part := range [][]byte{append(hdr, payload[:100]...), payload[100 : len(payload)-1], payload[len(payload)-1:]} {
							if _, err := b.Write(part); err != nil {
								t.Fatal(err)
							}
						}
					})
					t.Logf("%d declared: %.0f B/conn held beyond the %d bytes sent", tc.declared, per-float64(sent), sent)
					if per-float64(sent) > limit {
						t.Errorf("the live heap grows by %.0f bytes per connection beyond the %d bytes sent; at most %d allowed", per-float64(sent), sent, limit)
					}
				})
			}
		}
	}
}

// TestDeflateIdleAfterMessage reads one compressed message of about 1 KiB on the wire with each
// API, then leaves each Conn idle after a read call that timed out waiting for the next:
// nothing of the message may stay. The plain Conns it is compared with read a plain 1 KiB
// message. Over 200 connections,
// without context takeover, an idle Conn may hold 16 KiB more than a plain one, also after a
// message that inflated to 256 KiB; with it, 64 KiB more, for the decompressor and its window.
func TestDeflateIdleAfterMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	const conns = 200
	json := jsonMessage(1)
	zeros := make([]byte, 256<<10)
	var zjson, zzeros []byte
	{
		z := newPeerDeflate(flate.BestSpeed, false)
		zjson = z.compress(json)
		z = newPeerDeflate(flate.BestCompression, false)
		zzeros = z.compress(zeros) // 270 bytes
	}
	modes := []struct {
		name  string
		d     DeflateParams
		limit float64
	}{
		{"plain", DeflateParams{}, 0},
		{"no-takeover", DeflateParams{Enabled: true, PeerNoContextTakeover: true, NoContextTakeover: true}, 16 << 10},
		{"takeover", DeflateParams{Enabled: true}, 64 << 10},
	}
	for api, name := range []string{"ReadMessage", "NextReader", "RecvFrame"} {
		for _, kind := range []struct {
			name       string
			msg, zwire []byte
		}{{"1KiB-JSON", json, zjson}, {"256KiB-zeros", zeros, zzeros}} {
			t.Run(name+"/"+kind.name, func(t *testing.T) {
				wstest.CheckGoroutines(t)
				var plain float64
				for _, m := range modes {
					var ends []net.Conn
					var live []*Conn
					per := connHeap(t, conns, max(m.limit, 64<<10)+float64(len(kind.msg)), func() {
						a, b := net.Pipe()
						ends = append(ends, a, b)
						c := NewConn(a, Server, Setup{Deflate: m.d}, &Options{CloseTimeout: -1})
						live = append(live, c)
						p := &peer{t: t, nc: b, masked: true}
						if !m.d.Enabled { // the plain Conns read the JSON message uncompressed
							go p.nc.Write(p.frame(true, frame.OpBinary, json))
							if f, err := c.RecvFrame(10 * time.Second); err != nil || !bytes.Equal(f.Payload, json) {
								t.Fatalf("plain: %d bytes, %v", len(f.Payload), err)
							}
						} else {
							go p.nc.Write(p.zframes(frame.OpBinary, kind.zwire, 0))
							if _, got, err := zReadWith(c, api); err != nil || !bytes.Equal(got, kind.msg) {
								t.Fatalf("%s: %d bytes, %v", m.name, len(got), err)
							}
						}
						// The next read call times out: the Conn waits for its next message.
						switch api {
						case 0, 1:
							ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
							if api == 0 {
								c.ReadMessage(ctx, nil)
							} else {
								c.NextReader(ctx)
							}
							cancel()
						default:
							c.RecvFrame(time.Millisecond)
						}
					})
					for _, c := range live {
						c.CloseNow()
					}
					for _, nc := range ends {
						nc.Close()
					}
					t.Logf("%-12s %7.0f B/conn idle, %+7.0f B/conn over plain", m.name, per, per-plain)
					if m.name == "plain" {
						plain = per
					} else if per-plain > m.limit {
						t.Errorf("%s: an idle Conn holds %.0f bytes more than a plain one; at most %.0f allowed", m.name, per-plain, m.limit)
					}
				}
			})
		}
	}
}
