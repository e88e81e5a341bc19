package transport

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
)

// TestDeflateConcurrentWriters sends compressed messages from several goroutines at once, with
// pings between, and the peer inflates every one.
func TestDeflateConcurrentWriters(t *testing.T) {
	for _, d := range []DeflateParams{{}, {NoContextTakeover: true}} {
		c, p := zPair(t, Client, d, zOpts())
		var wg sync.WaitGroup
		const writers, each = 4, 20
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					msg := []byte(fmt.Sprintf("writer %d message %d %s", w, i, strings.Repeat("x", i*50)))
					var err error
					if i%2 == 0 {
						_, err = c.WriteMessage(context.Background(), frame.OpText, msg)
					} else {
						err = zWriteWith(c, 1, frame.OpText, msg)
					}
					if err != nil {
						t.Error(err)
						return
					}
					c.SendPing([]byte("k"))
				}
			}()
		}
		in := &peerInflate{keep: !d.NoContextTakeover}
		seen := map[string]bool{}
		for range writers * each {
			_, payload, compressed, err := p.readMessage()
			if err != nil || !compressed {
				t.Fatal(err)
			}
			msg, err := in.inflate(payload)
			if err != nil || !strings.HasPrefix(string(msg), "writer ") {
				t.Fatalf("%q %v", msg, err)
			}
			seen[string(msg)] = true
		}
		wg.Wait()
		if len(seen) != writers*each {
			t.Fatalf("%d distinct messages", len(seen))
		}
		c.CloseNow()
	}
}

// TestDeflateWriteErrors refuses a compressed message while a fragmented one is open, without
// disturbing the compressor: the next compressed message still inflates, with context
// takeover too.
func TestDeflateWriteErrors(t *testing.T) {
	c, p := zPair(t, Server, DeflateParams{}, zOpts())
	in := &peerInflate{keep: true}
	send := func(msg string) {
		t.Helper()
		go c.WriteMessage(context.Background(), frame.OpText, []byte(msg))
		_, payload, _, err := p.readMessage()
		if err != nil {
			t.Fatal(err)
		}
		if got, err := in.inflate(payload); err != nil || string(got) != msg {
			t.Fatalf("%q %v", got, err)
		}
	}
	send("one message, then another")
	c.SendFrame(false, frame.OpText, []byte("open"))
	if _, err := c.WriteMessage(context.Background(), frame.OpText, []byte("refused")); err != ErrFragmentOrder {
		t.Fatalf("WriteMessage: %v", err)
	}
	w, _ := c.NextWriter(context.Background(), frame.OpText)
	w.Write([]byte("refused too"))
	if err := w.Close(); err != ErrFragmentOrder {
		t.Fatalf("NextWriter: %v", err)
	}
	c.SendFrame(true, frame.OpContinuation, nil)
	if f, err := p.read(); err != nil || string(f.Payload) != "open" {
		t.Fatal(f, err)
	}
	if f, err := p.read(); err != nil || !f.Fin {
		t.Fatal(f, err)
	}
	send(strings.Repeat("one message, then another, then more. ", 4))
	// The refused messages did not disturb the window: the same message again refers to the
	// last one, and shrinks to a few bytes.
	go c.WriteMessage(context.Background(), frame.OpText, []byte(strings.Repeat("one message, then another, then more. ", 4)))
	if _, payload, _, err := p.readMessage(); err != nil || len(payload) > 8 {
		t.Fatalf("a repeated message compressed to %d bytes (%v): the window was lost", len(payload), err)
	}
	c.SendClose(frame.CloseNormal, "")
	if _, err := c.WriteMessage(context.Background(), frame.OpText, []byte("after close")); err != ErrClosed {
		t.Fatalf("after close: %v", err)
	}
	// A message cut short after its first frames ends the Conn.
	s := &failingStream{ok: 2}
	c = NewConn(s, Server, Setup{Deflate: DeflateParams{Enabled: true}}, &Options{MaxPayloadLen: 100})
	if _, err := c.WriteMessage(context.Background(), frame.OpBinary, testData(1, 1000, 1)); err != errFailing {
		t.Fatalf("write error: %v", err)
	}
}

// failingStream accepts ok writes, then fails every write with errFailing.
type failingStream struct{ ok int }

var errFailing = errors.New("failing stream")

func (s *failingStream) Read([]byte) (int, error) { return 0, io.EOF }
func (s *failingStream) Write(p []byte) (int, error) {
	if s.ok == 0 {
		return 0, errFailing
	}
	s.ok--
	return len(p), nil
}
func (s *failingStream) Close() error { return nil }

// TestDeflateCloseReapsInflater ends the inflater's coroutine whatever way the connection
// ends in the middle of a fragmented compressed message: Close, CloseNow, the peer's close,
// a protocol error, or being dropped and collected.
func TestDeflateCloseReapsInflater(t *testing.T) {
	// Three frames of 1000 bytes and more: stored blocks and their sync marker, then 0x06, a
	// block of the reserved type.
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestSpeed)
	fw.Write(testData(1, 3000, 1))
	fw.Flush()
	msg := append(buf.Bytes(), 0x06)
	for _, end := range []string{"Close", "CloseNow", "peer close", "violation", "garbage"} {
		t.Run(end, func(t *testing.T) {
			wstest.CheckGoroutines(t)
			c, p := zPair(t, Server, DeflateParams{}, zOpts())
			b := p.zframes(frame.OpBinary, msg, 1000)
			p.write(b[:2016]) // two frames of three
			if f, err := c.RecvFrame(time.Second); err != nil || f.Fin {
				t.Fatal(f.Header, err)
			}
			// The peer answers the Conn's close frame, when it gets one, and hangs up.
			peerDone := make(chan struct{})
			go func() {
				defer close(peerDone)
				for {
					f, err := frame.ReadFrame(p.nc, -1)
					if err != nil || f.Opcode == frame.OpClose {
						p.nc.Write(p.frame(true, frame.OpClose, nil))
						p.nc.Close()
						return
					}
				}
			}()
			switch end {
			case "Close":
				c.Close(frame.CloseNormal, "")
			case "CloseNow":
				c.CloseNow()
				p.nc.Close()
			case "peer close":
				p.send(true, frame.OpClose, nil)
			case "violation":
				p.send(true, frame.OpText, []byte("interleaved"))
			case "garbage":
				p.write(b[2016:])
			}
			for i := 0; end != "Close" && end != "CloseNow"; i++ {
				if _, err := c.RecvFrame(time.Second); err != nil {
					break
				}
				if i == 3 {
					t.Fatal("no error")
				}
			}
			<-peerDone
		})
	}
	t.Run("dropped", func(t *testing.T) {
		wstest.CheckGoroutines(t)
		a, b := net.Pipe()
		c := NewConn(a, Server, Setup{Deflate: DeflateParams{Enabled: true}}, zOpts())
		p := &peer{t: t, nc: b, masked: true}
		go p.write(p.zframes(frame.OpBinary, msg, 1000)[:1008])
		if _, err := c.RecvFrame(time.Second); err != nil {
			t.Fatal(err)
		}
		a.Close()
		b.Close()
		c = nil
		for range 5 {
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
	})
}
