package transport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
)

// expectFragment reads the next frame the Conn sent and checks that it is a non-final data
// frame with payload want.
func (p *peer) expectFragment(op frame.Opcode, want string) {
	p.t.Helper()
	f, err := p.read()
	if err != nil || f.Opcode != op || f.Fin || string(f.Payload) != want {
		p.t.Fatalf("peer read %v fin %v %q %v, want a fragment %v %q", f.Opcode, f.Fin, f.Payload, err, op, want)
	}
}

// expectMessage reads the next frame the Conn sent and checks that it is the whole message
// want.
func (p *peer) expectMessage(op frame.Opcode, want string) {
	p.t.Helper()
	f, err := p.read()
	if err != nil || f.Opcode != op || !f.Fin || string(f.Payload) != want {
		p.t.Fatalf("peer read %v fin %v %.40q %v, want the message %v %q", f.Opcode, f.Fin, f.Payload, err, op, want)
	}
}

// A text message that ends inside a UTF-8 sequence is not sent as if it were whole: none of it
// goes out when none had, and a close with 1011 cuts it short when fragments had.
func TestNextWriterAbandonsUnfinishedText(t *testing.T) {
	c, p := rawPair(t, Server, &Options{MaxPayloadLen: 8})
	w, _ := c.NextWriter(context.Background(), frame.OpText)
	io.WriteString(w, "caf\xc3") // "café" cut inside the é
	if err := w.Close(); err != ErrInvalidUTF8 {
		t.Fatalf("Close: %v, want ErrInvalidUTF8", err)
	}
	if err := w.Close(); err != ErrClosed {
		t.Fatalf("second Close: %v", err)
	}
	// Nothing went out, so the connection goes on: the next message is the first the peer sees.
	if _, err := c.SendText([]byte("next")); err != nil {
		t.Fatal(err)
	}
	p.expectMessage(frame.OpText, "next")

	w, _ = c.NextWriter(context.Background(), frame.OpText)
	io.WriteString(w, "12345678caf\xc3") // the first 8 bytes go out as a fragment
	if err := w.Close(); err != ErrInvalidUTF8 {
		t.Fatalf("Close after a fragment: %v, want ErrInvalidUTF8", err)
	}
	p.expectFragment(frame.OpText, "12345678")
	if code := p.expectClose(); code != frame.CloseInternalError {
		t.Fatalf("close %d after the fragment, want 1011", code)
	}
	if _, err := c.SendText([]byte("late")); err != ErrClosed {
		t.Fatalf("send after the cut: %v", err)
	}
}

// A message over MaxMessageLen, which the Conn refuses to receive, is refused when sent
// whole, before anything goes out; a negative MaxMessageLen lifts the limit both ways.
func TestMessageLimitOnSend(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		client, server := connPair(t, false, nil)
		big := make([]byte, 2<<20)
		sent := make(chan error, 1)
		go func() {
			if n, err := client.WriteMessage(context.Background(), frame.OpBinary, big); n != 0 || err != ErrMessageTooLarge {
				sent <- fmt.Errorf("WriteMessage of 2 MiB: %d, %v", n, err)
				return
			}
			_, err := client.WriteMessage(context.Background(), frame.OpBinary, []byte("fits"))
			sent <- err
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, msg, err := server.ReadMessage(ctx, nil); err != nil || string(msg) != "fits" {
			t.Fatalf("server read %.20q %v, want the message after the refused one", msg, err)
		}
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("lifted", func(t *testing.T) {
		client, server := connPair(t, false, &Options{MaxMessageLen: -1})
		big := bytes.Repeat([]byte("x"), 2<<20)
		go client.WriteMessage(context.Background(), frame.OpBinary, big)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, msg, err := server.ReadMessage(ctx, nil); err != nil || len(msg) != len(big) {
			t.Fatalf("server read %d bytes, %v", len(msg), err)
		}
	})
	t.Run("single frame", func(t *testing.T) {
		c, p := rawPair(t, Client, &Options{MaxPayloadLen: 1000, MaxMessageLen: 100})
		over := make([]byte, 101)
		prep, _ := NewPrepared(frame.OpBinary, over)
		for name, send := range map[string]func() (int, error){
			"SendBinary":    func() (int, error) { return c.SendBinary(over) },
			"SendText":      func() (int, error) { return c.SendText(over) },
			"WriteMessage":  func() (int, error) { return c.WriteMessage(context.Background(), frame.OpBinary, over) },
			"WritePrepared": func() (int, error) { return c.WritePrepared(prep) },
		} {
			if n, err := send(); n != 0 || err != ErrMessageTooLarge {
				t.Errorf("%s of 101 bytes: %d, %v; want 0, ErrMessageTooLarge", name, n, err)
			}
		}
		c.SendBinary(over[:100])
		if f, err := p.read(); err != nil || len(f.Payload) != 100 {
			t.Fatalf("peer read %d bytes %v, want the 100-byte message first", len(f.Payload), err)
		}
	})
}

// NextWriter refuses the Write that would take the message over MaxMessageLen, and abandons
// the message rather than pass off what it holds as the whole of it.
func TestNextWriterMessageLimit(t *testing.T) {
	t.Run("nothing sent", func(t *testing.T) {
		c, p := rawPair(t, Server, &Options{MaxMessageLen: 100})
		w, _ := c.NextWriter(context.Background(), frame.OpBinary)
		if n, err := w.Write(make([]byte, 60)); n != 60 || err != nil {
			t.Fatalf("Write of 60: %d %v", n, err)
		}
		if n, err := w.Write(make([]byte, 41)); n != 0 || err != ErrMessageTooLarge {
			t.Fatalf("Write past the limit: %d %v", n, err)
		}
		if n, err := w.Write([]byte("x")); n != 0 || err != ErrMessageTooLarge {
			t.Fatalf("Write after the refusal: %d %v", n, err)
		}
		if err := w.Close(); err != ErrMessageTooLarge {
			t.Fatalf("Close: %v", err)
		}
		// The message was dropped whole; the connection goes on.
		w, _ = c.NextWriter(context.Background(), frame.OpBinary)
		w.Write(make([]byte, 100)) // exactly the limit
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if f, err := p.read(); err != nil || !f.Fin || len(f.Payload) != 100 {
			t.Fatalf("peer read %d bytes fin %v %v, want the 100-byte message first", len(f.Payload), f.Fin, err)
		}
	})
	t.Run("fragments sent", func(t *testing.T) {
		c, p := rawPair(t, Client, &Options{MaxMessageLen: 100, MaxPayloadLen: 32})
		w, _ := c.NextWriter(context.Background(), frame.OpText)
		io.WriteString(w, strings.Repeat("a", 32)+strings.Repeat("b", 32)) // a fragment goes out
		if n, err := w.Write([]byte(strings.Repeat("c", 40))); n != 0 || err != ErrMessageTooLarge {
			t.Fatalf("Write past the limit: %d %v", n, err)
		}
		if err := w.Close(); err != ErrMessageTooLarge {
			t.Fatalf("Close: %v", err)
		}
		p.expectFragment(frame.OpText, strings.Repeat("a", 32))
		if code := p.expectClose(); code != frame.CloseInternalError {
			t.Fatalf("close %d after the fragment, want 1011", code)
		}
		if _, err := c.WriteMessage(context.Background(), frame.OpText, []byte("late")); err != ErrClosed {
			t.Fatalf("send after the cut: %v", err)
		}
	})
	t.Run("ReadFrom", func(t *testing.T) {
		c, p := rawPair(t, Server, &Options{MaxMessageLen: 100})
		w, _ := c.NextWriter(context.Background(), frame.OpBinary)
		// io.LimitedReader has no WriteTo, so io.Copy uses the writer's ReadFrom.
		n, err := io.Copy(w, &io.LimitedReader{R: bytes.NewReader(make([]byte, 150)), N: 150})
		if n > 100 || err != ErrMessageTooLarge {
			t.Fatalf("io.Copy of 150: %d %v", n, err)
		}
		if err := w.Close(); err != ErrMessageTooLarge {
			t.Fatalf("Close: %v", err)
		}
		w, _ = c.NextWriter(context.Background(), frame.OpBinary)
		if n, err := io.Copy(w, &io.LimitedReader{R: bytes.NewReader(make([]byte, 100)), N: 100}); n != 100 || err != nil {
			t.Fatalf("io.Copy of 100: %d %v", n, err)
		}
		w.Close()
		if f, err := p.read(); err != nil || len(f.Payload) != 100 {
			t.Fatalf("peer read %d bytes %v, want the 100-byte message first", len(f.Payload), err)
		}
	})
}

// With permessage-deflate the limit applies to the message, not to its compressed bytes: the
// receiver checks the inflated size.
func TestCompressedMessageLimit(t *testing.T) {
	// A small write buffer hands the message to the compressor a little at a time.
	opts := &Options{MaxMessageLen: 1000, WriteBufferSize: 128, CloseTimeout: time.Second,
		Compression: &CompressionOptions{Threshold: -1}}
	c, p := zPair(t, Server, DeflateParams{}, opts)
	in := &peerInflate{keep: true}
	expect := func(want []byte) {
		t.Helper()
		_, payload, compressed, err := p.readMessage()
		if err != nil || !compressed {
			t.Fatalf("compressed %v, %v", compressed, err)
		}
		if got, err := in.inflate(payload); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("inflated %d bytes %v, want %d", len(got), err, len(want))
		}
	}
	zeros := make([]byte, 1001) // a few bytes compressed
	if n, err := c.WriteMessage(context.Background(), frame.OpBinary, zeros); n != 0 || err != ErrMessageTooLarge {
		t.Fatalf("WriteMessage of 1001 zeros: %d %v", n, err)
	}
	w, _ := c.NextWriter(context.Background(), frame.OpBinary)
	w.Write(zeros[:600])
	if _, err := w.Write(zeros[:401]); err != ErrMessageTooLarge {
		t.Fatalf("Write past the limit: %v", err)
	}
	if err := w.Close(); err != ErrMessageTooLarge {
		t.Fatalf("Close: %v", err)
	}
	// Nothing of either went out, and the compressor forgot them: the next message inflates
	// with the peer's window as it is.
	msg := append(make([]byte, 500), "fits"...) // zeros the compressor could refer back to
	go c.WriteMessage(context.Background(), frame.OpBinary, msg)
	expect(msg)

	// Once compressed fragments have gone out, the message is cut short by a close.
	opts.MaxPayloadLen, opts.MaxMessageLen = 1024, 200<<10
	c, p = zPair(t, Client, DeflateParams{}, opts)
	seen := make(chan string, 1)
	go func() { // the frames the peer sees, up to the close
		var got []string
		for {
			f, err := p.read()
			switch {
			case err != nil:
				got = append(got, err.Error())
			case f.Opcode == frame.OpClose:
				got = append(got, fmt.Sprintf("close %d", f.CloseCode()))
			case f.Fin:
				got = append(got, "final")
			case len(got) == 0 && f.Opcode == frame.OpBinary && f.Rsv1:
				got = append(got, "first")
			case len(got) == 1 && f.Opcode == frame.OpContinuation:
				continue
			default:
				got = append(got, fmt.Sprintf("%+v", f.Header))
			}
			if f.Opcode == frame.OpClose || err != nil || len(got) > 2 {
				seen <- strings.Join(got, ", ")
				return
			}
		}
	}()
	w, _ = c.NextWriter(context.Background(), frame.OpBinary)
	w.Write(testData(1, 150<<10, 1)) // incompressible, more than the compressor holds back
	if _, err := w.Write(make([]byte, 60<<10)); err != ErrMessageTooLarge {
		t.Fatalf("Write past the limit: %v", err)
	}
	if err := w.Close(); err != ErrMessageTooLarge {
		t.Fatalf("Close: %v", err)
	}
	if got := <-seen; got != "first, close 1011" {
		t.Fatalf("the peer saw %s; want the first fragment, more, and close 1011", got)
	}
}
