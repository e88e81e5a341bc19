package middleware

import (
	"context"
	"errors"
	"unicode/utf8"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// ConnHandler serves a whole connection, from its first unit to its end. Frames and Messages
// build one; the router mounts one per route.
type ConnHandler interface {
	ServeConn(ctx context.Context, c *transport.Conn) error
}

// Frames returns a ConnHandler that reads the connection frame by frame (RecvFrame) and
// passes every frame, control frames included, to h wrapped in mw. Pings are not answered
// unless a layer does it (AutoPong); a close frame has already been answered by the Conn when
// the handler sees it. A frame's payload is valid only until the handler returns: copy what
// you keep. Each layer must be a Middleware[frame.Frame] or an AnyMiddleware; Frames panics
// otherwise.
func Frames(h Handler[frame.Frame], mw ...Layer) ConnHandler {
	check[frame.Frame](mw)
	return framesHandler{h: h, mw: mw}
}

type framesHandler struct {
	h  Handler[frame.Frame]
	mw []Layer
}

func (fh framesHandler) ServeConn(ctx context.Context, c *transport.Conn) error {
	return serve(ctx, c, Chain(fh.h, fh.mw...), func() (frame.Frame, error) {
		return c.RecvFrame(0)
	})
}

// Messages returns a ConnHandler that reads whole messages (ReadMessage: fragments
// reassembled, pings answered by the Conn), decodes each with decode and passes it to h
// wrapped in mw. Text, Bytes and JSON are decoders, and so is any function of that shape;
// M comes from h, so Messages(JSON, HandlerFunc(fn)) needs no type argument. A decoding
// error closes the connection with the code it carries, or 1007. Decoded values may share
// the read buffer until the handler returns. Each layer must be a Middleware[M] or an
// AnyMiddleware; Messages panics otherwise.
func Messages[M any](decode func(op frame.Opcode, data []byte) (M, error), h Handler[M], mw ...Layer) ConnHandler {
	check[M](mw)
	return messagesHandler[M]{decode: decode, h: h, mw: mw}
}

type messagesHandler[M any] struct {
	decode func(op frame.Opcode, data []byte) (M, error)
	h      Handler[M]
	mw     []Layer
}

// maxKeptBuffer is the largest read buffer a Messages loop keeps from one message to the
// next: the transport's default read buffer size, so that messages that fit it are read with
// no allocation, while an idle connection holds at most that much. A larger message gets a
// buffer of its own, dropped once handled: allocating it costs little next to reading and
// decoding that many bytes, and keeping it would make the connection's largest message its
// cost for life.
const maxKeptBuffer = transport.DefaultReadBufferSize

func (mh messagesHandler[M]) ServeConn(ctx context.Context, c *transport.Conn) error {
	var buf []byte
	return serve(ctx, c, Chain(mh.h, mh.mw...), func() (M, error) {
		op, msg, err := c.ReadMessage(context.Background(), buf[:0])
		// The handler may still use msg (Bytes shares it); the next ReadMessage will not.
		if buf = msg; cap(buf) > maxKeptBuffer {
			buf = nil
		}
		if err != nil {
			var zero M
			return zero, err
		}
		m, err := mh.decode(op, msg)
		if err != nil {
			// Wrapped even when it carries a code (ErrUnsupportedData), so that serve closes
			// with that code instead of taking it for a read error the Conn has handled.
			err = &DecodeError{Err: err}
		}
		return m, err
	})
}

// DecodeError is a message the decoder could not decode. The connection closes with the code
// the decoder's error carries (1003 for ErrUnsupportedData), or 1007 Invalid Payload.
type DecodeError struct{ Err error }

// Error implements error.
func (e *DecodeError) Error() string { return "websocket: decoding message: " + e.Err.Error() }

// Unwrap returns the decoder's error.
func (e *DecodeError) Unwrap() error { return e.Err }

// serve runs one connection: Open hooks, the read loop, Closed hooks. Cancelling ctx sends
// 1001 Going Away and ends the loop once the peer answers (or CloseTimeout passes).
func serve[T any](ctx context.Context, c *transport.Conn, h Handler[T], next func() (T, error)) (err error) {
	stop := context.AfterFunc(ctx, func() { c.Close(frame.CloseGoingAway, "going away") })
	defer stop()
	lc := h.(*chain[T])
	var end closeStatus
	defer func() { lc.Closed(context.WithValue(ctx, closeKey{}, end), c, err) }()
	if err := lc.Open(ctx, c); err != nil {
		return closeFor(ctx, c, err, &end)
	}
	for {
		in, err := next()
		if err != nil {
			var de *DecodeError
			if errors.As(err, &de) {
				return closeFor(ctx, c, err, &end)
			}
			end = readStatus(ctx, err)
			return endError(ctx, err)
		}
		if err := h.Serve(ctx, c, in); err != nil {
			return closeFor(ctx, c, err, &end)
		}
	}
}

// closeStatus is the close code and reason a connection ended with. serve hands it to the
// Closed hooks in their context, because err is nil for every clean end, whatever its code.
type closeStatus struct {
	code   frame.CloseCode
	reason string
}

type closeKey struct{}

// endStatus returns the close code and reason of the connection whose Closed hooks got ctx
// and err. Outside serve it falls back on err alone.
func endStatus(ctx context.Context, err error) (frame.CloseCode, string) {
	if st, ok := ctx.Value(closeKey{}).(closeStatus); ok {
		return st.code, st.reason
	}
	if err == nil {
		return frame.CloseNormal, ""
	}
	return sentStatus(err)
}

// carried returns the close code and reason err carries, as a *transport.CloseError or a
// *frame.ProtocolError (which a DecodeError may wrap).
func carried(err error) (closeStatus, bool) {
	var ce *transport.CloseError
	if errors.As(err, &ce) {
		return closeStatus{ce.Code, ce.Reason}, true
	}
	var pe *frame.ProtocolError
	if errors.As(err, &pe) {
		return closeStatus{pe.Code, pe.Reason}, true
	}
	return closeStatus{}, false
}

// readStatus is the status of a connection whose reading ended with err.
func readStatus(ctx context.Context, err error) closeStatus {
	if st, ok := carried(err); ok {
		return st
	}
	if errors.Is(err, transport.ErrClosed) && ctx.Err() != nil {
		return closeStatus{frame.CloseGoingAway, "going away"}
	}
	// The stream ended without a close handshake this loop took part in.
	return closeStatus{code: frame.CloseAbnormal}
}

// endError maps how reading ended to what ServeConn returns: nil for a completed close
// handshake or a cancellation we closed for, the error otherwise.
func endError(ctx context.Context, err error) error {
	var ce *transport.CloseError
	switch {
	case errors.As(err, &ce) && ce.Code != frame.CloseAbnormal:
		return nil
	case errors.Is(err, transport.ErrClosed) && ctx.Err() != nil:
		return nil
	}
	return err
}

// closeFor closes c for err, which a hook, a handler or the decoder returned, with the code err
// carries (see sentStatus), records the status in end, and returns what ServeConn returns. An
// error caused by the cancellation of ctx (a handler that honoured ctx) is the cancellation's
// 1001 Going Away and a clean end, as it is when the cancellation finds the loop reading.
func closeFor(ctx context.Context, c *transport.Conn, err error, end *closeStatus) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		*end = closeStatus{frame.CloseGoingAway, "going away"}
		c.Close(end.code, end.reason)
		return nil
	}
	end.code, end.reason = sentStatus(err)
	c.Close(end.code, end.reason)
	var ce *transport.CloseError
	if errors.As(err, &ce) && ce.Err == nil {
		return nil // the handler asked for this close
	}
	return err
}

// sentStatus returns the close code and reason for err: those of a *transport.CloseError or
// *frame.ProtocolError in it, 1007 for a DecodeError without one, and 1011 otherwise, as for a
// *transport.UsageError: a send the handler got wrong is no fault of the peer's.
func sentStatus(err error) (frame.CloseCode, string) {
	st, _ := carried(err)
	code, reason := st.code, st.reason
	var de *DecodeError
	if code == 0 && errors.As(err, &de) {
		code, reason = frame.CloseInvalidPayload, truncate(de.Error())
	}
	if !code.Valid() {
		code, reason = frame.CloseInternalError, "internal error"
	}
	return code, reason
}

// truncate cuts s to a valid close reason, at a rune boundary.
func truncate(s string) string {
	if len(s) <= frame.MaxCloseReason {
		return s
	}
	s = s[:frame.MaxCloseReason]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
