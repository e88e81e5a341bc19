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
