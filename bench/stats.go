package bench

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"

	"github.com/ecows/ecows/bench/internal/load"
)

// StatsHandler serves the process's memory and goroutine counts as JSON (load.ServerStats),
// after a full collection that also returns freed memory to the OS, so that RSS tracks what
// is live. The idle-connection measurement reads it before and after opening connections.
func StatsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		debug.FreeOSMemory()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s := load.ServerStats{
			HeapInuse:  ms.HeapInuse,
			StackInuse: ms.StackInuse,
			Sys:        ms.Sys,
			RSS:        rss(),
			Goroutines: runtime.NumGoroutine(),
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s)
	})
}

// rss reads the resident set size from /proc/self/statm (Linux), or 0 elsewhere.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// Mux serves s's WebSocket endpoint at /ws, StatsHandler at /stats and, when s's library has
// them, its latency endpoints at load.WorkPath and load.PushPath.
func Mux(s Server) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/ws", s.Handler())
	mux.Handle("/stats", StatsHandler())
	if l, ok := LookupLatency(s.Lib); ok {
		mux.Handle(load.WorkPath, l.Work())
		mux.Handle(load.PushPath, l.Push())
	}
	return mux
}
