package middleware

import (
	"context"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// errMessageTooBig is MaxPayload's error for a message whose fragments add up over the cap.
var errMessageTooBig = &frame.ProtocolError{Code: frame.CloseMessageTooBig, Reason: "message over the size limit"}

// MaxPayload caps data at the frame layer, below the Conn's own limits, for routes that take
// less: a data frame whose payload is over perFrame bytes, or a message whose fragments add up
// to more than perMessage, closes the connection with 1009 Message Too Big, and ServeConn
// returns a *frame.ProtocolError (frame.ErrTooBig for a frame). Zero or a negative value
// means no cap of that kind. Control frames pass; the protocol caps them at 125 bytes.
//
// The Conn has already read a frame when the middleware sees it, so this is a policy, not a
// defence: the Conn's MaxPayloadLen and MaxMessageLen (transport.Options) refuse larger input
// before reading it, and stay the bound on memory.
func MaxPayload(perFrame, perMessage int64) Middleware[frame.Frame] {
	return func(next Handler[frame.Frame]) Handler[frame.Frame] {
		if perFrame <= 0 && perMessage <= 0 {
			return next
		}
		return &maxPayload{next: next, perFrame: perFrame, perMessage: perMessage}
	}
}

// maxPayload is MaxPayload's handler for one connection.
type maxPayload struct {
	next                 Handler[frame.Frame]
	perFrame, perMessage int64
	size                 int64 // of the message in progress, so far
}

func (m *maxPayload) Serve(ctx context.Context, c *transport.Conn, f frame.Frame) error {
	if f.Opcode.IsData() {
		n := int64(len(f.Payload))
		if m.perFrame > 0 && n > m.perFrame {
			return frame.ErrTooBig
		}
		if f.Opcode != frame.OpContinuation {
			m.size = 0
		}
		m.size += n
		if m.perMessage > 0 && m.size > m.perMessage {
			return errMessageTooBig
		}
	}
	return m.next.Serve(ctx, c, f)
}
