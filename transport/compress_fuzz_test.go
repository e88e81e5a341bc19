package transport

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
)

// FuzzInflate sends arbitrary data as the payload of a compressed message, fragmented as the
// second argument says, to a Conn with a small MaxMessageLen, twice: with whole reads, and
// with reads cut short and timing out wherever the schedule says. The Conn must not panic or
// hang; it must deliver a message within the limit or close with 1007 or 1009; both passes
// must agree; and a message it delivers must be what compress/flate inflates from the data.
func FuzzInflate(f *testing.F) {
	z := newPeerDeflate(flate.BestSpeed, false)
	f.Add(z.compress([]byte("Hello, Hello, Hello")), []byte{0}, byte(0))
	f.Add(z.compress(testData(0, 5000, 1)), []byte{7, 100, 0, 3}, byte(1))
	f.Add(z.compress(testData(1, 3000, 1)), []byte{200, 0, 1}, byte(2))
	f.Add([]byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}, []byte{2}, byte(3))
	f.Add([]byte{0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}, []byte{3, 0}, byte(0))
	f.Add(bomb(10), []byte{5}, byte(1))
	f.Add([]byte{}, []byte{}, byte(0))
	f.Add([]byte{0xff, 0x01}, []byte{1}, byte(2))
	const limit = 4096
	f.Fuzz(func(t *testing.T, data, sched []byte, mode byte) {
		takeover := mode&1 != 0
		frag := 0
		if len(sched) > 0 {
			frag = int(sched[0])
		}
		p := &peer{masked: true}
		wire := p.zframes(frame.OpText+frame.Opcode(mode>>1&1), data, frag)
		wire = append(wire, p.frame(true, frame.OpClose, []byte{0x03, 0xe8})...)
		// A hang is a failure too: the panic makes the fuzzer keep the input.
		wd := time.AfterFunc(10*time.Second, func() {
			buf := make([]byte, 1<<20)
			panic("HANG\n" + string(buf[:runtime.Stack(buf, true)]))
		})
		defer wd.Stop()
		whole := inflatePass(wire, nil, takeover)
		cut := inflatePass(wire, sched, takeover)
		if whole != cut {
			t.Fatalf("whole reads: %s\ncut reads: %s", whole, cut)
		}
		if strings.HasPrefix(whole, "message ") {
			got := strings.TrimPrefix(whole, "message ")
			if len(got) > limit {
				t.Fatalf("message of %d bytes", len(got))
			}
			want, err := io.ReadAll(io.LimitReader(flate.NewReader(io.MultiReader(bytes.NewReader(data), bytes.NewReader(deflateEnd))), limit+1))
			if err == nil && !strings.HasPrefix(string(want), got) {
				t.Fatalf("message %q, compress/flate inflates %q", got, want)
			}
			// With context takeover a stream that stops inside a block may hold output back.
			if err == nil && !takeover && got != string(want) {
				t.Fatalf("message %q, compress/flate inflates %q", got, want)
			}
		}
	})
}

// inflatePass reads one message from wire with a Conn whose MaxMessageLen is 4096, with reads
// cut and timed out as sched says (nil: whole reads), and describes the outcome.
func inflatePass(wire, sched []byte, takeover bool) string {
	s := &schedStream{data: wire, sched: sched}
	d := DeflateParams{Enabled: true, PeerNoContextTakeover: !takeover}
	c := NewConn(s, Server, Setup{Deflate: d}, &Options{MaxMessageLen: 4096, CloseTimeout: -1, ReadBufferSize: 64})
	defer c.CloseNow()
	for range 100000 {
		op, msg, err := c.ReadMessage(context.Background(), nil)
		switch {
		case errors.Is(err, errSchedTimeout):
			continue
		case err == nil && (op != frame.OpText || frame.ValidUTF8(msg)):
			return "message " + string(msg)
		case err == nil:
			return "invalid UTF-8 delivered"
		}
		code := CloseStatus(err)
		switch code {
		case frame.CloseInvalidPayload, frame.CloseMessageTooBig, frame.CloseProtocolError, frame.CloseNormal:
			return fmt.Sprint("closed ", code)
		}
		return "unexpected error " + err.Error()
	}
	return "no progress"
}

// schedStream serves data in reads whose sizes come from sched, a zero entry meaning a
// timeout (never two in a row, so that reading progresses); writes are discarded.
type schedStream struct {
	data    []byte
	sched   []byte
	i       int
	timeout bool
}

var errSchedTimeout = fmt.Errorf("scheduled: %w", os.ErrDeadlineExceeded)

func (s *schedStream) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if len(s.sched) > 0 {
		k := int(s.sched[s.i%len(s.sched)])
		s.i++
		if s.timeout = k == 0 && !s.timeout; s.timeout {
			return 0, errSchedTimeout
		}
		n = min(n, max(k, 1))
	}
	n = copy(p, s.data[:min(n, len(s.data))])
	s.data = s.data[n:]
	return n, nil
}

func (s *schedStream) Write(p []byte) (int, error) { return len(p), nil }
func (s *schedStream) Close() error                { return nil }
