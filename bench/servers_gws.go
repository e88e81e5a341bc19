package bench

import (
	"net/http"

	"github.com/lxzan/gws"
)

// lxzan/gws, as its README's "Best Practice" shows it, without compression: an Upgrader with
// an event handler whose OnMessage writes the message back and releases it, and the read loop
// in a goroutine of its own so that the HTTP handler returns. ParallelEnabled stays off (it
// would reorder an echo).

type gwsEcho struct{ gws.BuiltinEventHandler }

func (gwsEcho) OnMessage(socket *gws.Conn, message *gws.Message) {
	defer message.Close()
	_ = socket.WriteMessage(message.Opcode, message.Bytes())
}

func init() {
	register(Server{Lib: "gws", Shape: "message", Doc: "event handler, OnMessage: WriteMessage(m.Opcode, m.Bytes())", Handler: gwsMessage})
	registerLatency(LatencyServer{Lib: "gws", Doc: "event handler: OnMessage replies with WriteMessage, then works; Push writes from a goroutine started in OnOpen",
		Work: func() http.Handler { return gwsHandler(gwsWork{}) }, Push: func() http.Handler { return gwsHandler(gwsPush{}) }})
}

// gwsWork and gwsPush are gws's latency handlers (see LatencyServer). gws calls OnMessage
// from its read loop, so work done there delays the next read, as the loop of the other
// libraries does; the per-connection state lives in the connection's session.
type gwsWork struct{ gws.BuiltinEventHandler }

func (gwsWork) OnOpen(socket *gws.Conn) { socket.Session().Store("lat", newWorkState()) }

func (gwsWork) OnMessage(socket *gws.Conn, message *gws.Message) {
	defer message.Close()
	v, _ := socket.Session().Load("lat")
	st := v.(*workState)
	err := st.handle(message.Bytes(), func(p []byte) error { return socket.WriteMessage(gws.OpcodeBinary, p) })
	if err != nil {
		socket.WriteClose(1002, nil)
	}
}

type gwsPush struct{ gws.BuiltinEventHandler }

func (gwsPush) OnOpen(socket *gws.Conn) {
	done := make(chan struct{})
	socket.Session().Store("lat", done)
	go pushLoop(done, func(p []byte) error { return socket.WriteMessage(gws.OpcodeBinary, p) })
}

func (gwsPush) OnClose(socket *gws.Conn, err error) {
	if v, ok := socket.Session().Load("lat"); ok {
		close(v.(chan struct{}))
	}
}

func (gwsPush) OnMessage(socket *gws.Conn, message *gws.Message) { message.Close() }

func gwsHandler(h gws.Event) http.Handler {
	upgrader := gws.NewUpgrader(h, &gws.ServerOption{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		socket, err := upgrader.Upgrade(w, r)
		if err != nil {
			return
		}
		go socket.ReadLoop()
	})
}

func gwsMessage() http.Handler {
	upgrader := gws.NewUpgrader(gwsEcho{}, &gws.ServerOption{
		ReadMaxPayloadSize:  MaxMessage,
		WriteMaxPayloadSize: MaxMessage,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		socket, err := upgrader.Upgrade(w, r)
		if err != nil {
			return
		}
		go socket.ReadLoop()
	})
}
