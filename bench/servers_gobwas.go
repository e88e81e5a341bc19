package bench

import (
	"bufio"
	"io"
	"net"
	"net/http"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// gobwas/ws, in the two shapes its README shows:
//
//   - message: the high-level example, ws.UpgradeHTTP and a goroutine that loops over
//     wsutil.ReadClientData(conn) and wsutil.WriteServerMessage(conn, op, msg), with
//     wsutil.SetMaxMessageSize as the README's "Limits" section asks.
//   - stream: the low-level example (ws.ReadHeader, ws.Cipher, ws.WriteHeader, the payload
//     written after its header), with the buffer reuse the README says this API is for: it
//     reads and writes through the bufio.ReadWriter that ws.UpgradeHTTP hands back (net/http's
//     own 4 KiB buffers), and streams the payload through a reused 4 KiB chunk, so a message of
//     any size costs no allocation. Control frames are answered as RFC 6455 asks.

func init() {
	wsutil.SetMaxMessageSize(MaxMessage)
	register(Server{Lib: "gobwas", Shape: "message", Doc: "wsutil.ReadClientData + wsutil.WriteServerMessage", Handler: gobwasMessage})
	register(Server{Lib: "gobwas", Shape: "stream", Doc: "ws.ReadHeader + ws.Cipher + ws.WriteHeader over bufio", Handler: gobwasStream})
	registerLatency(LatencyServer{Lib: "gobwas", Doc: "wsutil.ReadClientData + wsutil.WriteServerMessage", Work: gobwasWork, Push: gobwasPush})
}

// gobwasWork and gobwasPush are gobwas's latency handlers (see LatencyServer), in the
// README's high-level shape. In Push the reader's control-frame answers could interleave with
// the pushes on the net.Conn; the latency client sends no control frames.
func gobwasWork() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			st := newWorkState()
			write := func(p []byte) error { return wsutil.WriteServerMessage(conn, ws.OpBinary, p) }
			for {
				msg, _, err := wsutil.ReadClientData(conn)
				if err != nil || st.handle(msg, write) != nil {
					return
				}
			}
		}()
	})
}

func gobwasPush() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				if _, _, err := wsutil.ReadClientData(conn); err != nil {
					return
				}
			}
		}()
		go func() {
			defer conn.Close()
			pushLoop(done, func(p []byte) error { return wsutil.WriteServerMessage(conn, ws.OpBinary, p) })
		}()
	})
}

func gobwasMessage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			for {
				msg, op, err := wsutil.ReadClientData(conn)
				if err != nil {
					return
				}
				if err := wsutil.WriteServerMessage(conn, op, msg); err != nil {
					return
				}
			}
		}()
	})
}

func gobwasStream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		go gobwasStreamLoop(conn, rw)
	})
}

func gobwasStreamLoop(conn net.Conn, rw *bufio.ReadWriter) {
	defer conn.Close()
	br, bw := rw.Reader, rw.Writer
	var chunk []byte
	var ctrl [125]byte
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			return
		}
		if !h.Masked || h.Length > MaxMessage {
			ws.WriteFrame(bw, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusProtocolError, "")))
			bw.Flush()
			return
		}
		if h.OpCode.IsControl() {
			p := ctrl[:h.Length]
			if _, err := io.ReadFull(br, p); err != nil {
				return
			}
			ws.Cipher(p, h.Mask, 0)
			switch h.OpCode {
			case ws.OpPing:
				err = ws.WriteFrame(bw, ws.NewPongFrame(p))
			case ws.OpClose:
				ws.WriteFrame(bw, ws.NewCloseFrame(p))
				bw.Flush()
				return
			}
			if err == nil {
				err = bw.Flush()
			}
			if err != nil {
				return
			}
			continue
		}
		mask := h.Mask
		h.Masked = false
		if err := ws.WriteHeader(bw, h); err != nil {
			return
		}
		if chunk == nil {
			chunk = make([]byte, 4096)
		}
		for off := int64(0); off < h.Length; {
			p := chunk[:min(int64(len(chunk)), h.Length-off)]
			if _, err := io.ReadFull(br, p); err != nil {
				return
			}
			ws.Cipher(p, mask, int(off))
			if _, err := bw.Write(p); err != nil {
				return
			}
			off += int64(len(p))
		}
		if err := bw.Flush(); err != nil {
			return
		}
	}
}
