package interop

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
)

// TestRawClientToEcowsServer sends frames that no library lets its user send, from a raw TCP
// connection, and checks the close code the ecows server answers with.
func TestRawClientToEcowsServer(t *testing.T) {
	es := startEcowsServer(t, nil)
	text := func(fin bool, p string) []byte { return rawFrame(fin, frame.OpText, []byte(p)) }
	cont := func(fin bool, p string) []byte { return rawFrame(fin, frame.OpContinuation, []byte(p)) }
	cases := []struct {
		name, path string
		frames     [][]byte
		want       frame.CloseCode
	}{
		{"invalid-utf8", "/invalid-utf8-from-peer", [][]byte{text(true, string(invalidUTF8))}, 1007},
		// The message never ends: ecows must fail it when the bad byte arrives.
		{"invalid-utf8-in-unfinished-message", "/invalid-utf8-from-peer", [][]byte{text(false, "ok \xff")}, 1007},
		// "€" is e2 82 ac: a sequence cut by a fragment boundary is fine, a wrong byte after it is not.
		{"invalid-utf8-across-fragments", "/invalid-utf8-from-peer", [][]byte{text(false, "price \xe2\x82"), cont(true, "\x28")}, 1007},
		{"truncated-utf8-at-message-end", "/invalid-utf8-from-peer", [][]byte{text(true, "price \xe2\x82")}, 1007},
		{"invalid-utf8-in-close-reason", "/invalid-utf8-from-peer", [][]byte{rawFrame(true, frame.OpClose, []byte("\x03\xe8bad \xff"))}, 1007},
		// Only the header of a 10 MiB frame: the limit is checked before any payload is read.
		{"oversize-header-only", "/too-big-for-ecows", [][]byte{rawHeader(frame.OpBinary, 10<<20)}, 1009},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc, br := rawDial(t, es.url, tc.path)
			for _, f := range tc.frames {
				if _, err := nc.Write(f); err != nil {
					t.Fatal(err)
				}
			}
			nc.SetReadDeadline(time.Now().Add(scenarioTimeout))
			f, err := frame.ReadFrame(br, frame.MaxControlPayload)
			if err != nil {
				t.Fatalf("reading the server's answer: %v", err)
			}
			if f.Opcode != frame.OpClose || f.CloseCode() != tc.want {
				t.Errorf("server answered %v %d %q, want close %d", f.Opcode, f.CloseCode(), f.CloseReason(), tc.want)
			}
			t.Logf("server answered close %d %q", f.CloseCode(), f.CloseReason())
			if tc.path == "/too-big-for-ecows" {
				// The server takes what follows as the announced 10 MiB payload: hang up.
				nc.Close()
			} else {
				// Answer the close, as a client should, and see the server end the connection.
				nc.Write(rawFrame(true, frame.OpClose, f.Payload[:2]))
			}
			res := es.await(t, tc.path)
			if code := protocolCode(t, res.err); code != tc.want {
				t.Errorf("ecows server returned code %d, want %d", code, tc.want)
			}
		})
	}
}

// rawFrame builds a masked client frame.
func rawFrame(fin bool, op frame.Opcode, p []byte) []byte {
	h := frame.Header{Fin: fin, Opcode: op, Masked: true}
	rand.Read(h.Key[:])
	return frame.AppendFrame(nil, h, p)
}

// rawHeader builds only the header of a masked client frame of length n.
func rawHeader(op frame.Opcode, n int64) []byte {
	h := frame.Header{Fin: true, Opcode: op, Masked: true, Length: n}
	rand.Read(h.Key[:])
	return frame.AppendHeader(nil, h)
}

// rawDial opens a TCP connection to the ecows server and does the opening handshake by hand.
func rawDial(t *testing.T, base, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	addr := strings.TrimPrefix(base, "ws://")
	nc, err := net.DialTimeout("tcp", addr, scenarioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	var key [16]byte
	rand.Read(key[:])
	fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr, base64.StdEncoding.EncodeToString(key[:]))
	nc.SetReadDeadline(time.Now().Add(scenarioTimeout))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake answered %s", resp.Status)
	}
	return nc, br
}
