package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"

	coder "github.com/coder/websocket"
	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/transport"
	gorilla "github.com/gorilla/websocket"
	"github.com/lxzan/gws"
)

// Compressed echo (issue 8): permessage-deflate on in every library, each configured as its
// documentation shows, at each library's default level (flate.BestSpeed everywhere) and default
// threshold (512 bytes without context takeover, 128 with, where the library has one; gorilla
// compresses every message):
//
//   - ecows, ecows-takeover: handshake.Upgrade / handshake.Dial with
//     Options.Compression = &transport.CompressionOptions{ContextTakeover: false / true}.
//   - gorilla: Upgrader / Dialer EnableCompression plus EnableWriteCompression(true) on each
//     Conn (gorilla has no context takeover).
//   - coder, coder-takeover: AcceptOptions / DialOptions CompressionMode
//     CompressionNoContextTakeover / CompressionContextTakeover, CompressionThreshold 512.
//   - gws, gws-takeover: ServerOption / ClientOption PermessageDeflate{Enabled: true,
//     ServerContextTakeover, ClientContextTakeover, ServerMaxWindowBits: 15,
//     ClientMaxWindowBits: 15} (without the window bits, gws takes 2^12 windows with takeover).
//
// BenchmarkCompressedEcho measures one round trip over loopback TCP, each library's client
// against its own server in this process: the client writes one compressed text message, the
// server reads and writes it back, the client reads it and checks it. ns/op, B/op and
// allocs/op therefore cover both ends (four compressions or inflations per op). The server's
// listener counts the bytes that cross the wire; wireB/msg is that count per message per
// direction (frame headers included), and a library that did not compress fails the run.
//
// BenchmarkCompressedIdleConn (compress_idle_test.go) measures the same servers' memory per idle
// connection in each agreement.

// compressLib is one library with compression on: its echo server and its client.
type compressLib struct {
	name   string
	server func() http.Handler
	dial   func(url string) (compressClient, error)
}

// compressClient sends one text message and returns the echo; the result is valid until the
// next call.
type compressClient interface {
	echo(msg []byte) ([]byte, error)
	close()
}

func compressLibs() []compressLib {
	return []compressLib{
		{name: "ecows", server: ecowsCompressed(false), dial: ecowsDial(false)},
		{name: "ecows-takeover", server: ecowsCompressed(true), dial: ecowsDial(true)},
		{name: "gorilla", server: gorillaCompressed, dial: gorillaDial},
		{name: "coder", server: coderCompressed(coder.CompressionNoContextTakeover), dial: coderDial(coder.CompressionNoContextTakeover)},
		{name: "coder-takeover", server: coderCompressed(coder.CompressionContextTakeover), dial: coderDial(coder.CompressionContextTakeover)},
		{name: "gws", server: gwsCompressed(false), dial: gwsDial(false)},
		{name: "gws-takeover", server: gwsCompressed(true), dial: gwsDial(true)},
	}
}

// --- ecows

func ecowsCompressionOptions(takeover bool) transport.Options {
	return transport.Options{
		MaxPayloadLen: MaxMessage,
		MaxMessageLen: MaxMessage,
		Compression:   &transport.CompressionOptions{ContextTakeover: takeover},
	}
}

func ecowsCompressed(takeover bool) func() http.Handler {
	return func() http.Handler {
		opts := &handshake.ServerOptions{Options: ecowsCompressionOptions(takeover)}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := handshake.Upgrade(w, r, opts)
			if err != nil {
				return
			}
			// On a goroutine of its own, so that the HTTP handler returns and net/http lets go
			// of the request, as README.md shows and the plain servers do (servers_ecows.go).
			go echoMessages(c)
		})
	}
}

type ecowsClient struct {
	c   *transport.Conn
	buf []byte
}

func ecowsDial(takeover bool) func(string) (compressClient, error) {
	return func(url string) (compressClient, error) {
		c, _, err := handshake.Dial(context.Background(), url, &handshake.DialOptions{Options: ecowsCompressionOptions(takeover)})
		if err != nil {
			return nil, err
		}
		if c.Extensions() == "" {
			c.CloseNow()
			return nil, fmt.Errorf("ecows: permessage-deflate not negotiated")
		}
		return &ecowsClient{c: c}, nil
	}
}

func (e *ecowsClient) echo(msg []byte) ([]byte, error) {
	if _, err := e.c.WriteMessage(context.Background(), frame.OpText, msg); err != nil {
		return nil, err
	}
	_, got, err := e.c.ReadMessage(context.Background(), e.buf[:0])
	e.buf = got
	return got, err
}

func (e *ecowsClient) close() { e.c.CloseNow() }

// --- gorilla

var gorillaCompressedUpgrader = gorilla.Upgrader{EnableCompression: true}

func gorillaCompressed() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := gorillaCompressedUpgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.EnableWriteCompression(true)
		c.SetReadLimit(MaxMessage)
		for {
			op, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(op, msg); err != nil {
				return
			}
		}
	})
}

type gorillaClient struct{ c *gorilla.Conn }

func gorillaDial(url string) (compressClient, error) {
	d := gorilla.Dialer{EnableCompression: true}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		c.Close()
		return nil, fmt.Errorf("gorilla: permessage-deflate not negotiated")
	}
	c.EnableWriteCompression(true)
	c.SetReadLimit(MaxMessage)
	return gorillaClient{c}, nil
}

func (g gorillaClient) echo(msg []byte) ([]byte, error) {
	if err := g.c.WriteMessage(gorilla.TextMessage, msg); err != nil {
		return nil, err
	}
	_, got, err := g.c.ReadMessage()
	return got, err
}

func (g gorillaClient) close() { g.c.Close() }

// --- coder

func coderCompressed(mode coder.CompressionMode) func() http.Handler {
	return func() http.Handler {
		opts := &coder.AcceptOptions{CompressionMode: mode, CompressionThreshold: 512}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := coder.Accept(w, r, opts)
			if err != nil {
				return
			}
			defer c.CloseNow()
			c.SetReadLimit(MaxMessage)
			ctx := context.Background()
			for {
				typ, msg, err := c.Read(ctx)
				if err != nil {
					return
				}
				if err := c.Write(ctx, typ, msg); err != nil {
					return
				}
			}
		})
	}
}

type coderClient struct{ c *coder.Conn }

func coderDial(mode coder.CompressionMode) func(string) (compressClient, error) {
	return func(url string) (compressClient, error) {
		c, resp, err := coder.Dial(context.Background(), url, &coder.DialOptions{CompressionMode: mode, CompressionThreshold: 512})
		if err != nil {
			return nil, err
		}
		if !strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
			c.CloseNow()
			return nil, fmt.Errorf("coder: permessage-deflate not negotiated")
		}
		c.SetReadLimit(MaxMessage)
		return coderClient{c}, nil
	}
}

func (c coderClient) echo(msg []byte) ([]byte, error) {
	ctx := context.Background()
	if err := c.c.Write(ctx, coder.MessageText, msg); err != nil {
		return nil, err
	}
	_, got, err := c.c.Read(ctx)
	return got, err
}

func (c coderClient) close() { c.c.CloseNow() }

// --- gws

// gwsDeflate asks for 2^15 windows with takeover as without: gws's default with takeover is
// 2^12, which would set a smaller window against the other libraries' 32 KiB.
func gwsDeflate(takeover bool) gws.PermessageDeflate {
	return gws.PermessageDeflate{Enabled: true, ServerContextTakeover: takeover, ClientContextTakeover: takeover,
		ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}
}

func gwsCompressed(takeover bool) func() http.Handler {
	return gwsCompressedWith(gwsDeflate(takeover))
}

func gwsCompressedWith(pd gws.PermessageDeflate) func() http.Handler {
	return func() http.Handler {
		upgrader := gws.NewUpgrader(gwsEcho{}, &gws.ServerOption{
			ReadMaxPayloadSize:  MaxMessage,
			WriteMaxPayloadSize: MaxMessage,
			PermessageDeflate:   pd,
		})
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			socket, err := upgrader.Upgrade(w, r)
			if err != nil {
				return
			}
			go socket.ReadLoop()
		})
	}
}

// gwsClientHandler hands each message to echo, which releases it at the next call.
type gwsClientHandler struct {
	gws.BuiltinEventHandler
	msgs   chan *gws.Message
	closed chan error
}

func (h *gwsClientHandler) OnMessage(_ *gws.Conn, m *gws.Message) { h.msgs <- m }
func (h *gwsClientHandler) OnClose(_ *gws.Conn, err error)        { h.closed <- err }

type gwsClient struct {
	c    *gws.Conn
	h    *gwsClientHandler
	last *gws.Message
}

func gwsDial(takeover bool) func(string) (compressClient, error) {
	return func(url string) (compressClient, error) {
		h := &gwsClientHandler{msgs: make(chan *gws.Message, 1), closed: make(chan error, 1)}
		c, resp, err := gws.NewClient(h, &gws.ClientOption{
			Addr:                url,
			ReadMaxPayloadSize:  MaxMessage,
			WriteMaxPayloadSize: MaxMessage,
			PermessageDeflate:   gwsDeflate(takeover),
		})
		if err != nil {
			return nil, err
		}
		if !strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
			c.NetConn().Close()
			return nil, fmt.Errorf("gws: permessage-deflate not negotiated")
		}
		go c.ReadLoop()
		return &gwsClient{c: c, h: h}, nil
	}
}

func (g *gwsClient) echo(msg []byte) ([]byte, error) {
	if g.last != nil {
		g.last.Close()
		g.last = nil
	}
	if err := g.c.WriteMessage(gws.OpcodeText, msg); err != nil {
		return nil, err
	}
	select {
	case m := <-g.h.msgs:
		g.last = m
		return m.Bytes(), nil
	case err := <-g.h.closed:
		return nil, fmt.Errorf("gws: connection closed: %v", err)
	}
}

func (g *gwsClient) close() { g.c.NetConn().Close() }

// --- payloads

// jsonDocs returns n distinct JSON documents of exactly 1 KiB: arrays of user records with
// the same keys and different values, as an API would send them.
func jsonDocs(n int) [][]byte {
	const size = 1024
	docs := make([][]byte, n)
	names := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar", "peggy", "trent", "victor", "walter"}
	roles := []string{"admin", "editor", "viewer", "owner"}
	for i := range docs {
		r := rand.New(rand.NewSource(int64(i) + 1))
		b := []byte{'['}
		for j := 0; ; j++ {
			name := names[r.Intn(len(names))]
			rec := fmt.Sprintf(`{"id":%d,"name":%q,"email":"%s%d@example.com","role":%q,"active":%t,"score":%.2f,"created_at":"2026-%02d-%02dT%02d:%02d:%02dZ"}`,
				100000+r.Intn(900000), name, name, r.Intn(1000), roles[r.Intn(len(roles))], r.Intn(2) == 1,
				r.Float64()*100, 1+r.Intn(12), 1+r.Intn(28), r.Intn(24), r.Intn(60), r.Intn(60))
			if len(b)+len(rec)+2 > size {
				break
			}
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, rec...)
		}
		b = append(b, ']')
		for len(b) < size { // whitespace after the value is still one JSON document
			b = append(b, ' ')
		}
		docs[i] = b
	}
	return docs
}

// textDocs returns n distinct 64 KiB texts of English-like prose: words drawn from a
// Zipf-distributed vocabulary, in sentences and paragraphs.
func textDocs(n int) [][]byte {
	const size = 64 << 10
	words := strings.Fields(`the of and to a in that is was he for it with as his on be at by I
		this had not are but from or have an they which one you were her all she there would their
		we him been has when who will more no if out so said what up its about into than them can
		only other new some could time these two may then do first any my now such like our over
		man me even most made after also did many before must through back years where much your
		way well down should because each just those people how too little state good very make
		world still own see men work long get here between both life being under never day same
		another know while last might us great old year off come since against go came right used
		take three states himself few house use during without again place American around however
		home small found thought went say part once general high upon school every don't does got
		united left number course war until always away something fact though water less public put
		think almost hand enough far took head yet government system better set told nothing night
		end why called didn't eyes find going look asked later knew point next program city business
		give group toward young days let room president side social given present several order
		national possible rather second face per among form important often things looked early
		white case John become large big need four within felt along children saw best church ever
		least power development light thing seemed family interest want members mind country area`)
	zipfs := make([][]byte, n)
	for i := range zipfs {
		r := rand.New(rand.NewSource(int64(i) + 1000))
		z := rand.NewZipf(r, 1.1, 2, uint64(len(words)-1))
		var b bytes.Buffer
		for b.Len() < size {
			sentence := 4 + r.Intn(16)
			for k := range sentence {
				w := words[z.Uint64()]
				if k == 0 {
					w = strings.ToUpper(w[:1]) + w[1:]
				} else {
					b.WriteByte(' ')
				}
				b.WriteString(w)
				if k < sentence-1 && r.Intn(9) == 0 {
					b.WriteByte(',')
				}
			}
			b.WriteString(".")
			if r.Intn(6) == 0 {
				b.WriteString("\n\n")
			} else {
				b.WriteByte(' ')
			}
		}
		zipfs[i] = b.Bytes()[:size]
	}
	return zipfs
}

// compressPayloads are the benchmark's messages: 64 JSON documents (64 KiB, twice the
// deflate window, so that with context takeover a message is never an exact repeat of one
// still in the window) and 4 texts, sent in turn.
var compressPayloads = []struct {
	name string
	docs func() [][]byte
}{
	{"json-1KiB", func() [][]byte { return jsonDocs(64) }},
	{"text-64KiB", func() [][]byte { return textDocs(4) }},
}

// --- wire counting

// countListener counts the bytes read and written on every connection it accepts.
type countListener struct {
	net.Listener
	in, out *atomic.Int64
}

func (l countListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countConn{Conn: c, in: l.in, out: l.out}, nil
}

type countConn struct {
	net.Conn
	in, out *atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

// Write counts before it writes: the peer may read the bytes, and the benchmark reset the
// counters, before Write returns.
func (c *countConn) Write(p []byte) (int, error) {
	c.out.Add(int64(len(p)))
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n - len(p)))
	return n, err
}

// BenchmarkCompressedEcho: see the comment at the top of this file.
func BenchmarkCompressedEcho(b *testing.B) {
	for _, p := range compressPayloads {
		docs := p.docs()
		for _, lib := range compressLibs() {
			b.Run(p.name+"/"+lib.name, func(b *testing.B) {
				var in, out atomic.Int64
				srv := httptest.NewUnstartedServer(lib.server())
				srv.Listener = countListener{Listener: srv.Listener, in: &in, out: &out}
				srv.Start()
				defer srv.Close()
				c, err := lib.dial("ws://" + srv.Listener.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				defer c.close()
				// One message to warm up (pools, buffers), then count from zero.
				if got, err := c.echo(docs[0]); err != nil || !bytes.Equal(got, docs[0]) {
					b.Fatalf("first echo: %v (%d bytes back of %d)", err, len(got), len(docs[0]))
				}
				in.Store(0)
				out.Store(0)
				b.SetBytes(int64(len(docs[0])))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					msg := docs[(i+1)%len(docs)]
					got, err := c.echo(msg)
					if err != nil {
						b.Fatal(err)
					}
					if !bytes.Equal(got, msg) {
						b.Fatalf("echo %d: %d bytes back, not the %d sent", i, len(got), len(msg))
					}
				}
				b.StopTimer()
				wire := float64(in.Load()+out.Load()) / float64(2*b.N)
				b.ReportMetric(wire, "wireB/msg")
				// Uncompressed, a message costs its length plus a header; English and JSON
				// deflate to well under 60% even with BestSpeed and no context.
				if wire > 0.6*float64(len(docs[0])) {
					b.Fatalf("%.0f wire bytes per %d-byte message: %s did not compress", wire, len(docs[0]), lib.name)
				}
			})
		}
	}
}

// TestCompressPayloads checks that the payloads are what they claim.
func TestCompressPayloads(t *testing.T) {
	for _, d := range jsonDocs(64) {
		if len(d) != 1024 || !json.Valid(d) {
			t.Fatalf("JSON document of %d bytes, valid %v: %s", len(d), json.Valid(d), d)
		}
	}
	for _, d := range textDocs(4) {
		if len(d) != 64<<10 {
			t.Fatalf("text of %d bytes", len(d))
		}
	}
}

// --- memory

type memSnapshot struct {
	heap, stack uint64
	goroutines  int
}

func snapshot() memSnapshot {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSnapshot{heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}
