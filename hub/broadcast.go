package hub

import (
	"encoding/json"
	"fmt"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// Broadcast sends payload as one message (op is frame.OpText or frame.OpBinary) to every
// member of room, on this node and on the others. The frame is encoded once; every local
// member's queue gets the same bytes, then the broker carries the message to the other
// nodes. A full queue is handled by the hub's SlowPolicy, which never makes Broadcast wait. The
// error, if any, is about the other nodes (ErrLinkDown while the broker's engine is
// unreachable): local members have the message all the same. Broadcasts to one room from
// this node reach every member in the order they were made. payload may be reused once
// Broadcast returns.
func (h *Hub) Broadcast(room string, op frame.Opcode, payload []byte) error {
	return h.broadcast(room, nil, op, payload)
}

// BroadcastExcept is Broadcast to every member of room but except, typically the sender.
func (h *Hub) BroadcastExcept(room string, except *transport.Conn, op frame.Opcode, payload []byte) error {
	return h.broadcast(room, except, op, payload)
}

// BroadcastText is Broadcast of s as a text message. Text that is not valid UTF-8 is
// refused with a *transport.UsageError, as by any send, and reaches no one.
func (h *Hub) BroadcastText(room, s string) error {
	return h.broadcast(room, nil, frame.OpText, []byte(s))
}

// BroadcastJSON is Broadcast of v encoded as JSON (encoding/json) in a text message. v is
// encoded once, however many members and nodes it reaches; an encoding error is returned as
// encoding/json gives it, and nothing is sent.
func (h *Hub) BroadcastJSON(room string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return h.broadcast(room, nil, frame.OpText, b)
}

func (h *Hub) broadcast(room string, except *transport.Conn, op frame.Opcode, payload []byte) error {
	if h.hist != nil {
		_, err := h.publishLogged(room, except, op, payload)
		return err
	}
	p, err := h.prepare(op, payload)
	if err != nil {
		return err
	}
	t, em, err := h.acquire(room, except)
	if err != nil {
		return err
	}
	defer h.release(t)
	t.sendMu.Lock()
	t.seq++
	epoch, seq := t.epoch, t.seq
	h.fanout(t, p, em, "")
	t.pubMu.Lock()
	t.sendMu.Unlock()
	defer t.pubMu.Unlock()
	e := Envelope{Topic: room, Origin: h.node, Epoch: epoch, Seq: seq, Op: op, Payload: payload}
	if em != nil {
		e.Except = em.id
	}
	if h.linkDown.Load() {
		h.stats.publishErrors.Add(1)
		return ErrLinkDown
	}
	if err := h.broker.Publish(h.ctx, e); err != nil {
		h.stats.publishErrors.Add(1)
		return fmt.Errorf("hub: publishing to %q: %w", room, err)
	}
	h.stats.published.Add(1)
	return nil
}

// Send sends payload as one message to c alone, through c's queue and under the hub's
// SlowPolicy, on this node. It registers c with the hub if need be (without a room), so that a
// closed connection is forgotten as a member is.
func (h *Hub) Send(c *transport.Conn, op frame.Opcode, payload []byte) error {
	p, err := h.prepare(op, payload)
	if err != nil {
		return err
	}
	m, err := h.lookup(c)
	if err != nil {
		return err
	}
	if h.push(m, p) {
		h.evict(m)
	}
	return nil
}

// prepare encodes payload as one frame, once for all the members it goes to.
func (h *Hub) prepare(op frame.Opcode, payload []byte) (*transport.Prepared, error) {
	p, err := transport.NewPrepared(op, payload)
	if err == nil {
		h.stats.encoded.Add(1)
	}
	return p, err
}

// fanout queues p for every member of t but except (or the member with id exceptID). No
// member's queue makes it wait, whatever the SlowPolicy; the members to evict are evicted once
// the room is unlocked.
func (h *Hub) fanout(t *topic, p *transport.Prepared, except *member, exceptID string) {
	var buf [8]*member
	evict := buf[:0]
	t.mu.RLock()
	for _, m := range t.members {
		if m == except || m.evicted.Load() || (exceptID != "" && m.id == exceptID) {
			continue
		}
		if h.push(m, p) {
			evict = append(evict, m)
		}
	}
	t.mu.RUnlock()
	for _, m := range evict {
		h.evict(m)
	}
}

// receiver is the Hub's side of its Broker.
type receiver struct{ h *Hub }

// Receive delivers an envelope from another node to the local members of its topic.
func (r receiver) Receive(e Envelope) {
	h := r.h
	if e.Op != frame.OpText && e.Op != frame.OpBinary {
		return
	}
	if h.hist != nil && !e.Pos.IsZero() {
		h.receiveLogged(e)
		return
	}
	if e.Origin == h.node {
		return
	}
	t := h.subscribed(e.Topic)
	if t == nil {
		return
	}
	defer h.release(t)
	if !h.inSequence(t, e) {
		return
	}
	p, err := h.prepare(e.Op, e.Payload)
	if err != nil {
		return // text that is not UTF-8: no member could be sent it
	}
	h.stats.received.Add(1)
	h.fanout(t, p, nil, e.Except)
}

// subscribed returns the topic named room, pinned (release unpins it), or nil when the node
// has none (it is not, or no longer, subscribed) or the hub is closed.
func (h *Hub) subscribed(room string) *topic {
	h.mu.RLock()
	defer h.mu.RUnlock()
	t := h.topics[room]
	if t == nil || h.closed {
		return nil
	}
	t.pins.Add(1)
	return t
}

// inSequence checks e's number against the last one from its origin on t, reports a gap,
// and tells whether to deliver e: an envelope older than the last is a duplicate or late.
func (h *Hub) inSequence(t *topic, e Envelope) bool {
	t.rmu.Lock()
	last, seen := t.seen[e.Origin]
	var gap Gap
	switch {
	case !seen:
		// The first since the node subscribed: nothing before it was expected.
	case last.epoch != e.Epoch:
		if e.Seq > 1 { // the origin numbered the topic afresh, and its first ones were lost
			gap = Gap{Topic: t.name, Origin: e.Origin, First: 1, Last: e.Seq - 1}
		}
	case e.Seq == last.seq+1:
	case e.Seq > last.seq+1:
		gap = Gap{Topic: t.name, Origin: e.Origin, First: last.seq + 1, Last: e.Seq - 1}
	default:
		t.rmu.Unlock()
		return false
	}
	t.seen[e.Origin] = position{e.Epoch, e.Seq}
	t.rmu.Unlock()
	if gap.First != 0 {
		h.gap(gap)
	}
	return true
}

func (h *Hub) gap(g Gap) {
	h.stats.gapsSum.Add(1)
	if h.onGap != nil {
		h.onGap(g)
	}
}

// LinkDown makes Broadcast fail fast until LinkUp.
func (r receiver) LinkDown(err error) {
	h := r.h
	h.linkMu.Lock()
	if err == nil {
		err = ErrLinkDown
	}
	h.linkErr = err
	h.linkMu.Unlock()
	h.linkDown.Store(true)
}

// LinkUp reports a gap on every subscribed topic and forgets where each origin's numbering
// stood: a jump in it now is part of the gap already reported.
func (r receiver) LinkUp() {
	h := r.h
	if !h.linkDown.Swap(false) {
		return
	}
	h.linkMu.Lock()
	cause := h.linkErr
	h.linkMu.Unlock()
	h.mu.RLock()
	var topics []*topic
	for _, t := range h.topics {
		if t.subscribed.Load() {
			topics = append(topics, t)
		}
	}
	h.mu.RUnlock()
	if h.hist != nil {
		// The logs have what was missed; a gap only where they do not. Not on the broker's
		// delivery goroutine, which must go on delivering what the outbox appends.
		h.mu.RLock()
		if !h.closed {
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				h.linkUpLogged(topics)
			}()
		}
		h.mu.RUnlock()
		return
	}
	for _, t := range topics {
		t.rmu.Lock()
		clear(t.seen)
		t.rmu.Unlock()
		h.gap(Gap{Topic: t.name, Err: fmt.Errorf("%w: %w", ErrLinkLost, cause)})
	}
}
