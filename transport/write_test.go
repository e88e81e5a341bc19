package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

func TestRoundTrip(t *testing.T) {
	for _, transport := range []string{"tcp", "pipe"} {
		t.Run(transport, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			client, server := connPair(t, transport == "pipe", &Options{MaxPayloadLen: 1000})
			big := bytes.Repeat([]byte("x"), 2500)
			go func() {
				client.SendText([]byte("héllo"))
				client.SendBinary([]byte{0, 1, 2})
				client.WriteMessage(context.Background(), frame.OpBinary, big) // 3 fragments of at most 1000
				client.SendPing([]byte("p"))
				w, _ := client.NextWriter(context.Background(), frame.OpText)
				io.WriteString(w, "stream")
				io.WriteString(w, "ed")
				w.Close()
			}()
			f, err := server.RecvFrame(time.Second)
			if err != nil || f.Opcode != frame.OpText || string(f.Payload) != "héllo" {
				t.Fatalf("%+v %v", f, err)
			}
			op, msg, err := server.ReadMessage(context.Background(), nil)
			if err != nil || op != frame.OpBinary || !bytes.Equal(msg, []byte{0, 1, 2}) {
				t.Fatalf("%v %v %v", op, msg, err)
			}
			for i, want := range []frame.Opcode{frame.OpBinary, frame.OpContinuation, frame.OpContinuation} {
				f, err := server.RecvFrame(time.Second)
				if err != nil || f.Opcode != want || f.Fin != (i == 2) || len(f.Payload) != []int{1000, 1000, 500}[i] {
					t.Fatalf("fragment %d: %+v %v", i, f.Header, err)
				}
			}
			// The ping is answered inside ReadMessage; the client's ReadMessage sees the pong
			// only as a handler call, so read it as a frame.
			go func() {
				op, msg, err := server.ReadMessage(context.Background(), nil)
				if err != nil || op != frame.OpText || string(msg) != "streamed" {
					t.Errorf("streamed message: %v %q %v", op, msg, err)
				}
				server.SendText([]byte("bye"))
			}()
			f, err = client.RecvFrame(time.Second)
			if err != nil || f.Opcode != frame.OpPong || string(f.Payload) != "p" {
				t.Fatalf("pong: %+v %v", f, err)
			}
			f, err = client.RecvFrame(time.Second)
			if err != nil || string(f.Payload) != "bye" {
				t.Fatalf("%+v %v", f, err)
			}
			done := make(chan error, 1)
			go func() { _, err := server.RecvFrame(time.Second); done <- err }()
			if err := client.Close(frame.CloseNormal, "done"); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := <-done; err != nil {
				t.Fatalf("server saw %v", err)
			}
			if _, err := server.RecvFrame(time.Second); CloseStatus(err) != frame.CloseNormal {
				t.Fatalf("server after close: %v", err)
			}
		})
	}
}

func TestConcurrentSends(t *testing.T) {
	const senders, perSender = 16, 1000
	client, server := connPair(t, false, nil)
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var p [64]byte
			for i := range perSender {
				binary.BigEndian.PutUint32(p[0:], uint32(g))
				binary.BigEndian.PutUint32(p[4:], uint32(i))
				n := 8 + (g*perSender+i)%56
				for j := 8; j < n; j++ {
					p[j] = byte(g + i + j)
				}
				var err error
				if i%2 == 0 {
					_, err = client.SendBinary(p[:n])
				} else {
					_, err = client.WriteMessage(context.Background(), frame.OpBinary, p[:n])
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	next := make([]int, senders)
	for range senders * perSender {
		f, err := server.RecvFrame(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		g, i := int(binary.BigEndian.Uint32(f.Payload)), int(binary.BigEndian.Uint32(f.Payload[4:]))
		if g >= senders || i != next[g] || len(f.Payload) != 8+(g*perSender+i)%56 {
			t.Fatalf("frame from %d seq %d (want %d) len %d", g, i, next[g], len(f.Payload))
		}
		for j := 8; j < len(f.Payload); j++ {
			if f.Payload[j] != byte(g+i+j) {
				t.Fatalf("frame %d/%d corrupt at %d", g, i, j)
			}
		}
		next[g]++
	}
	wg.Wait()
}

func TestSendRefusals(t *testing.T) {
	c, p := rawPair(t, Server, &Options{MaxPayloadLen: 10})
	tests := []struct {
		name string
		send func() (int, error)
		err  error
	}{
		{"binary over limit", func() (int, error) { return c.SendBinary(make([]byte, 11)) }, ErrPayloadTooLarge},
		{"frame over limit", func() (int, error) { return c.SendFrame(false, frame.OpBinary, make([]byte, 11)) }, ErrPayloadTooLarge},
		{"invalid text", func() (int, error) { return c.SendText([]byte{0xff}) }, ErrInvalidUTF8},
		{"invalid text message", func() (int, error) {
			return c.WriteMessage(context.Background(), frame.OpText, []byte{0xed, 0xa0, 0x80})
		}, ErrInvalidUTF8},
		{"ping of 126", func() (int, error) { return c.SendPing(make([]byte, 126)) }, ErrControlPayload},
		{"fragmented pong", func() (int, error) { return c.SendFrame(false, frame.OpPong, nil) }, ErrControlFragmented},
		{"close 1005 raw", func() (int, error) { return c.SendFrame(true, frame.OpClose, []byte{0x03, 0xed}) }, ErrCloseCode},
		{"close payload of 1 byte", func() (int, error) { return c.SendFrame(true, frame.OpClose, []byte{0x03}) }, ErrClosePayload},
		{"close reason not UTF-8 raw", func() (int, error) { return c.SendFrame(true, frame.OpClose, []byte{0x03, 0xe8, 0xff}) }, ErrCloseReason},
		{"close 1006", func() (int, error) { return c.SendClose(frame.CloseAbnormal, "") }, ErrCloseCode},
		{"close 999", func() (int, error) { return c.SendClose(999, "") }, ErrCloseCode},
		{"close reason 124 bytes", func() (int, error) { return c.SendClose(frame.CloseNormal, strings.Repeat("r", 124)) }, ErrCloseReason},
		{"close reason not UTF-8", func() (int, error) { return c.SendClose(frame.CloseNormal, "\xff") }, ErrCloseReason},
		{"reserved opcode", func() (int, error) { return c.SendFrame(true, 3, nil) }, ErrOpcode},
		{"continuation first", func() (int, error) { return c.SendFrame(true, frame.OpContinuation, nil) }, ErrFragmentOrder},
		{"message opcode", func() (int, error) { return c.WriteMessage(context.Background(), frame.OpPing, nil) }, ErrOpcode},
	}
	for _, tt := range tests {
		n, err := tt.send()
		if n != 0 || !errors.Is(err, tt.err) {
			t.Errorf("%s: %d, %v; want 0, %v", tt.name, n, err, tt.err)
		}
		// The caller's mistake, not the peer's: no close code to send, no ProtocolError.
		var ue *UsageError
		var pe *frame.ProtocolError
		if CloseStatus(err) != 0 || !errors.As(err, &ue) || errors.As(err, &pe) {
			t.Errorf("%s: %#v carries close code %d; want a *UsageError and none", tt.name, err, CloseStatus(err))
		}
	}
	if _, err := c.NextWriter(context.Background(), frame.OpClose); err != ErrOpcode {
		t.Errorf("NextWriter(close): %v", err)
	}
	// Nothing of the above reached the wire: the first frame the peer sees is this one.
	if n, err := c.SendFrame(false, frame.OpText, []byte("a")); err != nil || n != 3 {
		t.Fatalf("fragment: %d %v", n, err)
	}
	if _, err := c.SendFrame(true, frame.OpBinary, nil); err != ErrFragmentOrder {
		t.Fatalf("binary inside message: %v", err)
	}
	if _, err := c.SendBinary(nil); err != ErrFragmentOrder {
		t.Fatalf("SendBinary inside message: %v", err)
	}
	if _, err := c.SendPing([]byte("mid")); err != nil {
		t.Fatalf("ping between fragments: %v", err)
	}
	if _, err := c.SendFrame(true, frame.OpContinuation, []byte("b")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a", "mid", "b"} {
		f, err := p.read()
		if err != nil || string(f.Payload) != want {
			t.Fatalf("peer read %q %v, want %q", f.Payload, err, want)
		}
	}
	if _, err := c.SendClose(frame.CloseGoingAway, "bye"); err != nil {
		t.Fatal(err)
	}
	for name, send := range map[string]func() (int, error){
		"text":  func() (int, error) { return c.SendText([]byte("x")) },
		"ping":  func() (int, error) { return c.SendPing(nil) },
		"close": func() (int, error) { return c.SendClose(frame.CloseNormal, "") },
		"msg":   func() (int, error) { return c.WriteMessage(context.Background(), frame.OpBinary, nil) },
	} {
		if _, err := send(); err != ErrClosed {
			t.Errorf("%s after close: %v", name, err)
		}
	}
}

func TestClientMasksEveryFrame(t *testing.T) {
	c, p := rawPair(t, Client, &Options{WriteBufferSize: 128, MaxPayloadLen: 1 << 20})
	big := bytes.Repeat([]byte("mask me "), 4096)
	keys := map[[4]byte]bool{}
	go func() {
		c.SendText([]byte("small"))
		c.SendBinary(big)
		c.SendPing([]byte("ctl"))
	}()
	raw := make([]byte, 0, 64)
	for _, want := range [][]byte{[]byte("small"), big, []byte("ctl")} {
		p.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		h, err := frame.ReadHeader(p.nc)
		if err != nil || !h.Masked {
			t.Fatalf("header %+v %v", h, err)
		}
		keys[h.Key] = true
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(p.nc, payload); err != nil {
			t.Fatal(err)
		}
		raw = append(raw[:0], payload[:min(len(payload), 8)]...)
		frame.Mask(h.Key, 0, payload)
		mustEqual(t, payload, want)
	}
	if len(keys) != 3 {
		t.Fatalf("masking keys repeat: %d distinct of 3", len(keys))
	}
	if string(big[:8]) != "mask me " {
		t.Fatal("the caller's payload was masked in place")
	}
}

func TestNextWriterFragments(t *testing.T) {
	client, server := connPair(t, false, &Options{WriteBufferSize: 64, MaxPayloadLen: 32})
	go func() {
		w, err := client.NextWriter(context.Background(), frame.OpText)
		if err != nil {
			t.Error(err)
			return
		}
		for i := range 10 {
			fmt.Fprintf(w, "line %d κόσμε\n", i)
		}
		if _, err := w.Write([]byte{0xc3}); err != nil { // half a character: fine until Close
			t.Error(err)
		}
		if _, err := w.Write([]byte{0x28}); err != ErrInvalidUTF8 {
			t.Errorf("invalid continuation byte: %v", err)
		}
		w.Write([]byte{0xa9})
		if err := w.Close(); err != nil {
			t.Error(err)
		}
		if err := w.Close(); err != ErrClosed {
			t.Errorf("second Close: %v", err)
		}
	}()
	var frames int
	var msg []byte
	for {
		f, err := server.RecvFrame(time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Payload) > 32 {
			t.Fatalf("fragment of %d bytes over MaxPayloadLen", len(f.Payload))
		}
		frames++
		msg = append(msg, f.Payload...)
		if f.Fin {
			break
		}
	}
	var want strings.Builder
	for i := range 10 {
		fmt.Fprintf(&want, "line %d κόσμε\n", i)
	}
	want.WriteString("é")
	if string(msg) != want.String() || frames < 5 {
		t.Fatalf("%d frames, %q", frames, msg)
	}
}

func TestWriteTimeoutEndsConnection(t *testing.T) {
	c, _ := rawPair(t, Server, &Options{WriteTimeout: 100 * time.Millisecond, MaxPayloadLen: 1 << 20})
	big := make([]byte, 1<<20)
	var err error
	start := time.Now()
	for i := 0; i < 100 && err == nil; i++ { // the peer never reads: buffers fill, then the write times out
		_, err = c.SendBinary(big)
	}
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
	if _, err2 := c.SendBinary([]byte("x")); err2 == nil {
		t.Fatal("send after a failed write succeeded")
	}
	select {
	case <-c.Done():
	case <-time.After(time.Second):
		t.Fatal("stream not closed after a write timeout")
	}
}

func TestStats(t *testing.T) {
	client, server := connPair(t, false, nil)
	client.SendText([]byte("hello"))     // 2 + 4 + 5 bytes on the wire
	client.SendBinary(make([]byte, 200)) // 4 + 4 + 200
	if _, err := server.RecvFrame(time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := server.RecvFrame(time.Second); err != nil {
		t.Fatal(err)
	}
	want := Stats{FramesOut: 2, BytesOut: 11 + 208}
	if got := client.Stats(); got != want {
		t.Fatalf("client %+v, want %+v", got, want)
	}
	if got := server.Stats(); got != (Stats{FramesIn: 2, BytesIn: 11 + 208}) {
		t.Fatalf("server %+v", got)
	}
	// Frames that Close discards while it waits for the peer's close still count.
	go func() {
		server.SendText([]byte("discarded"))
		server.RecvFrame(time.Second)
	}()
	if err := client.Close(frame.CloseNormal, ""); err != nil {
		t.Fatal(err)
	}
	if got := client.Stats(); got.FramesIn != 2 || got.BytesIn != server.Stats().BytesOut {
		t.Fatalf("after Close: client %+v, server %+v", got, server.Stats())
	}
}

func TestBufferedBytesReadFirst(t *testing.T) {
	a, b := wstest.TCPPair(t)
	first := frame.AppendFrame(nil, frame.Header{Fin: true, Opcode: frame.OpText, Masked: true, Key: [4]byte{9, 9, 9, 9}}, []byte("came with the handshake"))
	c := NewConn(a, Server, Setup{Buffered: first[:10], Subprotocol: "chat", Extensions: "x"}, nil)
	b.Write(first[10:])
	f, err := c.RecvFrame(time.Second)
	if err != nil || string(f.Payload) != "came with the handshake" {
		t.Fatalf("%q %v", f.Payload, err)
	}
	if c.Subprotocol() != "chat" || c.Extensions() != "x" || c.Role() != Server || c.MaxPayloadLen() != DefaultMaxPayloadLen {
		t.Fatal("accessors")
	}
	if c.LocalAddr() == nil || c.RemoteAddr() == nil {
		t.Fatal("addresses")
	}
}

func TestStaleMessageWriter(t *testing.T) {
	client, server := connPair(t, false, nil)
	w1, _ := client.NextWriter(context.Background(), frame.OpText)
	io.WriteString(w1, "one")
	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}
	w2, _ := client.NextWriter(context.Background(), frame.OpText)
	io.WriteString(w2, "tw")
	// A handle kept past its Close neither writes into nor ends the next message.
	if _, err := w1.Write([]byte("x")); err != ErrClosed {
		t.Fatalf("stale Write: %v", err)
	}
	if err := w1.Close(); err != ErrClosed {
		t.Fatalf("stale Close: %v", err)
	}
	io.WriteString(w2, "o")
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"one", "two"} {
		_, msg, err := server.ReadMessage(context.Background(), nil)
		if err != nil || string(msg) != want {
			t.Fatalf("%q %v, want %q", msg, err, want)
		}
	}
}

func TestMessageWriterReadFrom(t *testing.T) {
	client, server := connPair(t, false, &Options{MaxPayloadLen: 1 << 20})
	src := bytes.Repeat([]byte("streamed κόσμε "), 2000)
	// io.LimitedReader has no WriteTo, so io.Copy uses the writer's ReadFrom.
	go func() {
		w, _ := client.NextWriter(context.Background(), frame.OpText)
		if n, err := io.Copy(w, &io.LimitedReader{R: bytes.NewReader(src), N: 1 << 30}); err != nil || n != int64(len(src)) {
			t.Errorf("io.Copy = %d, %v", n, err)
		}
		w.Close()
		w, _ = client.NextWriter(context.Background(), frame.OpText)
		if n, err := io.Copy(w, &io.LimitedReader{R: bytes.NewReader([]byte("ok\xffno")), N: 5}); n != 2 || err != ErrInvalidUTF8 {
			t.Errorf("invalid text: %d, %v", n, err)
		}
		w.Close() // sends the text before the bad byte
	}()
	_, msg, err := server.ReadMessage(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, msg, src)
	if _, msg, err = server.ReadMessage(context.Background(), nil); err != nil || string(msg) != "ok" {
		t.Fatalf("%q %v", msg, err)
	}
	r := bytes.NewReader(nil)
	lr := &io.LimitedReader{R: r}
	msg = make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(src[:100])
		lr.N = 100
		w, _ := client.NextWriter(context.Background(), frame.OpBinary)
		io.Copy(w, lr)
		w.Close()
		server.ReadMessage(context.Background(), msg[:0])
	})
	if allocs > 1 && !raceEnabled { // the message handle
		t.Fatalf("%.0f allocs per streamed message", allocs)
	}
}

func BenchmarkWriteMessage(b *testing.B) {
	// 256 KiB is fragmented at MaxPayloadLen.
	benchWrites(b, append(sizes, size{"256KiB", 256 << 10}), func(c *Conn, p []byte) error {
		_, err := c.WriteMessage(context.Background(), frame.OpBinary, p)
		return err
	})
}
