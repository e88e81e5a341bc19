package load

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Latency scenarios. They measure how long a reply (or a pushed message) takes to reach the
// client, one connection at a time, rather than how many messages a server moves: the cost
// they expose is a message that a library holds back after the handler has written it (write
// coalescing, a flush left to a timer), which a throughput run hides.
//
// The endpoints, served by every library's latency handlers (package bench, servers_*.go):
//
//   - PushPath: the server writes a LatencyReplyLen-byte message every PushInterval, unasked,
//     and reads (and discards) whatever the client sends.
//   - WorkPath: for each request (LatencyRequestLen bytes: a sequence number and a work time)
//     the handler writes a reply at once, then computes (busy, on the CPU) for the work time,
//     and only then reads the next request.
//
// Every reply carries two server timestamps (wall clock, Unix nanoseconds): sent, just before
// the library's write call, and ready, when the handler finished with the message before and
// was ready to read this one. Client and server run on the same host, in one process or two;
// both read the same kernel clock (CLOCK_REALTIME), so a difference of the two sides' stamps
// is a true interval (a clock step during a run would show as one outlier, not a bias).
//
// What is measured, per message:
//
//   - push: received − sent, the one-way delay from the server's write call to the client.
//   - work: received − max(request sent, reply's ready). When the server was waiting for the
//     request (its first in a burst) that is the whole round trip from the client's write; when
//     the server was still computing for an earlier request of the burst, the request could
//     not be served before the handler was ready for it, so the time it spent queued behind
//     that work (the same for every library, by design) is left out and what remains is how
//     long the library took to read it and deliver the reply. A reply that a library holds
//     back while the handler computes shows in full.
const (
	PushPath          = "/lat/push"
	WorkPath          = "/lat/work"
	PushInterval      = time.Millisecond
	LatencyRequestLen = 16 // seq uint64, work µs uint32, 4 zero bytes
	LatencyReplyLen   = 24 // seq uint64, ready int64, sent int64
)

// LatencyScenario is one named latency shape.
type LatencyScenario struct {
	Name  string
	Label string        // for tables
	Push  bool          // server push (PushPath); otherwise requests to WorkPath
	Burst int           // requests per burst, written in one write
	Work  time.Duration // the server's busy work after each reply
}

// LatencyScenarios are the four latency shapes, in the order the reports use.
var LatencyScenarios = []LatencyScenario{
	{Name: "push", Label: "server push every 1 ms", Push: true},
	{Name: "work1", Label: "reply, then 2 ms work; 1 request per burst", Burst: 1, Work: 2 * time.Millisecond},
	{Name: "work4", Label: "reply, then 2 ms work; 4 requests per burst", Burst: 4, Work: 2 * time.Millisecond},
	{Name: "rr", Label: "request/response, one at a time, no work", Burst: 1},
}

// LookupLatencyScenario returns the latency scenario called name.
func LookupLatencyScenario(name string) (LatencyScenario, bool) {
	for _, s := range LatencyScenarios {
		if s.Name == name {
			return s, true
		}
	}
	return LatencyScenario{}, false
}

// ParseLatencyRequest reads a WorkPath request: its sequence number and the work the server
// is to do after replying.
func ParseLatencyRequest(p []byte) (seq uint64, work time.Duration, ok bool) {
	if len(p) != LatencyRequestLen {
		return 0, 0, false
	}
	us := binary.BigEndian.Uint32(p[8:])
	return binary.BigEndian.Uint64(p), time.Duration(us) * time.Microsecond, true
}

// AppendLatencyReply appends a reply (or a pushed message) to dst: seq, and the server's
// ready and sent times in Unix nanoseconds.
func AppendLatencyReply(dst []byte, seq uint64, ready, sent int64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(ready))
	return binary.BigEndian.AppendUint64(dst, uint64(sent))
}

// LatencyConfig describes one latency run: one connection, one scenario.
type LatencyConfig struct {
	Addr     string
	Scenario LatencyScenario
	// The warm-up ends after Warmup or WarmupSamples messages, whichever comes first (one of
	// them must be set; zero means no limit of that kind); the measured part likewise after
	// Duration or Samples.
	Warmup        time.Duration
	WarmupSamples int
	Duration      time.Duration
	Samples       int
	// Timeout bounds each wait for the server (10 s when zero): a server that stops
	// answering fails the run instead of hanging it.
	Timeout time.Duration
}

// LatencyResult is what one latency run measured, in microseconds.
type LatencyResult struct {
	Samples int     `json:"samples"`
	P50us   float64 `json:"p50_us"`
	P90us   float64 `json:"p90_us"`
	P99us   float64 `json:"p99_us"`
	MaxUs   float64 `json:"max_us"`
}

var errLatencyStop = errors.New("stop")

// Latency runs one latency scenario against the server at cfg.Addr.
func Latency(cfg LatencyConfig) (LatencyResult, error) {
	sc := cfg.Scenario
	if (cfg.Warmup <= 0 && cfg.WarmupSamples <= 0) || (cfg.Duration <= 0 && cfg.Samples <= 0) {
		return LatencyResult{}, errors.New("latency: warm-up and measured part need a duration or a sample count")
	}
	if !sc.Push && sc.Burst < 1 {
		return LatencyResult{}, fmt.Errorf("latency %s: a burst of %d requests", sc.Name, sc.Burst)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	path := WorkPath
	if sc.Push {
		path = PushPath
	}
	if err := WaitReady(cfg.Addr, cfg.Timeout); err != nil {
		return LatencyResult{}, err
	}
	c, err := Dial(cfg.Addr, path)
	if err != nil {
		return LatencyResult{}, err
	}
	defer c.close()
	r := &latencyRun{cfg: cfg, c: c}
	for _, measure := range []bool{false, true} {
		r.measure = measure
		r.n = 0
		r.start = time.Now()
		if sc.Push {
			err = r.push()
		} else {
			err = r.work()
		}
		if err != nil {
			return LatencyResult{}, fmt.Errorf("latency %s: %w", sc.Name, err)
		}
	}
	h := &r.hist
	return LatencyResult{
		Samples: r.n,
		P50us:   h.Quantile(0.50) / 1e3,
		P90us:   h.Quantile(0.90) / 1e3,
		P99us:   h.Quantile(0.99) / 1e3,
		MaxUs:   h.Quantile(1) / 1e3,
	}, nil
}

type latencyRun struct {
	cfg     LatencyConfig
	c       *Conn
	measure bool
	start   time.Time
	n       int // samples in this part
	hist    Histogram
	msg     [LatencyReplyLen]byte
	got     int
}

// done reports whether the current part has run its course.
func (r *latencyRun) done() bool {
	d, n := r.cfg.Warmup, r.cfg.WarmupSamples
	if r.measure {
		d, n = r.cfg.Duration, r.cfg.Samples
	}
	return (n > 0 && r.n >= n) || (d > 0 && time.Since(r.start) >= d)
}

func (r *latencyRun) record(ns int64) {
	r.n++
	if r.measure {
		r.hist.Record(ns)
	}
}

// next reads frames until one whole reply has arrived and calls f with its fields and the
// time it was received.
func (r *latencyRun) next(f func(seq uint64, ready, sent, recv int64) error) error {
	r.c.nc.SetReadDeadline(time.Now().Add(r.cfg.Timeout))
	err := r.c.readFrames(func(op byte, fin bool, payload []byte, frameDone bool) error {
		if op >= 0x8 {
			if op == 0x8 && frameDone {
				return errors.New("server sent close")
			}
			return nil
		}
		if r.got+len(payload) > LatencyReplyLen {
			return fmt.Errorf("reply longer than %d bytes", LatencyReplyLen)
		}
		r.got += copy(r.msg[r.got:], payload)
		if !fin || !frameDone {
			return nil
		}
		if r.got != LatencyReplyLen {
			return fmt.Errorf("reply of %d bytes, want %d", r.got, LatencyReplyLen)
		}
		r.got = 0
		recv := time.Now().UnixNano()
		m := r.msg[:]
		if err := f(binary.BigEndian.Uint64(m), int64(binary.BigEndian.Uint64(m[8:])), int64(binary.BigEndian.Uint64(m[16:])), recv); err != nil {
			return err
		}
		return errLatencyStop
	})
	if err == errLatencyStop {
		return nil
	}
	return err
}

// push receives pushed messages and records received − sent for each.
func (r *latencyRun) push() error {
	var last uint64
	for !r.done() {
		err := r.next(func(seq uint64, ready, sent, recv int64) error {
			if last != 0 && seq <= last {
				return fmt.Errorf("pushed message %d after %d", seq, last)
			}
			last = seq
			r.record(recv - sent)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// work sends bursts of requests, each burst in one write, reads their replies and records
// received − max(sent, ready) for each (see the package's latency notes). Between bursts it
// waits until the server has done the last reply's work, so that each burst finds the
// handler waiting for it.
func (r *latencyRun) work() error {
	sc := r.cfg.Scenario
	var key [4]byte
	var req [LatencyRequestLen]byte
	burst := make([]byte, 0, sc.Burst*(6+LatencyRequestLen))
	binary.BigEndian.PutUint32(req[8:], uint32(sc.Work/time.Microsecond))
	var seq uint64
	for !r.done() {
		burst = burst[:0]
		first := seq + 1
		for range sc.Burst {
			seq++
			binary.BigEndian.PutUint64(req[:], seq)
			key[0], key[1], key[2], key[3] = byte(seq), byte(seq>>8), 0x5a, 0xc3
			burst = AppendFrame(burst, 0x2, key, req[:])
		}
		r.c.nc.SetWriteDeadline(time.Now().Add(r.cfg.Timeout))
		sent := time.Now().UnixNano()
		if _, err := r.c.nc.Write(burst); err != nil {
			return err
		}
		for i := range sc.Burst {
			want := first + uint64(i)
			err := r.next(func(got uint64, ready, _, recv int64) error {
				if got != want {
					return fmt.Errorf("reply to request %d, want %d", got, want)
				}
				r.record(recv - max(sent, ready))
				return nil
			})
			if err != nil {
				return err
			}
		}
		if sc.Work > 0 {
			// Let the handler finish the last reply's work: the next burst's first request
			// is then the round trip of a request that finds the server waiting.
			time.Sleep(sc.Work + sc.Work/4)
		}
	}
	return nil
}
