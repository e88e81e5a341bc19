package bench

import (
	"fmt"
	"net/http"
	"sort"
)

// MaxMessage is the message size limit every echo server is given: above the largest
// scenario (1 MiB), so that no library's default limit (ecows: 64 KiB frames, coder: 32 KiB
// messages) refuses a benchmark message, and the same for all of them.
const MaxMessage = 2 << 20

// Server is one echo server: a library used in one shape, as its documentation shows.
type Server struct {
	Lib   string // "ecows", "gorilla", "coder", "gobwas", "gws"
	Shape string // "message" (whole-message API) or "stream" (reader/writer API)
	Doc   string // what the handler calls, for reports
	// Handler upgrades a request and echoes every data message until the connection ends,
	// then closes it. It returns when the connection is closed, except where the library's
	// documentation has the read loop run in a goroutine of its own (gobwas, gws): there it
	// returns at once and the loop goes on.
	Handler func() http.Handler
}

// Name is "lib/shape".
func (s Server) Name() string { return s.Lib + "/" + s.Shape }

var registry []Server

func register(s Server) { registry = append(registry, s) }

// Libs lists the libraries in the order the reports use, ecows first.
var Libs = []string{"ecows", "gorilla", "coder", "gobwas", "gws"}

// Servers returns every echo server, ecows first, then the rivals in Libs order, message
// shape before stream.
func Servers() []Server {
	out := append([]Server(nil), registry...)
	rank := map[string]int{}
	for i, l := range Libs {
		rank[l] = i
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Lib != out[j].Lib {
			return rank[out[i].Lib] < rank[out[j].Lib]
		}
		return out[i].Shape < out[j].Shape // "message" < "stream"
	})
	return out
}

// Lookup returns the server for lib and shape.
func Lookup(lib, shape string) (Server, error) {
	for _, s := range registry {
		if s.Lib == lib && s.Shape == shape {
			return s, nil
		}
	}
	return Server{}, fmt.Errorf("bench: no echo server %s/%s", lib, shape)
}
