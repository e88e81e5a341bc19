package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/transport"
)

// expectations hold what differs from one peer to another: the behaviours README.md lists
// under Disagreements, and what a peer's API lets its client do. The tests assert them, so the
// table in README.md is checked on every run.
type expectations struct {
	// serverPick is the subprotocol the peer server picks when the client offers [v1 v2] and
	// the server lists [v2 v1]; "" when the choice is not deterministic.
	serverPick string
	// acceptsUnknownProto: the peer server agrees to the client's first offer, known or not.
	acceptsUnknownProto bool
	// utf8Code is the close code the peer fails a text message that is not UTF-8 with (RFC
	// 6455 8.1 says 1007); 0 when it delivers the bytes to the application instead.
	utf8Code frame.CloseCode
	// echoesReason: the close frame the peer sends back carries the reason it received.
	echoesReason bool
	// seesEchoReason: the peer's API reports the reason in the answer to its own close.
	seesEchoReason bool
	// tooBigCode is the close code the peer sends for a message over its read limit.
	tooBigCode frame.CloseCode
	// customPing: the peer can choose its ping payload (coder's Ping sends a counter).
	customPing bool
	// pingsMidMessage: the peer server sends a ping between the fragments of its text in the
	// fragments scenario, and reports whether the pong came back.
	pingsMidMessage bool

	// What the peer client does and can do.
	offersDeflate      bool // offers permessage-deflate by default
	clientPings        bool // send a ping
	clientFragments    bool // send a fragmented message
	clientInvalidUTF8  bool // send a text frame that is not UTF-8
	clientHasReadLimit bool // limit the size of messages it receives
}

// peer is one independently written WebSocket implementation.
type peer struct {
	name    string
	require func(t *testing.T)
	// server starts the peer as a server; its paths are described on peerServer.
	server func(t *testing.T) *peerServer
	// client runs the peer as a client of url for one scenario and returns its report.
	client func(t *testing.T, url, scenario string) peerReport
	exp    expectations
}

// testPeer runs every scenario both ways: ecows as the client of the peer's server, and the
// peer as the client of an ecows server.
func testPeer(t *testing.T, p peer) {
	p.require(t)
	t.Run("EcowsClientToPeerServer", func(t *testing.T) {
		s := p.server(t)
		for _, sc := range ecowsClientScenarios {
			t.Run(sc.name, func(t *testing.T) { sc.run(t, s, p.exp) })
		}
	})
	t.Run("PeerClientToEcowsServer", func(t *testing.T) {
		es := startEcowsServer(t, nil)
		for _, sc := range peerClientScenarios {
			t.Run(sc.name, func(t *testing.T) {
				if sc.skip != nil {
					if why := sc.skip(p.exp); why != "" {
						t.Skipf("%s: %s", p.name, why)
					}
				}
				url := es.url + "/" + sc.name
				if sc.name == "wss" {
					url = es.tlsURL + "/wss"
				}
				report := p.client(t, url, sc.name)
				res := es.await(t, "/"+sc.name)
				sc.check(t, report, res, p.exp)
			})
		}
	})
}

// ---- ecows as the client of a peer server ----

type clientScenario struct {
	name string
	run  func(t *testing.T, s *peerServer, exp expectations)
}

var ecowsClientScenarios = []clientScenario{
	{"echo", clientEcho},
	{"fragments", clientFragments},
	{"ping", clientPing},
	{"close-by-peer", clientCloseByPeer},
	{"close-by-ecows", clientCloseByEcows},
	{"subprotocol", clientSubprotocol},
	{"invalid-utf8-from-ecows", clientInvalidUTF8},
	{"too-big-for-ecows", clientTooBigForEcows},
	{"too-big-for-peer", clientTooBigForPeer},
	{"wss", clientWSS},
	{"concurrent-writers", clientConcurrentWriters},
}

func largeDial() *handshake.DialOptions {
	return &handshake.DialOptions{Options: transport.Options{
		MaxPayloadLen: largeLimit, MaxMessageLen: largeLimit, CloseTimeout: closeTimeout,
	}}
}

func dial(t *testing.T, url string, opts *handshake.DialOptions) *transport.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	c, _, err := handshake.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func read(c *transport.Conn) (frame.Opcode, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	return c.ReadMessage(ctx, nil)
}

// roundTrip sends a message and checks that the same comes back.
func roundTrip(t *testing.T, c *transport.Conn, op frame.Opcode, p []byte) {
	t.Helper()
	if _, err := c.WriteMessage(context.Background(), op, p); err != nil {
		t.Fatalf("WriteMessage(%v, %d bytes): %v", op, len(p), err)
	}
	gop, got, err := read(c)
	if err != nil {
		t.Fatalf("reading the echo of %v %d bytes: %v", op, len(p), err)
	}
	if gop != op || !bytes.Equal(got, p) {
		t.Fatalf("echo of %v %d bytes: got %v %d bytes", op, len(p), gop, len(got))
	}
}

// closeAndCheck runs ecows' close handshake and checks that the peer answered in time.
func closeAndCheck(t *testing.T, c *transport.Conn, code frame.CloseCode, reason string) {
	t.Helper()
	start := time.Now()
	if err := c.Close(code, reason); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > closeFastEnough {
		t.Errorf("Close took %v: the peer did not end the connection promptly", d)
	}
}

func clientEcho(t *testing.T, s *peerServer, exp expectations) {
	c := dial(t, s.url+"/echo/echo", largeDial())
	roundTrip(t, c, frame.OpText, []byte(textMsg))
	for _, n := range binarySizes {
		roundTrip(t, c, frame.OpBinary, pattern(n))
	}
	resumeAfterTimeouts(t, c)
	closeAndCheck(t, c, frame.CloseNormal, "done")
	if e, ok := s.events.wait(t, "closed", "/echo/echo", scenarioTimeout); ok && (e.Code != 1000 || e.Reason != "done") {
		t.Errorf("peer saw close %d %q, want 1000 \"done\"", e.Code, e.Reason)
	}
}

// resumeAfterTimeouts reads echoes with read calls that time out after a millisecond, again
// and again, in the middle of headers and payloads: each call must resume where the last one
// stopped, so the message comes out whole.
func resumeAfterTimeouts(t *testing.T, c *transport.Conn) {
	t.Helper()
	deadline := time.Now().Add(scenarioTimeout)
	want := pattern(1 << 20)
	if _, err := c.WriteMessage(context.Background(), frame.OpBinary, want); err != nil {
		t.Fatal(err)
	}
	timeouts := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		op, got, err := c.ReadMessage(ctx, nil)
		cancel()
		// Either error: which of the two a timeout matches depends on timing (bug_test.go).
		timedOut := errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)
		if timedOut && time.Now().Before(deadline) {
			timeouts++
			continue
		}
		if err != nil || op != frame.OpBinary || !bytes.Equal(got, want) {
			t.Fatalf("ReadMessage after %d timeouts: %v %d bytes %v, want the 1 MiB echo", timeouts, op, len(got), err)
		}
		break
	}
	want = pattern(65536)
	if _, err := c.WriteMessage(context.Background(), frame.OpBinary, want); err != nil {
		t.Fatal(err)
	}
	frameTimeouts := 0
	for {
		f, err := c.RecvFrame(time.Millisecond)
		if errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(deadline) {
			frameTimeouts++
			continue
		}
		if err != nil || f.Opcode != frame.OpBinary || !f.Fin || !bytes.Equal(f.Payload, want) {
			t.Fatalf("RecvFrame after %d timeouts: %v fin=%v %d bytes %v, want the 64 KiB echo", frameTimeouts, f.Opcode, f.Fin, len(f.Payload), err)
		}
		break
	}
	t.Logf("echoes read whole across %d ReadMessage and %d RecvFrame timeouts", timeouts, frameTimeouts)
}

// recvFrames reads n messages frame by frame, answering pings, and returns them as they came.
func recvFrames(t *testing.T, c *transport.Conn, n int) []recvMsg {
	t.Helper()
	var msgs []recvMsg
	open := false // the last message has more fragments to come
	deadline := time.Now().Add(scenarioTimeout)
	for len(msgs) < n || open {
		f, err := c.RecvFrame(time.Until(deadline))
		if err != nil {
			t.Fatalf("RecvFrame after %d messages: %v", len(msgs), err)
		}
		switch f.Opcode {
		case frame.OpPing:
			c.SendPong(f.Payload)
			continue
		case frame.OpPong:
			continue
		case frame.OpText, frame.OpBinary:
			msgs = append(msgs, recvMsg{op: f.Opcode})
		}
		if len(msgs) == 0 {
			t.Fatalf("first frame is %v", f.Opcode)
		}
		m := &msgs[len(msgs)-1]
		m.frames++
		m.data = append(m.data, f.Payload...)
		open = !f.Fin
	}
	return msgs
}

func clientFragments(t *testing.T, s *peerServer, exp expectations) {
	opts := largeDial()
	pongs := make(chan string, 4)
	opts.PongHandler = func(_ *transport.Conn, p []byte) error {
		select {
		case pongs <- string(p):
		default:
		}
		return nil
	}
	c := dial(t, s.url+"/fragments", opts)

	// The peer's fragmented text through ReadMessage, which answers the ping that some peers
	// send between its fragments; Stats tells how many frames it took.
	before := c.Stats().FramesIn
	op, got, err := read(c)
	frames := c.Stats().FramesIn - before
	if exp.pingsMidMessage {
		frames-- // the ping
		if e, ok := s.events.wait(t, "check", "/fragments", scenarioTimeout); ok && (e.Name != "pong-mid-message" || !e.OK) {
			t.Errorf("peer's check of ecows' pong to its ping between fragments: %v", e)
		}
	}
	if err != nil || op != frame.OpText || string(got) != fragText || frames < 2 {
		t.Errorf("fragmented text: %v %q in %d frames (%v), want text %q in 2 or more", op, got, frames, err, fragText)
	}
	// The peer's fragmented binary frame by frame.
	bin := recvFrames(t, c, 1)[0]
	if bin.op != frame.OpBinary || bin.frames < 2 || !bytes.Equal(bin.data, pattern(fragBinaryLen)) {
		t.Errorf("fragmented binary: %v in %d frames of %d bytes, want binary in 2 or more frames of %d bytes", bin.op, bin.frames, len(bin.data), fragBinaryLen)
	}
	t.Logf("peer's fragmented messages reached ecows in %d and %d frames", frames, bin.frames)

	// ecows' fragments, cut inside characters, with a ping between them.
	if err := sendFragments(c); err != nil {
		t.Fatalf("sending fragments: %v", err)
	}
	if op, got, err := read(c); err != nil || op != frame.OpText || string(got) != fragText {
		t.Errorf("echo of the fragmented text: %v %q %v, want %q", op, got, err, fragText)
	}
	if op, got, err := read(c); err != nil || op != frame.OpBinary || !bytes.Equal(got, pattern(fragBinaryLen)) {
		t.Errorf("echo of the fragmented binary: %v %d bytes %v", op, len(got), err)
	}
	select {
	case p := <-pongs:
		if p != pingFromEcows {
			t.Errorf("pong for the ping between fragments carried %q, want %q", p, pingFromEcows)
		}
	default:
		t.Errorf("no pong for the ping sent between fragments")
	}

	// A long text through NextWriter, which sends a fragment each time its buffer (4 KiB by
	// default) fills: 25,200 bytes, under coder's default read limit of 32 KiB.
	long := strings.Repeat(fragText, 600)
	before = c.Stats().FramesOut
	w, err := c.NextWriter(context.Background(), frame.OpText)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(long)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if sent := c.Stats().FramesOut - before; sent < 2 {
		t.Errorf("NextWriter sent %d bytes in %d frame(s), want fragments", len(long), sent)
	}
	if op, got, err := read(c); err != nil || op != frame.OpText || string(got) != long {
		t.Errorf("echo of the NextWriter text: %v %d bytes %v, want text of %d bytes", op, len(got), err, len(long))
	}
	closeAndCheck(t, c, frame.CloseNormal, "done")
}

func clientPing(t *testing.T, s *peerServer, exp expectations) {
	c := dial(t, s.url+"/ping", largeDial())
	if _, err := c.SendPing([]byte(pingFromEcows)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(scenarioTimeout)
	for {
		f, err := c.RecvFrame(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for the pong: %v", err)
		}
		if f.Opcode == frame.OpPong {
			if string(f.Payload) != pingFromEcows {
				t.Errorf("pong payload %q, want %q", f.Payload, pingFromEcows)
			}
			break
		}
		t.Errorf("unexpected %v frame while waiting for the pong", f.Opcode)
	}
	// "go" asks the peer for its ping, which ReadMessage answers; the peer reports the pong.
	if _, err := c.WriteMessage(context.Background(), frame.OpText, []byte("go")); err != nil {
		t.Fatal(err)
	}
	op, msg, err := read(c)
	if err != nil || op != frame.OpText {
		t.Fatalf("reading the peer's verdict: %v %q %v", op, msg, err)
	}
	want := "pong-ok " + pingFromPeer
	if !exp.customPing {
		want = "pong-ok "
	}
	if !strings.HasPrefix(string(msg), want) {
		t.Errorf("peer's verdict on ecows' pong: %q, want %q", msg, want)
	}
	closeAndCheck(t, c, frame.CloseNormal, "")
}

func clientCloseByPeer(t *testing.T, s *peerServer, exp expectations) {
	c := dial(t, s.url+"/close-by-peer", largeDial())
	_, _, err := read(c)
	if code, reason := closeCode(t, err); code != codeFromPeer || reason != reasonFromPeer {
		t.Errorf("got close %d %q, want %d %q", code, reason, codeFromPeer, reasonFromPeer)
	}
	select {
	case <-c.Done():
	case <-time.After(closeFastEnough):
		t.Errorf("the peer server did not end the connection within %v of the close handshake", closeFastEnough)
	}
	e, ok := s.events.wait(t, "closed", "/close-by-peer", scenarioTimeout)
	if ok && e.Code != -1 && e.Code != codeFromPeer {
		t.Errorf("peer got back close code %d, want %d", e.Code, codeFromPeer)
	}
	if ok && exp.seesEchoReason && e.Reason != "" {
		t.Errorf("peer got back reason %q; ecows echoes the code only", e.Reason)
	}
}

func clientCloseByEcows(t *testing.T, s *peerServer, exp expectations) {
	c := dial(t, s.url+"/echo/close-by-ecows", largeDial())
	start := time.Now()
	if _, err := c.SendClose(codeFromEcows, reasonFromEcows); err != nil {
		t.Fatal(err)
	}
	// RecvFrame returns the peer's answer once the peer server has ended TCP (RFC 6455 7.1.1:
	// the server closes first), or after CloseTimeout.
	for {
		f, err := c.RecvFrame(scenarioTimeout)
		if err != nil {
			t.Fatalf("waiting for the peer's close: %v", err)
		}
		if f.Opcode != frame.OpClose {
			continue
		}
		wantReason := ""
		if exp.echoesReason {
			wantReason = reasonFromEcows
		}
		if f.CloseCode() != codeFromEcows || f.CloseReason() != wantReason {
			t.Errorf("peer answered close %d %q, want %d %q", f.CloseCode(), f.CloseReason(), codeFromEcows, wantReason)
		}
		break
	}
	if d := time.Since(start); d > closeFastEnough {
		t.Errorf("close handshake took %v: the peer server did not end TCP promptly", d)
	}
	if e, ok := s.events.wait(t, "closed", "/echo/close-by-ecows", scenarioTimeout); ok && (e.Code != codeFromEcows || e.Reason != reasonFromEcows) {
		t.Errorf("peer saw close %d %q, want %d %q", e.Code, e.Reason, codeFromEcows, reasonFromEcows)
	}
}

func clientSubprotocol(t *testing.T, s *peerServer, exp expectations) {
	cases := []struct {
		path, want string
		offer      []string
	}{
		{"/subprotocol/preference", exp.serverPick, []string{proto1, proto2}},
		{"/subprotocol/only-v1", proto1, []string{"ecows.v9", proto1}},
		{"/subprotocol/unknown", "", []string{"ecows.v9"}},
	}
	if exp.acceptsUnknownProto {
		cases[1].want, cases[2].want = "ecows.v9", "ecows.v9"
	}
	for _, tc := range cases {
		opts := largeDial()
		opts.Subprotocols = tc.offer
		c := dial(t, s.url+tc.path, opts)
		got := c.Subprotocol()
		t.Logf("%s: offered %v, agreed on %q", tc.path, tc.offer, got)
		switch {
		case tc.want == "" && tc.path == "/subprotocol/preference":
			if got != proto1 && got != proto2 {
				t.Errorf("%s: agreed on %q, want %q or %q", tc.path, got, proto1, proto2)
			}
		case got != tc.want:
			t.Errorf("%s: offered %v, agreed on %q, want %q", tc.path, tc.offer, got, tc.want)
		}
		if _, msg, err := read(c); err != nil || string(msg) != "proto:"+got {
			t.Errorf("%s: the peer said %q (%v), want %q", tc.path, msg, err, "proto:"+got)
		}
		closeAndCheck(t, c, frame.CloseNormal, "")
	}
}

func clientInvalidUTF8(t *testing.T, s *peerServer, exp expectations) {
	c := dial(t, s.url+"/echo/invalid-utf8", largeDial())
	// SendFrame does not check UTF-8, so ecows can be made to send a bad text frame.
	if _, err := c.SendFrame(true, frame.OpText, invalidUTF8); err != nil {
		t.Fatal(err)
	}
	_, msg, err := read(c)
	if exp.utf8Code != 0 {
		code, reason := closeCode(t, err)
		if code != exp.utf8Code {
			t.Errorf("peer closed with %d %q, want %d", code, reason, exp.utf8Code)
		}
		t.Logf("peer closed with %d %q", code, reason)
	} else {
		// The peer echoes the bytes; ecows refuses them with 1007.
		if code := protocolCode(t, err); code != frame.CloseInvalidPayload {
			t.Errorf("ecows failed the echo with %d, want 1007 (got %q)", code, msg)
		}
		if e, ok := s.events.wait(t, "closed", "/echo/invalid-utf8", scenarioTimeout); ok && e.Code != 1007 {
			t.Errorf("peer saw close %d, want ecows' 1007", e.Code)
		}
	}
}

func clientTooBigForEcows(t *testing.T, s *peerServer, exp expectations) {
	for _, path := range []string{"/big", "/big-fragmented"} {
		c := dial(t, s.url+path, &handshake.DialOptions{Options: transport.Options{
			MaxPayloadLen: smallLimit, MaxMessageLen: 2 * smallLimit, CloseTimeout: closeTimeout,
		}})
		_, _, err := read(c)
		if code := protocolCode(t, err); code != frame.CloseMessageTooBig {
			t.Errorf("%s: ecows failed with %d, want 1009", path, code)
		}
		if e, ok := s.events.wait(t, "closed", path, scenarioTimeout); ok && e.Code != 1009 {
			t.Errorf("%s: peer saw close %d %q, want 1009", path, e.Code, e.Reason)
		}
	}
}

func clientTooBigForPeer(t *testing.T, s *peerServer, exp expectations) {
	c := dial(t, s.url+"/small/too-big", largeDial())
	if _, err := c.WriteMessage(context.Background(), frame.OpBinary, pattern(oversize)); err != nil {
		t.Fatal(err)
	}
	_, _, err := read(c)
	code, reason := closeCode(t, err)
	if code != exp.tooBigCode {
		t.Errorf("peer closed with %d %q, want %d", code, reason, exp.tooBigCode)
	}
	t.Logf("peer over its limit closed with %d %q", code, reason)
}

func clientWSS(t *testing.T, s *peerServer, exp expectations) {
	opts := largeDial()
	opts.TLSConfig = clientTLS(t)
	c := dial(t, s.tlsURL+"/echo/wss", opts)
	roundTrip(t, c, frame.OpText, []byte(textMsg))
	roundTrip(t, c, frame.OpBinary, pattern(65536))
	closeAndCheck(t, c, frame.CloseNormal, "done")

	opts = largeDial()
	opts.InsecureSkipVerify = true
	c = dial(t, s.tlsURL+"/echo/wss-insecure", opts)
	roundTrip(t, c, frame.OpText, []byte(textMsg))
	closeAndCheck(t, c, frame.CloseNormal, "done")

	// Without trust in the self-signed certificate, the handshake must fail.
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	c, _, err := handshake.Dial(ctx, s.tlsURL+"/echo/wss-untrusted", largeDial())
	if err == nil {
		c.CloseNow()
		t.Errorf("dialing an untrusted self-signed server succeeded")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("dialing an untrusted server: %v, want a certificate error", err)
	}
}

// clientConcurrentWriters has goroutines send at once, whole messages, fragmented ones through
// NextWriter, and pings, which ecows serializes; a peer that saw frames interleaved would fail
// the connection with 1002. Every message must come back whole. Only one goroutine uses
// NextWriter: two at once race inside ecows (bug_test.go).
func clientConcurrentWriters(t *testing.T, s *peerServer, exp expectations) {
	c := dial(t, s.url+"/echo/concurrent", largeDial())
	const writers, each = 6, 10
	want := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	defer func() {
		// On every path, including t.Fatal: stop the writers before the test ends.
		c.CloseNow()
		wg.Wait()
	}()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				msg := strings.Repeat(fmt.Sprintf("writer %d message %d ✓ ", w, i), 1+(w*each+i)*37%600)
				mu.Lock()
				want[msg]++
				mu.Unlock()
				var err error
				kind := i % 3
				if kind == 1 && w != 0 {
					kind = 0
				}
				switch kind {
				case 0:
					_, err = c.WriteMessage(context.Background(), frame.OpText, []byte(msg))
				case 1:
					var wr io.WriteCloser
					if wr, err = c.NextWriter(context.Background(), frame.OpText); err == nil {
						for _, part := range thirds([]byte(msg)) {
							if _, err = wr.Write(part); err != nil {
								break
							}
						}
						if cerr := wr.Close(); err == nil {
							err = cerr
						}
					}
				case 2:
					if _, err = c.SendPing([]byte(fmt.Sprint(w, i))); err == nil {
						_, err = c.WriteMessage(context.Background(), frame.OpText, []byte(msg))
					}
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d message %d: %w", w, i, err)
					return
				}
			}
		}()
	}
	for n := 0; n < writers*each; n++ {
		op, got, err := read(c)
		if err != nil {
			t.Fatalf("after %d echoes: %v", n, err)
		}
		mu.Lock()
		ok := op == frame.OpText && want[string(got)] > 0
		want[string(got)]--
		mu.Unlock()
		if !ok {
			t.Fatalf("echo %d: %v of %d bytes that no writer sent", n, op, len(got))
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	closeAndCheck(t, c, frame.CloseNormal, "done")
}

// ---- the peer as the client of an ecows server ----

type peerClientScenario struct {
	name  string
	skip  func(exp expectations) string // "" to run
	check func(t *testing.T, r peerReport, res serverResult, exp expectations)
}

var peerClientScenarios = []peerClientScenario{
	{name: "echo", check: checkEcho},
	{name: "fragments", check: checkFragments},
	{name: "ping", check: checkPing},
	{name: "close-by-peer", check: checkCloseByPeer},
	{name: "close-by-ecows", check: checkCloseByEcows},
	{name: "close-by-ecows-frames", check: checkCloseAnswer},
	{name: "subprotocol", check: checkSubprotocol},
	{name: "invalid-utf8-from-peer", check: checkInvalidUTF8FromPeer, skip: func(exp expectations) string {
		if !exp.clientInvalidUTF8 {
			return "the client cannot send a text frame that is not UTF-8"
		}
		return ""
	}},
	{name: "invalid-utf8-from-ecows", check: checkInvalidUTF8FromEcows},
	{name: "too-big-for-ecows", check: checkTooBigForEcows},
	{name: "too-big-for-peer", check: checkTooBigForPeer, skip: func(exp expectations) string {
		if !exp.clientHasReadLimit {
			return "the client has no limit on what it receives"
		}
		return ""
	}},
	{name: "wss", check: checkWSS},
}

// binaryChecks names the checks of the echo scenario's binary messages.
func binaryChecks() []string {
	var names []string
	for _, n := range binarySizes {
		names = append(names, fmt.Sprintf("binary-%d", n))
	}
	return names
}

// wantPeerClose checks how the ecows side of the connection ended: with the peer's close frame
// carrying code and reason.
func wantPeerClose(t *testing.T, err error, code frame.CloseCode, reason string) {
	t.Helper()
	if gc, gr := closeCode(t, err); gc != code || gr != reason {
		t.Errorf("ecows server: connection ended with %d %q, want the peer's close %d %q", gc, gr, code, reason)
	}
}

// wantEcowsEcho checks the close a peer client got back after closing with code: ecows echoes
// the code and no reason.
func wantEcowsEcho(t *testing.T, r peerReport, code int) {
	t.Helper()
	e := r.closed(t)
	if e.Code != -1 && e.Code != code {
		t.Errorf("peer got back close %d %q (%s), want %d", e.Code, e.Reason, e.Detail, code)
	}
	if e.Reason != "" {
		t.Errorf("peer got back reason %q; ecows echoes the code only", e.Reason)
	}
}

func checkEcho(t *testing.T, r peerReport, res serverResult, exp expectations) {
	r.verify(t, append([]string{"text"}, binaryChecks()...)...)
	if got := strings.Contains(res.offer, "permessage-deflate"); got != exp.offersDeflate {
		t.Errorf("peer offered extensions %q; want an offer of permessage-deflate: %v", res.offer, exp.offersDeflate)
	}
	wantEcowsEcho(t, r, 1000)
	wantPeerClose(t, res.err, frame.CloseNormal, "done")
}

func checkFragments(t *testing.T, r peerReport, res serverResult, exp expectations) {
	want := []string{"recv-fragmented-text", "recv-fragmented-binary"}
	if exp.clientFragments {
		want = append(want, "echo-fragmented-text", "echo-fragmented-binary")
		checkFragmentsReceived(t, res.messages)
	} else if len(res.messages) != 0 {
		t.Errorf("ecows got %d messages from a peer that does not send fragments", len(res.messages))
	}
	r.verify(t, want...)
	if !slices.Contains(res.pongs, pingFromEcows) {
		t.Errorf("no pong with %q for the ping sent between fragments; pongs: %q", pingFromEcows, res.pongs)
	}
	wantPeerClose(t, res.err, frame.CloseNormal, "done")
}

func checkPing(t *testing.T, r peerReport, res serverResult, exp expectations) {
	want := []string{"pong-ok"}
	if exp.clientPings {
		want = append(want, "ping-echo")
	}
	r.verify(t, want...)
	if !slices.Equal(res.pongs, []string{pingFromEcows}) {
		t.Errorf("ecows server got pongs %q, want [%q]", res.pongs, pingFromEcows)
	}
	wantPeerClose(t, res.err, frame.CloseNormal, "done")
}

func checkCloseByPeer(t *testing.T, r peerReport, res serverResult, exp expectations) {
	r.verify(t)
	wantEcowsEcho(t, r, codeFromPeer)
	wantPeerClose(t, res.err, codeFromPeer, reasonFromPeer)
}

func checkCloseByEcows(t *testing.T, r peerReport, res serverResult, exp expectations) {
	r.verify(t)
	if e := r.closed(t); e.Code != codeFromEcows || e.Reason != reasonFromEcows {
		t.Errorf("peer got close %d %q, want %d %q", e.Code, e.Reason, codeFromEcows, reasonFromEcows)
	}
	if res.closeErr != nil {
		t.Errorf("ecows server: Close: %v", res.closeErr)
	}
	if res.closeDur > closeFastEnough {
		t.Errorf("ecows server: Close took %v", res.closeDur)
	}
}

func checkCloseAnswer(t *testing.T, r peerReport, res serverResult, exp expectations) {
	r.verify(t)
	if e := r.closed(t); e.Code != codeFromEcows || e.Reason != reasonFromEcows {
		t.Errorf("peer got close %d %q, want %d %q", e.Code, e.Reason, codeFromEcows, reasonFromEcows)
	}
	if res.echo == nil {
		t.Fatalf("ecows server got no answer to its close: %v", res.err)
	}
	wantReason := ""
	if exp.echoesReason {
		wantReason = reasonFromEcows
	}
	if res.echo.CloseCode() != codeFromEcows || res.echo.CloseReason() != wantReason {
		t.Errorf("peer answered close %d %q, want %d %q", res.echo.CloseCode(), res.echo.CloseReason(), codeFromEcows, wantReason)
	}
}

func checkSubprotocol(t *testing.T, r peerReport, res serverResult, exp expectations) {
	r.verify(t, "subprotocol")
	// ecows picks by its own order of preference, [v2 v1].
	if res.proto != proto2 {
		t.Errorf("ecows server agreed on %q, want %q", res.proto, proto2)
	}
	if e, ok := r.find("proto"); !ok || e.Proto != proto2 {
		t.Errorf("peer reports subprotocol %q, want %q", e.Proto, proto2)
	}
	wantPeerClose(t, res.err, frame.CloseNormal, "done")
}

func checkInvalidUTF8FromPeer(t *testing.T, r peerReport, res serverResult, exp expectations) {
	r.verify(t)
	if code := protocolCode(t, res.err); code != frame.CloseInvalidPayload {
		t.Errorf("ecows server failed with %d, want 1007", code)
	}
	if e := r.closed(t); e.Code != 1007 {
		t.Errorf("peer got close %d %q, want 1007", e.Code, e.Reason)
	}
}

func checkInvalidUTF8FromEcows(t *testing.T, r peerReport, res serverResult, exp expectations) {
	r.verify(t)
	if exp.utf8Code != 0 {
		code, reason := closeCode(t, res.err)
		if code != exp.utf8Code {
			t.Errorf("peer closed with %d %q, want %d", code, reason, exp.utf8Code)
		}
		t.Logf("peer closed with %d %q", code, reason)
		return
	}
	if e, ok := r.find("received"); !ok || e.Detail != fmt.Sprintf("%x", invalidUTF8) {
		t.Errorf("peer that does not check UTF-8 did not report the bytes: %v", r)
	}
	wantPeerClose(t, res.err, frame.CloseNormal, "done")
}

func checkTooBigForEcows(t *testing.T, r peerReport, res serverResult, exp expectations) {
	r.verify(t)
	if code := protocolCode(t, res.err); code != frame.CloseMessageTooBig {
		t.Errorf("ecows server failed with %d, want 1009", code)
	}
	if e := r.closed(t); e.Code != 1009 {
		t.Errorf("peer got close %d %q, want 1009", e.Code, e.Reason)
	}
}

func checkTooBigForPeer(t *testing.T, r peerReport, res serverResult, exp expectations) {
	r.verify(t)
	code, reason := closeCode(t, res.err)
	if code != exp.tooBigCode {
		t.Errorf("peer over its limit closed with %d %q, want %d", code, reason, exp.tooBigCode)
	}
	t.Logf("peer over its limit closed with %d %q", code, reason)
}

func checkWSS(t *testing.T, r peerReport, res serverResult, exp expectations) {
	r.verify(t, "text", "binary-65536")
	wantEcowsEcho(t, r, 1000)
	wantPeerClose(t, res.err, frame.CloseNormal, "done")
}
