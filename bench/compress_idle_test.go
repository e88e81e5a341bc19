//go:build unix

package bench

import (
	"bufio"
	"bytes"
	stdflate "compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	kpflate "github.com/klauspost/compress/flate"
	"github.com/lxzan/gws"

	"github.com/ecows/ecows/bench/internal/load"
	"github.com/ecows/ecows/frame"
)

// BenchmarkCompressedIdleConn (issue 20) reports, per agreement and per library, the heap
// (heapB/conn), goroutine stacks (stackB/conn) and goroutines (goroutines/conn) that each idle
// server connection holds once both of its windows are full: each of the raw clients below
// sends idleMessages compressed 1 KiB JSON documents (33 KiB, more than the largest window)
// and reads as many compressed echoes, so the server has inflated and compressed that much in
// each direction. The agreements (idleModes):
//
//   - no-takeover: the client offers both no_context_takeover parameters.
//   - takeover-w15: the client offers plain permessage-deflate; the server must keep context
//     in both directions with 2^15 windows.
//   - takeover-w10: the client offers server_max_window_bits=10 and client_max_window_bits=10;
//     the server must keep context in both directions and answer 10 for both.
//
// A server whose answer does not agree to the mode is not measured: the line
// "--- SKIP: NAME: REASON" quotes its answer (go test prints no reason for a skipped
// benchmark). Known ones: gorilla has no context takeover (it always answers both
// no_context_takeover parameters); coder declines an offer with server_max_window_bits below
// 15 (accept.go, acceptDeflate), having no way to shrink its window.
//
// The server runs in this process and the clients in a child process (the test binary again,
// as TestIdleClients), so that the heap measured is the server's alone and 10,000
// connections need 10,000 descriptors on each side, not 20,000 in one process (where the
// open-file limit cannot be raised past 20,000, as on a container without CAP_SYS_RESOURCE).
// ECOWS_BENCH_IDLECONNS (1,000) connections per library and mode whatever b.N is: run it
// with -benchtime=1x. A library whose connections cost megabytes stops early, once the heap
// passes ECOWS_BENCH_IDLEHEAP MiB (2,048), and all stop at what the open-file limit allows
// (raised as far as it goes): conns reports how many were measured. Skipped under -short.
func BenchmarkCompressedIdleConn(b *testing.B) {
	if testing.Short() {
		b.Skip("opens thousands of connections: not under -short")
	}
	n := min(idleConns, int(min(raiseFileLimit(), 1<<30))-idleWarm-200)
	if n < 1 {
		b.Fatal("open-file limit too low")
	}
	budget := uint64(envInt("idleheap", 2048)) << 20
	for _, mode := range idleModes {
		b.Run(mode.name, func(b *testing.B) {
			for _, lib := range idleServers {
				b.Run(lib.name, func(b *testing.B) {
					var heap, stack, gor, conns float64
					rounds := 0
					for b.Loop() {
						r, skip, err := idleRun(lib.server(mode), mode, n, budget)
						if err != nil {
							b.Fatal(err)
						}
						if skip != "" {
							fmt.Printf("--- SKIP: %s: %s\n", b.Name(), skip)
							b.SkipNow()
						}
						heap += r.heap
						stack += r.stack
						gor += r.goroutines
						conns += float64(r.conns)
						rounds++
					}
					b.ReportMetric(heap/float64(rounds), "heapB/conn")
					b.ReportMetric(stack/float64(rounds), "stackB/conn")
					b.ReportMetric(gor/float64(rounds), "goroutines/conn")
					b.ReportMetric(conns/float64(rounds), "conns")
				})
			}
		})
	}
}

var idleConns = envInt("idleconns", 1000)

// envInt reads an int from the environment variable ECOWS_BENCH_<NAME> (testing's flags cannot
// be extended from a package without a TestMain), or returns def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv("ECOWS_BENCH_" + strings.ToUpper(name))); err == nil && v > 0 {
		return v
	}
	return def
}

// idleMessages is how many distinct 1 KiB messages each idle connection sends and gets back:
// 33 KiB, so that a 2^15 window is full in each direction.
const idleMessages = 33

// idleMode is one permessage-deflate agreement.
type idleMode struct {
	name     string
	offer    string // the raw client's Sec-WebSocket-Extensions
	takeover bool
	bits     int // LZ77 window bits, both directions
}

var idleModes = []idleMode{
	{name: "no-takeover", offer: "permessage-deflate; server_no_context_takeover; client_no_context_takeover", bits: 15},
	{name: "takeover-w15", offer: "permessage-deflate", takeover: true, bits: 15},
	{name: "takeover-w10", offer: "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10", takeover: true, bits: 10},
}

// agreed returns why the server's Sec-WebSocket-Extensions answer does not agree to the mode,
// or "" when it does.
func (m idleMode) agreed(answer string) string {
	p, ok := deflateAnswer(answer)
	if !ok {
		return fmt.Sprintf("permessage-deflate declined (answer %q)", answer)
	}
	_, serverNo := p["server_no_context_takeover"]
	_, clientNo := p["client_no_context_takeover"]
	if !m.takeover {
		if !serverNo {
			return fmt.Sprintf("server_no_context_takeover offered but not answered (answer %q)", answer)
		}
		return ""
	}
	if serverNo || clientNo {
		return fmt.Sprintf("no context takeover (answer %q)", answer)
	}
	for _, k := range []string{"server_max_window_bits", "client_max_window_bits"} {
		v, ok := p[k]
		if !ok && m.bits == 15 {
			continue
		}
		if v != strconv.Itoa(m.bits) {
			return fmt.Sprintf("%s=%d offered, not agreed (answer %q)", k, m.bits, answer)
		}
	}
	return ""
}

// deflateAnswer returns the parameters of the permessage-deflate element of a
// Sec-WebSocket-Extensions value, by lower-case name with unquoted values; ok is false
// without such an element.
func deflateAnswer(h string) (params map[string]string, ok bool) {
	for ext := range strings.SplitSeq(h, ",") {
		parts := strings.Split(ext, ";")
		if !strings.EqualFold(strings.TrimSpace(parts[0]), "permessage-deflate") {
			continue
		}
		params = map[string]string{}
		for _, p := range parts[1:] {
			k, v, _ := strings.Cut(p, "=")
			params[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(v), `"`)
		}
		return params, true
	}
	return nil, false
}

// frames returns the idleMessages masked, compressed text frames the client sends, each
// compressed on its own (allowed whatever the agreement: a compressor may always refer to
// less than it could) and never referring back more than 2^bits bytes: compress/flate's
// window is 2^15, klauspost's NewWriterWindow takes a smaller one.
func (m idleMode) frames() []byte {
	var wire []byte
	for _, msg := range jsonDocs(idleMessages) {
		var z bytes.Buffer
		var fw interface {
			io.Writer
			Flush() error
		}
		if m.bits == 15 {
			fw, _ = stdflate.NewWriter(&z, stdflate.BestSpeed)
		} else {
			fw, _ = kpflate.NewWriterWindow(&z, 1<<m.bits)
		}
		fw.Write(msg)
		fw.Flush()
		payload := bytes.TrimSuffix(z.Bytes(), []byte{0, 0, 0xff, 0xff})
		wire = load.AppendFrame(wire, 0x40|0x1, [4]byte{0x37, 0xfa, 0x21, 0x3d}, payload)
	}
	return wire
}

// idleServer is one library's compressed echo server (compress_test.go), configured for a
// mode. Only gws is told the window bits: ecows follows the client's offer, and gorilla and
// coder have no such setting.
type idleServer struct {
	name   string
	server func(idleMode) http.Handler
}

var idleServers = []idleServer{
	{"ecows", func(m idleMode) http.Handler { return ecowsCompressed(m.takeover)() }},
	{"gorilla", func(idleMode) http.Handler { return gorillaCompressed() }},
	{"coder", func(m idleMode) http.Handler {
		if m.takeover {
			return coderCompressed(coder.CompressionContextTakeover)()
		}
		return coderCompressed(coder.CompressionNoContextTakeover)()
	}},
	{"gws", func(m idleMode) http.Handler {
		return gwsCompressedWith(gws.PermessageDeflate{Enabled: true,
			ServerContextTakeover: m.takeover, ClientContextTakeover: m.takeover,
			ServerMaxWindowBits: m.bits, ClientMaxWindowBits: m.bits})()
	}},
}

// idleResult is the server's cost per connection in one run.
type idleResult struct {
	heap, stack, goroutines float64
	conns                   int
}

// idleWarm is how many connections each run opens and uses before it measures: one-off
// state is not charged to the connections measured, such as gws's pool of 32 compressors,
// each made at its first use, one per new connection in turn.
const idleWarm = 64

// idleRun opens up to n idle connections to a new server of h, after idleWarm that are not
// counted, and measures them. It stops opening connections once the heap passes budget bytes.
// skip says why the server's answer does not agree to the mode.
func idleRun(h http.Handler, mode idleMode, n int, budget uint64) (r idleResult, skip string, err error) {
	goroutines := runtime.NumGoroutine()
	srv := httptest.NewServer(h)
	defer srv.Close()
	clients, err := startIdleClients(srv.Listener.Addr().String(), mode)
	if err != nil {
		return r, "", err
	}
	defer clients.close()
	if skip, err := clients.open(idleWarm); skip != "" || err != nil {
		return r, skip, err
	}
	before := snapshot()
	heapNow := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	for r.conns < n {
		if metrics.Read(heapNow); heapNow[0].Value.Uint64() > budget {
			break
		}
		k := min(100, n-r.conns)
		if _, err := clients.open(k); err != nil {
			return r, "", err
		}
		r.conns += k
	}
	time.Sleep(200 * time.Millisecond) // let the server's goroutines park
	after := snapshot()
	if r.conns == 0 {
		return r, "", fmt.Errorf("heap over %d MiB before the first connection measured", budget>>20)
	}
	k := float64(r.conns)
	r.heap = (float64(after.heap) - float64(before.heap)) / k
	r.stack = (float64(after.stack) - float64(before.stack)) / k
	r.goroutines = float64(after.goroutines-before.goroutines) / k
	clients.close()
	srv.Close()
	// Wait for the server's goroutines to end before the next run.
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > goroutines && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	return r, "", nil
}

// idleClients is the child process that holds the clients of one idleRun.
type idleClients struct {
	cmds    *os.File // to the child: how many connections to open next
	replies *os.File // from the child: "ok", "skip REASON" or an error, per command
	lines   *bufio.Scanner
	child   *exec.Cmd
	done    bool
}

// Environment of the child process that runs the idle clients.
const (
	idleAddrEnv = "ECOWS_BENCH_IDLE_ADDR"
	idleModeEnv = "ECOWS_BENCH_IDLE_MODE"
)

func startIdleClients(addr string, mode idleMode) (*idleClients, error) {
	// fd 3 of the child: replies to us; fd 4: commands from us.
	replies, childReplies, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	childCmds, cmds, err := os.Pipe()
	if err != nil {
		replies.Close()
		childReplies.Close()
		return nil, err
	}
	c := &idleClients{cmds: cmds, replies: replies, lines: bufio.NewScanner(replies)}
	c.child = exec.Command(os.Args[0], "-test.run=^TestIdleClients$", "-test.count=1")
	c.child.Env = append(os.Environ(), idleAddrEnv+"="+addr, idleModeEnv+"="+mode.name)
	c.child.Stderr = os.Stderr // its stdout says PASS
	c.child.ExtraFiles = []*os.File{childReplies, childCmds}
	err = c.child.Start()
	childReplies.Close()
	childCmds.Close()
	if err != nil {
		cmds.Close()
		replies.Close()
		return nil, err
	}
	return c, nil
}

// open has the child open k more connections, each with its exchange (idleExchange); skip
// says why the server's answer does not agree to the mode.
func (c *idleClients) open(k int) (skip string, err error) {
	if _, err := fmt.Fprintln(c.cmds, k); err != nil {
		return "", err
	}
	if !c.lines.Scan() {
		return "", errors.New("idle clients: gone")
	}
	switch line := c.lines.Text(); {
	case line == "ok":
		return "", nil
	case strings.HasPrefix(line, "skip "):
		return strings.TrimPrefix(line, "skip "), nil
	default:
		return "", fmt.Errorf("idle clients: %s", line)
	}
}

// close ends the child, which closes its connections first.
func (c *idleClients) close() {
	if c.done {
		return
	}
	c.done = true
	c.cmds.Close()
	c.child.Wait()
	c.replies.Close()
}

// TestIdleClients is the client side of BenchmarkCompressedIdleConn, run in a child process:
// for each number k read from fd 4, it opens k more connections, each with its exchange, and
// replies on fd 3 "ok", "skip REASON" when the first connection's answer does not agree to
// the mode, or an error. It ends, closing the connections, when fd 4 closes. Run on its own,
// it skips.
func TestIdleClients(t *testing.T) {
	addr := os.Getenv(idleAddrEnv)
	if addr == "" {
		t.Skip("the client side of BenchmarkCompressedIdleConn")
	}
	i := slices.IndexFunc(idleModes, func(m idleMode) bool { return m.name == os.Getenv(idleModeEnv) })
	if i < 0 {
		t.Fatalf("mode %q", os.Getenv(idleModeEnv))
	}
	mode := idleModes[i]
	replies, cmds := os.NewFile(3, "replies"), os.NewFile(4, "commands")
	wire := mode.frames()
	br := bufio.NewReaderSize(nil, 4096)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			closeNow(c)
		}
	}()
	answer := ""
	// open opens one connection and returns "" or what to reply instead of "ok".
	open := func() string {
		c, a, err := dialDeflate(addr, mode.offer, br)
		if err != nil {
			return err.Error()
		}
		conns = append(conns, c)
		if len(conns) == 1 {
			if skip := mode.agreed(a); skip != "" {
				return "skip " + skip
			}
			answer = a
		}
		if a != answer {
			return fmt.Sprintf("connection %d: answer %q, the first one had %q", len(conns), a, answer)
		}
		if err := idleExchange(c, br, wire); err != nil {
			return fmt.Sprintf("connection %d: %v", len(conns), err)
		}
		return ""
	}
	sc := bufio.NewScanner(cmds)
	for sc.Scan() {
		k, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatal(err)
		}
		reply := "ok"
		for range k {
			if r := open(); r != "" {
				reply = strings.ReplaceAll(r, "\n", " ")
				break
			}
		}
		fmt.Fprintln(replies, reply)
	}
}

// closeNow closes c without TIME_WAIT: each run opens thousands of connections.
func closeNow(c net.Conn) {
	if t, ok := c.(*net.TCPConn); ok {
		t.SetLinger(0)
	}
	c.Close()
}

// dialDeflate opens a connection with a hand-written handshake offering offer and returns
// the server's Sec-WebSocket-Extensions answer. br is reused from one connection to the next.
func dialDeflate(addr, offer string, br *bufio.Reader) (net.Conn, string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Extensions: " + offer + "\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		closeNow(c)
		return nil, "", err
	}
	br.Reset(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		closeNow(c)
		return nil, "", err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		closeNow(c)
		return nil, "", fmt.Errorf("handshake: %s", resp.Status)
	}
	return c, strings.Join(resp.Header.Values("Sec-WebSocket-Extensions"), ", "), nil
}

// idleExchange sends the frames of wire one at a time, each after the echo of the one before
// (a burst would leave some servers with larger read buffers than a connection's usual
// traffic does), and checks that each echo is a compressed text message in one frame.
func idleExchange(c net.Conn, br *bufio.Reader, wire []byte) error {
	for i := 0; len(wire) > 0; i++ {
		f, hl, err := frame.DecodeHeader(wire)
		if err != nil {
			return err
		}
		n := hl + int(f.Length)
		if _, err := c.Write(wire[:n]); err != nil {
			return err
		}
		wire = wire[n:]
		var h [10]byte
		if _, err := io.ReadFull(br, h[:2]); err != nil {
			return err
		}
		if h[0] != 0xc1 { // FIN, RSV1 (compressed), text
			return fmt.Errorf("echo %d's first byte %#x, want 0xc1 (a compressed text message)", i, h[0])
		}
		size := int64(h[1] & 0x7f)
		switch size {
		case 126:
			if _, err := io.ReadFull(br, h[2:4]); err != nil {
				return err
			}
			size = int64(binary.BigEndian.Uint16(h[2:4]))
		case 127:
			if _, err := io.ReadFull(br, h[2:10]); err != nil {
				return err
			}
			size = int64(binary.BigEndian.Uint64(h[2:10]))
		}
		if _, err := io.CopyN(io.Discard, br, size); err != nil {
			return err
		}
		if br.Buffered() > 0 {
			return fmt.Errorf("%d bytes after echo %d", br.Buffered(), i)
		}
	}
	return nil
}

// TestIdleModeAgreed checks the idle benchmark's reading of servers' answers, among them
// the ones its libraries give.
func TestIdleModeAgreed(t *testing.T) {
	noTakeover, w15, w10 := idleModes[0], idleModes[1], idleModes[2]
	for _, tc := range []struct {
		mode   idleMode
		answer string
		agreed bool
	}{
		{noTakeover, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", true},
		{noTakeover, "permessage-deflate; server_no_context_takeover", true},
		{noTakeover, "permessage-deflate; client_no_context_takeover", false},
		{noTakeover, "", false},
		{w15, "permessage-deflate", true},
		{w15, "x-webkit-deflate-frame, PERMESSAGE-DEFLATE; server_max_window_bits=15", true},
		{w15, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12", false},   // gws's default with takeover
		{w15, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", false}, // gorilla
		{w15, "permessage-deflate; client_no_context_takeover", false},
		{w10, `permessage-deflate; server_max_window_bits=10; client_max_window_bits="10"`, true},
		{w10, "permessage-deflate; server_no_context_takeover; server_max_window_bits=10", false}, // ecows before issue 20
		{w10, "permessage-deflate; server_max_window_bits=10", false},
		{w10, "permessage-deflate", false},
		{w10, "", false}, // coder declines
	} {
		if got := tc.mode.agreed(tc.answer); (got == "") != tc.agreed {
			t.Errorf("%s, answer %q: %q, want agreed %v", tc.mode.name, tc.answer, got, tc.agreed)
		}
	}
}

// TestIdleFrames checks that each mode's frames carry the messages: idleMessages masked,
// compressed text frames, each inflating on its own to the next JSON document.
func TestIdleFrames(t *testing.T) {
	docs := jsonDocs(idleMessages)
	for _, m := range idleModes {
		r := bytes.NewReader(m.frames())
		for i, doc := range docs {
			f, err := frame.ReadFrame(r, -1)
			if err != nil {
				t.Fatalf("%s: frame %d: %v", m.name, i, err)
			}
			if !f.Fin || !f.Rsv1 || !f.Masked || f.Opcode != frame.OpText {
				t.Fatalf("%s: frame %d: header %+v, want a final, masked, compressed text frame", m.name, i, f.Header)
			}
			got, err := io.ReadAll(stdflate.NewReader(io.MultiReader(bytes.NewReader(f.Payload), bytes.NewReader(deflateEnd))))
			if err != nil || !bytes.Equal(got, doc) {
				t.Fatalf("%s: frame %d inflates to %d bytes (%v), not the %d of document %d", m.name, i, len(got), err, len(doc), i)
			}
		}
		if r.Len() > 0 {
			t.Fatalf("%s: %d bytes after %d frames", m.name, r.Len(), idleMessages)
		}
	}
}

// deflateEnd ends a message's DEFLATE data for a decompressor used for that message only:
// the sync flush's empty stored block that RFC 7692 section 7.2.1 strips from the wire, then
// an empty final block, so that the decompressor ends with io.EOF.
var deflateEnd = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}
