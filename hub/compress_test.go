package hub_test

import (
	"bytes"
	"fmt"
	"net"
	"testing"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// TestBroadcastCompressed broadcasts to members whose connections agreed on permessage-deflate,
// with and without context takeover, beside one without compression: each compressed member
// gets the message compressed (RSV1 on the wire, read back whole by its client), the other
// gets it plain, and members with context takeover keep their windows in step, so the message
// after the broadcast, sent to them alone, still inflates.
func TestBroadcastCompressed(t *testing.T) {
	h := newHub(t, nil)
	msg := bytes.Repeat([]byte(`{"user":"ana","text":"hello, room"},`), 40)
	agreements := []transport.DeflateParams{
		{Enabled: true, NoContextTakeover: true, PeerNoContextTakeover: true},
		{Enabled: true},
		{Enabled: true, MaxWindowBits: 10, PeerMaxWindowBits: 10},
		{},
	}
	type member struct {
		client, server *transport.Conn
		wire           *wireTap
	}
	var members []member
	for _, d := range agreements {
		a, b := net.Pipe()
		tap := &wireTap{Conn: a}
		m := member{
			client: transport.NewConn(tap, transport.Client, transport.Setup{Deflate: d}, nil),
			server: transport.NewConn(b, transport.Server, transport.Setup{Deflate: d}, nil),
			wire:   tap,
		}
		t.Cleanup(func() { m.client.CloseNow(); m.server.CloseNow() })
		h.Join(m.server, "room")
		members = append(members, m)
	}
	for round := range 3 {
		go h.Broadcast("room", frame.OpText, msg)
		for i, m := range members {
			m.wire.first = nil
			if got := recv(t, m.client); got != string(msg) {
				t.Fatalf("round %d, member %d: %d bytes", round, i, len(got))
			}
			if compressed := m.wire.first[0]&0x40 != 0; compressed != agreements[i].Enabled {
				t.Fatalf("round %d, member %d (%+v): compressed %v", round, i, agreements[i], compressed)
			}
		}
		for i, m := range members {
			own := fmt.Appendf(nil, "%s and member %d", msg, i)
			go m.server.SendText(own)
			if got := recv(t, m.client); got != string(own) {
				t.Fatalf("round %d, member %d: its own message came back as %d bytes", round, i, len(got))
			}
		}
	}
}

// wireTap records the first bytes of what a client reads, to see the frame's RSV1 bit.
type wireTap struct {
	net.Conn
	first []byte
}

func (w *wireTap) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if w.first == nil && n > 0 {
		w.first = append([]byte(nil), p[:n]...)
	}
	return n, err
}
