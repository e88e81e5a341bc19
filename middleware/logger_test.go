package middleware

import (
	"context"
	"errors"
	"testing"

	"github.com/rs/zerolog"
	zlog "github.com/rs/zerolog/log"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/wstest"
	"github.com/ecows/ecows/transport"
)

func infoCtx() context.Context {
	return WithConnInfo(context.Background(), ConnInfo{Route: "/echo", RequestID: "req-1"})
}

// checkConnFields checks the fields every Logger event carries.
func checkConnFields(t *testing.T, ev map[string]any, s *served) {
	t.Helper()
	want := map[string]any{
		"level": "info", "remote": s.server.RemoteAddr().String(), "route": "/echo",
		"subprotocol": "chat", "request_id": "req-1",
	}
	for k, v := range want {
		if ev[k] != v {
			t.Errorf("%s %s = %v, want %v", ev["message"], k, ev[k], v)
		}
	}
}

func TestLoggerOpenAndClose(t *testing.T) {
	wstest.CheckGoroutines(t)
	var buf logBuffer
	log := zerolog.New(&buf).Level(zerolog.InfoLevel)
	s := runCtx(t, infoCtx(), Frames(echo, Logger(&log)))
	s.send(true, frame.OpText, "hello")
	s.send(true, frame.OpBinary, "12345678")
	s.recvText()
	s.recvText()
	opens := buf.events(t, "websocket open")
	if len(opens) != 1 {
		t.Fatalf("%d open events", len(opens))
	}
	checkConnFields(t, opens[0], s)
	// The client reads the server's close frame itself (Close would discard it uncounted).
	s.client.SendClose(frame.CloseNormal, "done")
	if code, _ := s.expectClose(); code != frame.CloseNormal {
		t.Fatalf("close echo %d", code)
	}
	if err := s.result(); err != nil {
		t.Fatal(err)
	}
	closes := buf.events(t, "websocket close")
	if len(closes) != 1 {
		t.Fatalf("%d close events", len(closes))
	}
	ev := closes[0]
	checkConnFields(t, ev, s)
	// The server read what the client wrote and the other way round, close frames included.
	cs := s.client.Stats()
	want := map[string]float64{
		"frames_in": float64(cs.FramesOut), "bytes_in": float64(cs.BytesOut),
		"frames_out": float64(cs.FramesIn), "bytes_out": float64(cs.BytesIn), "close_code": 1000,
	}
	for k, v := range want {
		if ev[k] != v {
			t.Errorf("close %s = %v, want %v", k, ev[k], v)
		}
	}
	if cs.FramesOut != 3 || cs.FramesIn != 3 {
		t.Errorf("client stats %+v", cs)
	}
	if ev["close_reason"] != "done" || ev["error"] != nil {
		t.Errorf("close_reason %v, error %v", ev["close_reason"], ev["error"])
	}
	if d, ok := ev["duration"].(float64); !ok || d <= 0 {
		t.Errorf("duration %v", ev["duration"])
	}
	if n := len(buf.events(t, "websocket frame")); n != 0 {
		t.Errorf("%d frame events at info level", n)
	}
}

func TestLoggerDebugFrames(t *testing.T) {
	var buf logBuffer
	log := zerolog.New(&buf).Level(zerolog.DebugLevel)
	s := runCtx(t, infoCtx(), Frames(echo, Logger(&log)))
	s.send(false, frame.OpText, "hel")
	s.send(true, frame.OpContinuation, "lo")
	s.recvText()
	s.recvText()
	s.closeClient()
	evs := buf.events(t, "websocket frame")
	if len(evs) != 3 {
		t.Fatalf("%d frame events, want 3 (2 data and the close)", len(evs))
	}
	first, last := evs[0], evs[2]
	if first["level"] != "debug" || first["opcode"] != "text" || first["fin"] != false || first["length"] != 3.0 || first["route"] != "/echo" {
		t.Errorf("first frame event %v", first)
	}
	if last["opcode"] != "close" || last["fin"] != true {
		t.Errorf("last frame event %v", last)
	}
}

type note struct{ Text string }

func TestLoggerDebugMessages(t *testing.T) {
	var buf logBuffer
	log := zerolog.New(&buf).Level(zerolog.DebugLevel)
	nop := func(context.Context, *transport.Conn, note) error { return nil }
	s := run(t, Messages(JSON, HandlerFunc(nop), Logger(&log)))
	s.send(true, frame.OpText, `{"Text":"x"}`)
	s.closeClient()
	evs := buf.events(t, "websocket message")
	if len(evs) != 1 || evs[0]["type"] != "middleware.note" {
		t.Fatalf("message events %v", evs)
	}
	for _, tc := range []struct {
		h    ConnHandler
		want string
	}{
		{Messages(Text, echoText, Logger(&log)), "string"},
		{Messages(Bytes, HandlerFunc(func(context.Context, *transport.Conn, []byte) error { return nil }), Logger(&log)), "[]byte"},
	} {
		buf.Reset()
		s := run(t, tc.h)
		s.send(true, frame.OpText, "abcd")
		s.closeClient()
		evs := buf.events(t, "websocket message")
		if len(evs) != 1 || evs[0]["type"] != tc.want || evs[0]["length"] != 4.0 {
			t.Fatalf("message events %v", evs)
		}
	}
}

func TestLoggerAbnormalEnd(t *testing.T) {
	var buf logBuffer
	log := zerolog.New(&buf)
	fail := HandlerFunc(func(context.Context, *transport.Conn, frame.Frame) error { return errors.New("boom") })
	s := run(t, Frames(fail, Logger(&log)))
	s.send(true, frame.OpText, "x")
	s.expectClose()
	s.result()
	ev := buf.events(t, "websocket close")[0]
	if ev["close_code"] != 1011.0 || ev["close_reason"] != "internal error" || ev["error"] != "boom" {
		t.Fatalf("close event %v", ev)
	}

	buf.Reset()
	s = run(t, Frames(echo, Logger(&log)))
	s.client.CloseNow()
	s.result()
	ev = buf.events(t, "websocket close")[0]
	if ev["close_code"] != 1006.0 || ev["error"] == nil {
		t.Fatalf("close event %v", ev)
	}
}

func TestLoggerCloseCodes(t *testing.T) {
	var buf logBuffer
	log := zerolog.New(&buf)
	bye := HandlerFunc(func(context.Context, *transport.Conn, frame.Frame) error {
		return &transport.CloseError{Code: 4000, Reason: "bye"}
	})
	s := run(t, Frames(bye, Logger(&log)))
	s.send(true, frame.OpText, "x")
	s.expectClose()
	s.result()
	if ev := buf.events(t, "websocket close")[0]; ev["close_code"] != 4000.0 || ev["close_reason"] != "bye" || ev["error"] != nil {
		t.Fatalf("handler's close: %v", ev)
	}

	buf.Reset()
	s = run(t, Messages(Text, echoText, Logger(&log)))
	s.cancel()
	s.expectClose()
	s.result()
	if ev := buf.events(t, "websocket close")[0]; ev["close_code"] != 1001.0 || ev["error"] != nil {
		t.Fatalf("cancellation: %v", ev)
	}

	// Outside ServeConn, the code comes from err alone.
	buf.Reset()
	h := Chain(echo, Logger(&log))
	_, server := pair(t, transport.Setup{})
	h.(Opener).Open(context.Background(), server)
	h.(Closer).Closed(context.Background(), server, nil)
	h.(Closer).Closed(context.Background(), server, frame.ErrTooBig)
	evs := buf.events(t, "websocket close")
	if evs[0]["close_code"] != 1000.0 || evs[1]["close_code"] != 1009.0 {
		t.Fatalf("direct hooks: %v", evs)
	}
}

// A connection refused before the Logger opened gets no close event either.
func TestLoggerRefusedBeforeOpen(t *testing.T) {
	var buf logBuffer
	log := zerolog.New(&buf)
	rec := &recorder{}
	refuse := &frame.ProtocolError{Code: frame.ClosePolicyViolation, Reason: "no"}
	s := run(t, Frames(echo, hook("auth", rec, refuse), Logger(&log)))
	s.expectClose()
	s.result()
	if n := len(buf.events(t, "websocket open")) + len(buf.events(t, "websocket close")); n != 0 {
		t.Fatalf("%d events", n)
	}

	s = run(t, Frames(echo, Logger(&log), hook("auth", rec, refuse)))
	s.expectClose()
	s.result()
	if ev := buf.events(t, "websocket close"); len(ev) != 1 || ev[0]["close_code"] != 1008.0 || ev[0]["error"] == nil {
		t.Fatalf("close events %v", ev)
	}
}

func TestLoggerFromContext(t *testing.T) {
	var buf logBuffer
	log := zerolog.New(&buf)
	s := runCtx(t, log.WithContext(context.Background()), Frames(echo, Logger(nil)))
	s.closeClient()
	if len(buf.events(t, "websocket close")) != 1 {
		t.Fatal("nothing logged to the context's logger")
	}

	var global logBuffer
	saved := zlog.Logger
	zlog.Logger = zerolog.New(&global)
	defer func() { zlog.Logger = saved }()
	s = run(t, Frames(echo, Logger(nil)))
	s.closeClient()
	if len(global.events(t, "websocket close")) != 1 {
		t.Fatal("nothing logged to the global logger")
	}
}

// A disabled level costs nothing per unit.
func TestLoggerAllocs(t *testing.T) {
	log := zerolog.New(&logBuffer{}).Level(zerolog.InfoLevel)
	nop := HandlerFunc(func(context.Context, *transport.Conn, frame.Frame) error { return nil })
	h := wrap[frame.Frame](Logger(&log), nop)
	_, server := pair(t, transport.Setup{})
	h.(Opener).Open(context.Background(), server)
	f := frame.Frame{Header: frame.Header{Fin: true, Opcode: frame.OpText, Length: 1}, Payload: []byte("x")}
	if n := testing.AllocsPerRun(100, func() { h.Serve(context.Background(), server, f) }); n != 0 {
		t.Fatalf("%v allocations per frame", n)
	}
}
