package metrics

import (
	"net/http"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// Recorder receives what ecows measures on a server. Its methods are called from the
// goroutines that serve requests and connections, so they must be safe for concurrent use
// and quick.
type Recorder interface {
	// Handshake records the answer to an upgrade request on route: status 101 (200 over
	// HTTP/2) and reason "" when it was accepted, else the refusal's status and a short
	// reason from a fixed set ("method", "origin", "version", "shutdown", ...).
	Handshake(route string, status int, reason string)
	// Conn records a connection accepted on route and returns the Observer of its messages,
	// pings and close, or nil for none. r is the upgrade request, whose context and headers
	// may carry a trace to continue; it must not be kept.
	Conn(r *http.Request, route string) transport.Observer
	// Hub records a hub named name, whose counts stats returns when asked; remove forgets
	// it, and is called when the hub closes.
	Hub(name string, stats func() HubStats) (remove func())
}

// HubStats counts what a hub has done so far and what it holds now.
type HubStats struct {
	// Conns is the number of connections the hub knows (joined, or sent to) and Rooms the
	// number of rooms with at least one local member, now.
	Conns, Rooms int
	// Queued is the number of messages waiting in the connections' send queues, now.
	Queued int
	// Encoded counts the frames the hub encoded: one per Broadcast, Send or envelope
	// received, however many members it reaches.
	Encoded uint64
	// Written counts frames written to connections, Dropped the frames SlowDrop
	// discarded, and Evicted the connections closed with 1008 for being too slow.
	Written, Dropped, Evicted uint64
	// Published counts envelopes the broker took, PublishErrors those it refused, Received
	// the envelopes from other nodes delivered here, and Gaps the gaps reported.
	Published, PublishErrors, Received, Gaps uint64
	// LinkUp says whether the broker's link to its engine is up, now.
	LinkUp bool
}

// Multi returns a Recorder that passes everything to each of rs, in order: for example a
// Registry for Prometheus and the otel module's Recorder for traces. Nil Recorders are
// skipped.
func Multi(rs ...Recorder) Recorder {
	var m multi
	for _, r := range rs {
		if r != nil {
			m = append(m, r)
		}
	}
	return m
}

type multi []Recorder

func (m multi) Handshake(route string, status int, reason string) {
	for _, r := range m {
		r.Handshake(route, status, reason)
	}
}

func (m multi) Conn(req *http.Request, route string) transport.Observer {
	var os multiObserver
	for _, r := range m {
		if o := r.Conn(req, route); o != nil {
			os = append(os, o)
		}
	}
	switch len(os) {
	case 0:
		return nil
	case 1:
		return os[0]
	}
	return os
}

func (m multi) Hub(name string, stats func() HubStats) func() {
	removes := make([]func(), 0, len(m))
	for _, r := range m {
		removes = append(removes, r.Hub(name, stats))
	}
	return func() {
		for _, rm := range removes {
			if rm != nil {
				rm()
			}
		}
	}
}

type multiObserver []transport.Observer

func (m multiObserver) Received(size, wire int64) {
	for _, o := range m {
		o.Received(size, wire)
	}
}

func (m multiObserver) Sent(size, wire int64) {
	for _, o := range m {
		o.Sent(size, wire)
	}
}

func (m multiObserver) FlushReceived() {
	for _, o := range m {
		o.FlushReceived()
	}
}

func (m multiObserver) FlushSent() {
	for _, o := range m {
		o.FlushSent()
	}
}

func (m multiObserver) Pinged(rtt time.Duration) {
	for _, o := range m {
		o.Pinged(rtt)
	}
}

func (m multiObserver) Closed(code frame.CloseCode, by transport.Side) {
	for _, o := range m {
		o.Closed(code, by)
	}
}
