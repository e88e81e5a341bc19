//go:build js && wasm

package handshake

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall/js"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// ErrBrowser is returned, wrapped with what was asked, for what a browser's WebSocket cannot
// do: custom request headers, an Origin, a TLS configuration, a proxy or a dialer of one's
// own, and permessage-deflate settings (Dial); sending a ping or a pong frame, or any frame
// with RSV bits (on the Conn: the write fails with it, and as every failed write does, ends
// the connection). The browser answers the server's pings itself, and negotiates and runs
// compression on its own.
var ErrBrowser = errors.New("websocket: not possible with a browser's WebSocket")

// ErrBrowserDial is returned by Dial when the browser's WebSocket closed before it opened:
// the server could not be reached or refused the handshake. The browser does not tell a page
// why (its console does), so no status is available.
var ErrBrowserDial = errors.New("websocket: the browser could not open the WebSocket")

// Dial opens a WebSocket connection with the browser's WebSocket API when the program runs
// as WebAssembly in a browser (GOOS=js GOARCH=wasm), and returns a *transport.Conn over it,
// with the message-level API (ReadMessage, NextReader, WriteMessage, NextWriter, Close) as
// elsewhere. The browser sends and receives whole messages: RecvFrame returns each message
// in frames of at most MaxPayloadLen bytes, fragments sent with SendFrame or NextWriter are
// joined before the browser sends them, and pings and pongs cannot be sent (ErrBrowser). A
// close code that a page may not send (only 1000 and 3000-4999 are allowed) goes out as
// 1000, with the reason. The response is made up from what the browser reports: status 101
// with the agreed subprotocol and extensions as headers.
func Dial(ctx context.Context, uri string, opts *DialOptions) (*transport.Conn, *http.Response, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	if err := browserOptions(opts); err != nil {
		return nil, nil, err
	}
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil, nil, fmt.Errorf("%w: %q", ErrURL, uri)
	}
	ctx, cancel := handshakeContext(ctx, opts.Timeout)
	defer cancel()
	b, err := openBrowser(ctx, uri, opts.Subprotocols)
	if err != nil {
		return nil, nil, err
	}
	protocol, extensions := b.ws.Get("protocol").String(), b.ws.Get("extensions").String()
	c := transport.NewConn(b, transport.Client, transport.Setup{Subprotocol: protocol, Extensions: extensions}, &opts.Options)
	b.maxPayload = c.MaxPayloadLen()
	go b.feed()
	resp := &http.Response{
		Status: "101 Switching Protocols", StatusCode: http.StatusSwitchingProtocols,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{},
		Request: &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}},
	}
	if protocol != "" {
		resp.Header.Set("Sec-WebSocket-Protocol", protocol)
	}
	if extensions != "" {
		resp.Header.Set("Sec-WebSocket-Extensions", extensions)
	}
	return c, resp, nil
}

// browserOptions refuses the options a browser cannot honour.
func browserOptions(opts *DialOptions) error {
	var what string
	switch {
	case len(opts.Header) > 0:
		what = "request headers (DialOptions.Header)"
	case opts.Origin != "":
		what = "an Origin of one's own"
	case opts.TLSConfig != nil || opts.InsecureSkipVerify:
		what = "TLS settings"
	case opts.Proxy != nil:
		what = "a proxy of one's own"
	case opts.NetDial != nil:
		what = "a dialer of one's own"
	case opts.Compression != nil:
		what = "compression settings (the browser negotiates compression itself)"
	case opts.HTTP2 != HTTP2Off:
		what = "an HTTP version of one's own (DialOptions.HTTP2)"
	default:
		return nil
	}
	return fmt.Errorf("%w: %w: %s", ErrDialOptions, ErrBrowser, what)
}

// browserMsg is an event of the browser's WebSocket, in order: a message, or its close.
type browserMsg struct {
	op     frame.Opcode // OpText, OpBinary, or OpClose for the close event
	data   []byte
	code   int // close event: the code, 1006 for an abnormal end
	reason string
}

// browserStream is the byte stream under a browser Conn. Its read side is one end of a
// net.Pipe (for deadlines and Close), into which feed writes each browser event as the frames
// a server would have sent; Write takes the Conn's frames apart and hands whole messages and
// the close to the browser.
type browserStream struct {
	net.Conn          // the Conn's end of the pipe
	peer     net.Conn // feed's end
	ws       js.Value
	funcs    []js.Func
	// maxPayload is the Conn's frame limit, at which feed fragments a message; set before
	// feed starts.
	maxPayload int64

	mu     sync.Mutex
	queue  []browserMsg
	wake   chan struct{} // signalled when queue grows
	opened chan struct{} // closed by the open event
	ended  chan struct{} // closed by the close event
	endMsg *browserMsg   // the close event, once it came

	// Write's state, guarded by wmu.
	wmu       sync.Mutex
	hdr       []byte       // bytes of a header not yet complete
	h         frame.Header // the frame being taken in
	inFrame   bool
	remaining int64
	maskPos   int
	payload   []byte       // the frame's unmasked payload so far
	msg       []byte       // the message being joined
	msgOp     frame.Opcode // its opcode, 0 when none
}

// openBrowser creates the browser's WebSocket and waits for it to open, fail or ctx to end.
func openBrowser(ctx context.Context, uri string, protocols []string) (b *browserStream, err error) {
	defer func() {
		// The constructor throws a SyntaxError for a bad URL or subprotocol.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrDialOptions, r)
		}
	}()
	a, p := net.Pipe()
	b = &browserStream{Conn: a, peer: p, wake: make(chan struct{}, 1), opened: make(chan struct{}), ended: make(chan struct{})}
	ps := make([]any, len(protocols))
	for i, s := range protocols {
		ps[i] = s
	}
	b.ws = js.Global().Get("WebSocket").New(uri, ps)
	b.ws.Set("binaryType", "arraybuffer")
	b.on("open", func(js.Value) { close(b.opened) })
	b.on("message", func(ev js.Value) {
		data := ev.Get("data")
		m := browserMsg{op: frame.OpText}
		if data.Type() == js.TypeString {
			m.data = []byte(data.String())
		} else {
			arr := js.Global().Get("Uint8Array").New(data)
			m.op, m.data = frame.OpBinary, make([]byte, arr.Length())
			js.CopyBytesToGo(m.data, arr)
		}
		b.push(m)
	})
	b.on("close", func(ev js.Value) {
		m := browserMsg{op: frame.OpClose, code: ev.Get("code").Int(), reason: ev.Get("reason").String()}
		b.mu.Lock()
		b.endMsg = &m
		b.mu.Unlock()
		close(b.ended)
		b.push(m)
		b.release()
	})
	select {
	case <-b.opened:
		return b, nil
	case <-b.ended:
		b.Close()
		return nil, fmt.Errorf("%w: %s (close code %d)", ErrBrowserDial, uri, b.endMsg.code)
	case <-ctx.Done():
		b.ws.Call("close")
		b.Close()
		return nil, fmt.Errorf("websocket: handshake: %w", ctx.Err())
	}
}

// on adds a listener for the WebSocket's event name.
func (b *browserStream) on(name string, f func(ev js.Value)) {
	fn := js.FuncOf(func(_ js.Value, args []js.Value) any {
		f(args[0])
		return nil
	})
	b.funcs = append(b.funcs, fn)
	b.ws.Call("addEventListener", name, fn)
}

// release frees the listeners once the WebSocket has closed.
func (b *browserStream) release() {
	for _, fn := range b.funcs {
		fn.Release()
	}
}

func (b *browserStream) push(m browserMsg) {
	b.mu.Lock()
	b.queue = append(b.queue, m)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// feed writes each browser event into the pipe as a server's frames: a message in frames of
// at most maxPayload bytes, the close event as a close frame (none for 1006, which the Conn
// sees as the stream's end). It ends at the close event or when the Conn closes the pipe.
func (b *browserStream) feed() {
	defer b.peer.Close()
	var buf []byte
	for {
		b.mu.Lock()
		q := b.queue
		b.queue = nil
		b.mu.Unlock()
		for _, m := range q {
			buf = buf[:0]
			if m.op == frame.OpClose {
				if m.code != int(frame.CloseAbnormal) {
					var p []byte
					if m.code != int(frame.CloseNoStatus) {
						p, _ = frame.AppendClose(nil, frame.CloseCode(m.code), m.reason)
					}
					buf = frame.AppendFrame(buf, frame.Header{Fin: true, Opcode: frame.OpClose}, p)
					b.peer.Write(buf)
				}
				return
			}
			op, p := m.op, m.data
			for first := true; first || len(p) > 0; first = false {
				chunk := p
				if b.maxPayload >= 0 && int64(len(chunk)) > b.maxPayload {
					chunk = chunk[:b.maxPayload]
				}
				p = p[len(chunk):]
				buf = frame.AppendFrame(buf, frame.Header{Fin: len(p) == 0, Opcode: op}, chunk)
				op = frame.OpContinuation
			}
			if _, err := b.peer.Write(buf); err != nil {
				return
			}
		}
		<-b.wake
	}
}

// Write takes the Conn's frames apart and hands the browser each message once its last
// fragment is in, and the close frame. It returns ErrBrowser for a ping, a pong or a frame
// with RSV bits, after the bytes of the frames before it.
func (b *browserStream) Write(p []byte) (int, error) {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	n := 0
	for len(p) > 0 {
		if !b.inFrame {
			h, need, err := frame.DecodeHeader(b.hdr)
			for err == frame.ErrShortHeader && len(p) > 0 {
				k := min(need-len(b.hdr), len(p))
				b.hdr = append(b.hdr, p[:k]...)
				p, n = p[k:], n+k
				h, need, err = frame.DecodeHeader(b.hdr)
			}
			if err == frame.ErrShortHeader {
				return n, nil // the rest of the header comes with the next Write
			}
			if err != nil {
				return n, err
			}
			if h.Opcode == frame.OpPing || h.Opcode == frame.OpPong || h.Rsv1 || h.Rsv2 || h.Rsv3 {
				// Nothing of this frame goes out; the bytes of its header are not counted.
				n -= len(b.hdr)
				b.hdr = b.hdr[:0]
				return max(n, 0), fmt.Errorf("%w: sending a %s frame", ErrBrowser, h.Opcode)
			}
			b.hdr = b.hdr[:0]
			b.h, b.inFrame, b.remaining, b.maskPos, b.payload = h, true, h.Length, 0, b.payload[:0]
			if h.Length == 0 {
				b.inFrame = false
				if err := b.frameDone(); err != nil {
					return n, err
				}
				continue
			}
			if len(p) == 0 {
				return n, nil
			}
		}
		k := int(min(b.remaining, int64(len(p))))
		start := len(b.payload)
		b.payload = append(b.payload, p[:k]...)
		if b.h.Masked {
			b.maskPos = frame.Mask(b.h.Key, b.maskPos, b.payload[start:])
		}
		p, n, b.remaining = p[k:], n+k, b.remaining-int64(k)
		if b.remaining == 0 {
			b.inFrame = false
			if err := b.frameDone(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// frameDone acts on the frame Write has taken in whole.
func (b *browserStream) frameDone() error {
	switch b.h.Opcode {
	case frame.OpClose:
		code, reason, err := frame.ParseClose(b.payload)
		if err != nil {
			return err
		}
		if code != frame.CloseNormal && (code < 3000 || code > 4999) {
			code = frame.CloseNormal
		}
		return b.call("close", int(code), reason)
	case frame.OpText, frame.OpBinary:
		b.msgOp, b.msg = b.h.Opcode, append(b.msg[:0], b.payload...)
	case frame.OpContinuation:
		b.msg = append(b.msg, b.payload...)
	}
	if !b.h.Fin {
		return nil
	}
	var err error
	if b.msgOp == frame.OpText {
		err = b.call("send", string(b.msg))
	} else {
		arr := js.Global().Get("Uint8Array").New(len(b.msg))
		js.CopyBytesToJS(arr, b.msg)
		err = b.call("send", arr)
	}
	b.msgOp = 0
	if cap(b.msg) > 1<<16 {
		b.msg = nil
	}
	return err
}

// call calls the WebSocket's method, turning a JavaScript exception into an error.
func (b *browserStream) call(method string, args ...any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("websocket: browser %s: %v", method, r)
		}
	}()
	select {
	case <-b.ended:
		return nil // the browser's side has closed: nothing more can go out
	default:
	}
	b.ws.Call(method, args...)
	return nil
}

// Close closes the pipe and the browser's WebSocket, if still open.
func (b *browserStream) Close() error {
	err := b.Conn.Close()
	b.peer.Close()
	select {
	case <-b.ended:
	default:
		b.call("close")
	}
	return err
}
