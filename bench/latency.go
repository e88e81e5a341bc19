package bench

import (
	"errors"
	"net/http"
	"time"

	"github.com/ecows/ecows/bench/internal/load"
)

// LatencyServer is one library's pair of latency endpoints (see package internal/load for
// the scenarios and what the replies carry). Each library's handlers (servers_*.go) have the
// same shape, in that library's message API:
//
//   - Work: loop { read a request; write its reply; compute (busy) for the work time the
//     request asks for }, so that the reply is written and the handler then keeps its
//     goroutine on the CPU, as an application that answers first and then does its work.
//   - Push: a goroutine reads and discards what the client sends (any library needs a
//     reader for control frames), while the handler writes a stamped message every
//     load.PushInterval until the connection ends.
type LatencyServer struct {
	Lib  string
	Doc  string // what the handlers call, for reports
	Work func() http.Handler
	Push func() http.Handler
}

var latencyRegistry []LatencyServer

func registerLatency(s LatencyServer) { latencyRegistry = append(latencyRegistry, s) }

// LatencyServers returns every library's latency endpoints, in Libs order.
func LatencyServers() []LatencyServer {
	var out []LatencyServer
	for _, l := range Libs {
		if s, ok := LookupLatency(l); ok {
			out = append(out, s)
		}
	}
	return out
}

// LookupLatency returns lib's latency endpoints.
func LookupLatency(lib string) (LatencyServer, bool) {
	for _, s := range latencyRegistry {
		if s.Lib == lib {
			return s, true
		}
	}
	return LatencyServer{}, false
}

// maxPushes bounds a push handler's loop (about 17 minutes at one message per millisecond)
// should a connection never end.
const maxPushes = 1_000_000

var errBadRequest = errors.New("bench: malformed latency request")

func unixNano() int64 { return time.Now().UnixNano() }

// busy keeps the calling goroutine on the CPU for d: the work is computation (reading the
// clock, which the compiler cannot drop), not a sleep, so that the process is not idle while
// it lasts (an idle Go process's timers fire late) and the goroutine does not yield.
func busy(d time.Duration) {
	if d <= 0 {
		return
	}
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}

// workState is a Work handler's per-connection state: the time it became ready for the next
// request and the reply buffer.
type workState struct {
	ready int64
	reply []byte
}

func newWorkState() *workState {
	return &workState{ready: unixNano(), reply: make([]byte, 0, load.LatencyReplyLen)}
}

// handle answers one request with write, then does the work the request asks for.
func (s *workState) handle(msg []byte, write func([]byte) error) error {
	seq, work, ok := load.ParseLatencyRequest(msg)
	if !ok {
		return errBadRequest
	}
	s.reply = load.AppendLatencyReply(s.reply[:0], seq, s.ready, unixNano())
	if err := write(s.reply); err != nil {
		return err
	}
	busy(work)
	s.ready = unixNano()
	return nil
}

// pushLoop writes a stamped message with write every load.PushInterval until done closes, a
// write fails or maxPushes went out.
func pushLoop(done <-chan struct{}, write func([]byte) error) {
	t := time.NewTicker(load.PushInterval)
	defer t.Stop()
	msg := make([]byte, 0, load.LatencyReplyLen)
	for seq := uint64(1); seq <= maxPushes; seq++ {
		select {
		case <-done:
			return
		case <-t.C:
		}
		now := unixNano()
		msg = load.AppendLatencyReply(msg[:0], seq, now, now)
		if write(msg) != nil {
			return
		}
	}
}
