package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/option"
	"github.com/ecows/ecows/transport"
)

// HistoryOptions give every room a history: the last messages broadcast to it, kept by the
// broker's engine in a log (the Broker must be a Log; the Bus is one), each at a Position
// that every node sees. With it, a client that comes back can get what it missed
// (JoinSince), a node that lost its link fills what it missed from the log, and what a node
// broadcasts while its link is down reaches the other nodes once it is back (its outbox).
// As in Options, a zero number means the default and a negative one means none.
type HistoryOptions struct {
	// Len bounds each room's history to its last Len messages (default 100; negative: no
	// count bound, which needs an Age).
	Len int
	// Age bounds it to the messages of the last Age (default 10 minutes; negative: no age
	// bound, which needs a Len).
	Age time.Duration
	// Outbox bounds the messages this node keeps, per room, while its link is down, to append
	// them to the log when it is back (default 1,000). Past it the oldest are lost to the other
	// nodes, which report the gap; a negative Outbox keeps none.
	Outbox int
	// Stamp, when set, makes the payload members receive from a message and its position,
	// so that a client knows where it stands (StampJSON adds the position to JSON objects).
	// Messages delivered while the link is down have no position yet: they are stamped with
	// the zero Position. It must not keep or modify payload.
	Stamp func(p Position, op frame.Opcode, payload []byte) []byte
}

// Defaults of HistoryOptions.
const (
	defaultHistoryLen = 100
	defaultHistoryAge = 10 * time.Minute
	defaultOutbox     = 1000
	readBatch         = 256 // envelopes asked of the log at a time
)

// Errors of rooms with history.
var (
	// ErrNoHistory is returned by Publish's position, Since and JoinSince on a Hub without
	// Options.History.
	ErrNoHistory = errors.New("hub: rooms have no history (Options.History is nil)")
	// ErrNotLog is returned by New when Options.History is set and the Broker is not a Log.
	ErrNotLog = errors.New("hub: Options.History needs a Broker that is a Log")
	// ErrHistoryOptions is returned by New for HistoryOptions without any bound.
	ErrHistoryOptions = errors.New("hub: HistoryOptions must bound the history by Len or Age")
)

// history is a Hub's HistoryOptions, resolved.
type history struct {
	log    Log
	lim    Limits
	outbox int // negative: none
	stamp  func(Position, frame.Opcode, []byte) []byte

	// By room, under mu: this node's envelopes appended (or being appended) and not back from
	// the log yet, those delivered to the local members before they were in the log, the
	// latter waiting for the former (so that the local members get this node's messages in
	// order), and those waiting for the link, oldest first.
	mu    sync.Mutex
	sent  map[string]map[origSeq]bool
	early map[string]map[origSeq]bool
	held  map[string][]heldMsg
	out   map[string][]Envelope
	// The rooms whose outbox a goroutine appends again after an Append in doubt.
	retrying map[string]bool
}

// heldMsg is a message for the local members held behind this node's messages in flight.
type heldMsg struct {
	k      origSeq
	p      *transport.Prepared
	except *member
}

// before reports whether k was numbered before o by the same origin; a message of another
// numbering epoch (a room forgotten and numbered afresh) counts as before.
func (k origSeq) before(o origSeq) bool { return k.epoch != o.epoch || k.seq < o.seq }

// origSeq is an origin's numbering of one envelope.
type origSeq struct{ epoch, seq uint64 }

func newHistory(o *HistoryOptions, b Broker) (*history, error) {
	lg, ok := b.(Log)
	if !ok {
		return nil, ErrNotLog
	}
	hs := &history{
		log: lg, stamp: o.Stamp, outbox: option.Or(o.Outbox, defaultOutbox),
		// Limits has no negative: 0 is no bound.
		lim:  Limits{Len: max(option.Or(o.Len, defaultHistoryLen), 0), Age: max(option.Or(o.Age, defaultHistoryAge), 0)},
		sent: make(map[string]map[origSeq]bool), early: make(map[string]map[origSeq]bool),
		held: make(map[string][]heldMsg), out: make(map[string][]Envelope),
		retrying: make(map[string]bool),
	}
	if hs.lim.Len == 0 && hs.lim.Age == 0 {
		return nil, ErrHistoryOptions
	}
	return hs, nil
}

// Publish is Broadcast that returns the message's position in the room's history. With
// Options.History, a message is appended to the broker's log and every node delivers it from
// there, this one included, in the log's order: local members get it once the engine has it.
// While the link is down the message goes to the local members at once and waits in the
// outbox for the link; Publish then returns the zero Position with ErrLinkDown. Without
// History, Publish is Broadcast and returns the zero Position.
func (h *Hub) Publish(room string, op frame.Opcode, payload []byte) (Position, error) {
	if h.hist == nil {
		return Position{}, h.broadcast(room, nil, op, payload)
	}
	return h.publishLogged(room, nil, op, payload)
}

// checkPayload refuses what no member could be sent, with NewPrepared's errors, without
// encoding it: the message is encoded when it is delivered.
func checkPayload(op frame.Opcode, payload []byte) error {
	switch {
	case op != frame.OpText && op != frame.OpBinary:
		return transport.ErrOpcode
	case op == frame.OpText && !frame.ValidUTF8(payload):
		return transport.ErrInvalidUTF8
	}
	return nil
}

// publishLogged is broadcast for a Hub with history.
func (h *Hub) publishLogged(room string, except *transport.Conn, op frame.Opcode, payload []byte) (Position, error) {
	if err := checkPayload(op, payload); err != nil {
		return Position{}, err
	}
	t, em, err := h.acquire(room, except)
	if err != nil {
		return Position{}, err
	}
	defer h.release(t)
	t.pubMu.Lock()
	defer t.pubMu.Unlock()
	t.sendMu.Lock()
	t.seq++
	e := Envelope{Topic: room, Origin: h.node, Epoch: t.epoch, Seq: t.seq, Op: op, Payload: payload}
	t.sendMu.Unlock()
	if em != nil {
		e.Except = em.id
	}
	err = h.flushOutbox(room)
	if err == nil {
		pos, err := h.appendOwn(e)
		if err == nil {
			return pos, nil
		}
		if !errors.Is(err, ErrLinkDown) {
			// In doubt: the log may have it. It waits in the outbox, to be appended again;
			// every node drops the second copy by its origin's numbering.
			h.queueOut(e, false)
			h.retryOutbox(room)
			return Position{}, err
		}
	} else if !errors.Is(err, ErrLinkDown) {
		h.retryOutbox(room)
	}
	h.queueOut(e, true)
	if p, err := h.prepare(op, h.stamped(Position{}, op, payload)); err == nil {
		h.deliverEarly(t, origSeq{e.Epoch, e.Seq}, p, em)
	}
	return Position{}, ErrLinkDown
}

// appendOwn appends e, this node's, to its room's log, and counts it in flight until it
// comes back.
func (h *Hub) appendOwn(e Envelope) (Position, error) {
	hs := h.hist
	k := origSeq{e.Epoch, e.Seq}
	hs.mu.Lock()
	if hs.sent[e.Topic] == nil {
		hs.sent[e.Topic] = make(map[origSeq]bool)
	}
	inDoubt := hs.sent[e.Topic][k] // an earlier Append of e failed, and may have added it
	hs.sent[e.Topic][k] = true     // before: its copy may come back before Append returns
	hs.mu.Unlock()
	ctx, cancel := h.brokerContext(h.ctx)
	pos, err := hs.log.Append(ctx, e, hs.lim)
	cancel()
	if err == nil {
		h.stats.published.Add(1)
		return pos, nil
	}
	h.stats.publishErrors.Add(1)
	if errors.Is(err, ErrLinkDown) && !inDoubt {
		h.returned(e) // never appended
	}
	return Position{}, err
}

// returned forgets e, this node's, as in flight, and gives the local members what was held
// behind it.
func (h *Hub) returned(e Envelope) {
	hs := h.hist
	hs.mu.Lock()
	defer hs.mu.Unlock()
	delete(hs.sent[e.Topic], origSeq{e.Epoch, e.Seq})
	if len(hs.sent[e.Topic]) == 0 {
		delete(hs.sent, e.Topic)
	}
	h.releaseHeldLocked(e.Topic, nil)
}

// releaseHeldLocked delivers, in order, the messages held for room's local members that no
// message of this node still in flight precedes, and those numbered before upTo when it is
// set (a message about to be delivered); hs.mu is held, which keeps the next early message
// behind these.
func (h *Hub) releaseHeldLocked(room string, upTo *origSeq) {
	hs := h.hist
	held := hs.held[room]
	n := 0
	for ; n < len(held); n++ {
		k := held[n].k
		if upTo != nil && k.before(*upTo) {
			continue
		}
		blocked := false
		for s := range hs.sent[room] {
			if s.before(k) {
				blocked = true
				break
			}
		}
		if blocked {
			break
		}
	}
	if n == 0 {
		return
	}
	release := held[:n]
	if n == len(held) {
		delete(hs.held, room)
	} else {
		hs.held[room] = held[n:]
	}
	h.mu.RLock()
	t := h.topics[room]
	h.mu.RUnlock()
	if t == nil {
		return // no local member left
	}
	for _, m := range release {
		h.fanout(t, m.p, m.except, "")
	}
}

// deliverEarly gives the local members p, this node's message k that is not in the log yet,
// at once, or behind this node's messages that are on their way back from the log.
func (h *Hub) deliverEarly(t *topic, k origSeq, p *transport.Prepared, except *member) {
	hs := h.hist
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if len(hs.sent[t.name]) > 0 || len(hs.held[t.name]) > 0 {
		hs.held[t.name] = append(hs.held[t.name], heldMsg{k, p, except})
		return
	}
	h.fanout(t, p, except, "")
}

// deliverOwn gives the local members p, this node's message k back from the log, after what
// was held that it follows; hs.mu keeps an early message behind it.
func (h *Hub) deliverOwn(t *topic, k origSeq, p *transport.Prepared, exceptID string) {
	hs := h.hist
	hs.mu.Lock()
	if len(hs.held[t.name]) == 0 {
		// Nothing to go first; an early message to come is held behind this one, which is
		// in flight until it has been delivered.
		hs.mu.Unlock()
		h.fanout(t, p, nil, exceptID)
		return
	}
	defer hs.mu.Unlock()
	h.releaseHeldLocked(t.name, &k)
	h.fanout(t, p, nil, exceptID)
}

// forgetInFlight gives up on lost, this node's messages to room that were in flight when the
// link came back, once the log has been read through: what it did not have was lost.
func (h *Hub) forgetInFlight(room string, lost map[origSeq]bool) {
	hs := h.hist
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for k := range lost {
		delete(hs.sent[room], k)
	}
	if len(hs.sent[room]) == 0 {
		delete(hs.sent, room)
	}
	h.releaseHeldLocked(room, nil)
}

// queueOut puts e in its room's outbox, its payload copied; delivered says that the local
// members have it already, so that it is not delivered again when it comes back from the log.
func (h *Hub) queueOut(e Envelope, delivered bool) {
	hs := h.hist
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.outbox < 0 {
		return // nothing kept: the other nodes report the gap in this node's numbering
	}
	if delivered {
		if hs.early[e.Topic] == nil {
			hs.early[e.Topic] = make(map[origSeq]bool)
		}
		hs.early[e.Topic][origSeq{e.Epoch, e.Seq}] = true
	}
	e.Payload = bytes.Clone(e.Payload)
	q := append(hs.out[e.Topic], e)
	if len(q) > hs.outbox {
		delete(hs.early[e.Topic], origSeq{q[0].Epoch, q[0].Seq})
		q[0] = Envelope{}
		q = q[1:]
	}
	hs.out[e.Topic] = q
}

// flushOutbox appends what waits in room's outbox, oldest first, and returns nil once it is
// empty. The caller holds the room's pubMu, or is LinkUp, so that this node's messages to a
// room reach the log in the order they were broadcast.
func (h *Hub) flushOutbox(room string) error {
	hs := h.hist
	for {
		if h.linkDown.Load() {
			return ErrLinkDown
		}
		hs.mu.Lock()
		q := hs.out[room]
		if len(q) == 0 {
			delete(hs.out, room)
			hs.mu.Unlock()
			return nil
		}
		e := q[0]
		hs.mu.Unlock()
		if _, err := h.appendOwn(e); err != nil {
			return err
		}
		hs.mu.Lock()
		if q := hs.out[room]; len(q) > 0 && q[0].Seq == e.Seq && q[0].Epoch == e.Epoch {
			q[0] = Envelope{}
			hs.out[room] = q[1:]
		}
		hs.mu.Unlock()
	}
}

// retryOutbox appends room's outbox again, after an Append in doubt, unless a retry of room's
// runs already: the next Publish or LinkUp would, but there may be none. It retries until the
// outbox is empty, the link is down (LinkUp appends it) or the hub closes.
func (h *Hub) retryOutbox(room string) {
	hs := h.hist
	hs.mu.Lock()
	if hs.retrying[room] {
		hs.mu.Unlock()
		return
	}
	hs.retrying[room] = true
	hs.mu.Unlock()
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return
	}
	h.wg.Go(func() {
		h.retry(func() bool {
			t, _, err := h.acquire(room, nil)
			if err != nil {
				return true // closed
			}
			t.pubMu.Lock()
			err = h.flushOutbox(room)
			t.pubMu.Unlock()
			h.release(t)
			hs.mu.Lock()
			defer hs.mu.Unlock()
			// Decided under hs.mu, where an Append in doubt queues its envelope before it
			// asks for a retry.
			if err == nil && len(hs.out[room]) == 0 || errors.Is(err, ErrLinkDown) {
				delete(hs.retrying, room)
				return true
			}
			return false
		})
	})
}

// stamped returns payload as members receive it at position p.
func (h *Hub) stamped(p Position, op frame.Opcode, payload []byte) []byte {
	if h.hist.stamp == nil {
		return payload
	}
	return h.hist.stamp(p, op, payload)
}

// receiveLogged delivers an envelope from the log, after what the log holds before it that
// this node has not delivered yet.
func (h *Hub) receiveLogged(e Envelope) {
	t := h.subscribed(e.Topic)
	if t == nil {
		return
	}
	defer h.release(t)
	t.hmu.Lock()
	defer t.hmu.Unlock()
	if t.behind || !h.catchUp(t, e.Pos) {
		// What comes before e could not be read: the log has e too, and the retry delivers
		// it after them.
		h.retryCatchUp(t)
		return
	}
	h.deliverLogged(t, e)
}

// deliverLogged delivers e, the next envelope of t's log, to t's members, unless this node
// delivered it already; t.hmu is held.
func (h *Hub) deliverLogged(t *topic, e Envelope) {
	switch {
	case t.hepoch == "": // the first since the node subscribed: nothing before it was expected
	case e.Pos.Epoch != t.hepoch:
		h.historyGap(t, Gap{Topic: t.name, Epoch: t.hepoch, First: t.hnext, Err: &NotRecoverableError{Room: t.name, After: Position{Epoch: t.hepoch, Offset: t.hnext - 1}, Oldest: e.Pos}})
	case e.Pos.Offset < t.hnext:
		return // delivered already
	case e.Pos.Offset > t.hnext: // the log no longer had them (catchUp)
		h.historyGap(t, Gap{Topic: t.name, Epoch: t.hepoch, First: t.hnext, Last: e.Pos.Offset - 1})
	}
	t.hepoch, t.hnext = e.Pos.Epoch, e.Pos.Offset+1
	if e.Origin == h.node {
		defer h.returned(e) // after it: what was held behind it follows
		if h.deliveredEarly(e) {
			h.inSequence(t, e) // numbered, so that a second copy is known
			return
		}
	}
	if !h.inSequence(t, e) {
		return // a second copy, appended again after an append in doubt
	}
	p, err := h.prepare(e.Op, h.stamped(e.Pos, e.Op, e.Payload))
	if err != nil {
		return
	}
	if e.Origin == h.node {
		h.deliverOwn(t, origSeq{e.Epoch, e.Seq}, p, e.Except)
		return
	}
	h.stats.received.Add(1)
	h.fanout(t, p, nil, e.Except)
}

// historyGap reports positions of t's history that this node cannot deliver. Whatever skip
// they make in the origins' numbering is part of it, so the numbering starts afresh.
func (h *Hub) historyGap(t *topic, g Gap) {
	t.rmu.Lock()
	clear(t.seen)
	t.rmu.Unlock()
	h.gap(g)
}

// deliveredEarly reports whether e, this node's own, went to the local members while the link
// was down, and forgets it.
func (h *Hub) deliveredEarly(e Envelope) bool {
	hs := h.hist
	hs.mu.Lock()
	defer hs.mu.Unlock()
	k := origSeq{e.Epoch, e.Seq}
	if !hs.early[e.Topic][k] {
		return false
	}
	delete(hs.early[e.Topic], k)
	if len(hs.early[e.Topic]) == 0 {
		delete(hs.early, e.Topic)
	}
	return true
}

// catchUp delivers what t's log holds between what this node delivered last and upTo; t.hmu
// is held. What the log no longer holds is reported as a gap. It returns false when it could
// not read the log (the link is failing): nothing before upTo may be skipped then.
func (h *Hub) catchUp(t *topic, upTo Position) bool {
	for t.hepoch != "" && upTo.Epoch == t.hepoch && t.hnext < upTo.Offset {
		es, err := h.readLog(t.name, Position{Epoch: t.hepoch, Offset: t.hnext - 1})
		var nr *NotRecoverableError
		switch {
		case errors.As(err, &nr) && nr.Oldest.Epoch == t.hepoch && nr.Oldest.Offset > t.hnext:
			last := min(nr.Oldest.Offset, upTo.Offset) - 1
			h.historyGap(t, Gap{Topic: t.name, Epoch: t.hepoch, First: t.hnext, Last: last})
			t.hnext = last + 1
			continue
		case errors.As(err, &nr):
			return true // deliverLogged reports what is missing
		case err != nil:
			return false
		case len(es) == 0:
			return true // the log holds none of them: deliverLogged reports them
		}
		for _, x := range es {
			if x.Pos.Epoch != upTo.Epoch || x.Pos.Offset >= upTo.Offset {
				return true
			}
			h.deliverLogged(t, x)
		}
	}
	return true
}

// catchUpAll delivers what t's log holds after what this node delivered last; t.hmu is held.
// It returns false when it could not read the log.
func (h *Hub) catchUpAll(t *topic) bool {
	for t.hepoch != "" {
		es, err := h.readLog(t.name, Position{Epoch: t.hepoch, Offset: t.hnext - 1})
		var nr *NotRecoverableError
		if errors.As(err, &nr) && !nr.Oldest.IsZero() {
			if nr.Oldest.Epoch == t.hepoch {
				h.historyGap(t, Gap{Topic: t.name, Epoch: t.hepoch, First: t.hnext, Last: nr.Oldest.Offset - 1})
			}
			es, err = h.readLog(t.name, Position{Epoch: nr.Oldest.Epoch, Offset: nr.Oldest.Offset - 1})
		}
		switch {
		case errors.As(err, &nr):
			return true // the log holds nothing: the next envelope delivered reports the gap
		case err != nil:
			return false
		}
		for _, x := range es {
			h.deliverLogged(t, x)
		}
		if len(es) < readBatch {
			return true
		}
	}
	return true
}

// Bounds of the waits between the attempts of retry.
const (
	retryFirst = 50 * time.Millisecond
	retryMax   = 2 * time.Second
)

// retryCatchUp marks t behind its log, which holds envelopes this node received or missed
// but could not deliver yet, and starts a goroutine, unless one runs, that reads the log
// until it has delivered them; meanwhile what the link delivers of t is dropped, since the
// log has it too. t.hmu is held.
func (h *Hub) retryCatchUp(t *topic) {
	if t.behind {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return
	}
	t.behind = true
	t.pins.Add(1) // kept, with its history state, until the retry ends
	h.wg.Go(func() {
		defer h.release(t)
		h.retry(func() bool { return h.readBehind(t) })
	})
}

// readThrough delivers what t's log holds after what this node delivered last, reading again
// after a failure (retry), until it could, or until the hub closes (false).
func (h *Hub) readThrough(t *topic) bool {
	return h.readBehind(t) || h.retry(func() bool { return h.readBehind(t) })
}

// readBehind delivers what t's log holds after what this node delivered last, and reports
// whether it could read it; t is no longer behind then.
func (h *Hub) readBehind(t *topic) bool {
	t.hmu.Lock()
	defer t.hmu.Unlock()
	ok := h.catchUpAll(t)
	if ok {
		t.behind = false
	}
	return ok
}

// retry calls attempt until it reports done, after waits growing from retryFirst to
// retryMax; it returns false when the hub closes first.
func (h *Hub) retry(attempt func() bool) bool {
	for wait := retryFirst; ; wait = min(2*wait, retryMax) {
		select {
		case <-h.ctx.Done():
			return false
		case <-time.After(wait):
		}
		if attempt() {
			return true
		}
	}
}

// readLog reads a batch of room's log after pos, bounded by BrokerTimeout.
func (h *Hub) readLog(room string, pos Position) ([]Envelope, error) {
	ctx, cancel := h.brokerContext(h.ctx)
	defer cancel()
	return h.hist.log.Read(ctx, room, pos, readBatch)
}

// linkUpLogged, for a Hub with history, appends what waited in the outboxes and delivers what
// the logs of the subscribed rooms got while the link was down.
func (h *Hub) linkUpLogged(topics []*topic) {
	hs := h.hist
	hs.mu.Lock()
	rooms := make([]string, 0, len(hs.out))
	for room := range hs.out {
		rooms = append(rooms, room)
	}
	inFlight := make(map[string]map[origSeq]bool, len(hs.sent))
	for room, ks := range hs.sent {
		inFlight[room] = maps.Clone(ks)
	}
	hs.mu.Unlock()
	for _, room := range rooms {
		t, _, err := h.acquire(room, nil)
		if err != nil {
			return // closed
		}
		t.pubMu.Lock() // this node's next message to the room goes after these
		if err := h.flushOutbox(room); err != nil && !errors.Is(err, ErrLinkDown) {
			h.retryOutbox(room) // the next LinkUp appends the rest when the link is down
		}
		t.pubMu.Unlock()
		h.release(t)
	}
	for _, t := range topics {
		if !h.readThrough(t) {
			return // closed
		}
		h.forgetInFlight(t.name, inFlight[t.name])
	}
}

// Since returns the messages of room's history after the position after, oldest first, read
// from the broker's log (the zero Position: all it holds). When the history no longer reaches
// back to after, or started again since, it returns a *NotRecoverableError.
func (h *Hub) Since(ctx context.Context, room string, after Position) ([]Message, error) {
	if h.hist == nil {
		return nil, ErrNoHistory
	}
	var out []Message
	for {
		es, err := h.hist.log.Read(ctx, room, after, readBatch)
		if err != nil {
			return out, err
		}
		for _, e := range es {
			out = append(out, Message{Pos: e.Pos, Op: e.Op, Payload: e.Payload})
		}
		if len(es) < readBatch {
			return out, nil
		}
		after = es[len(es)-1].Pos
	}
}

// JoinSince puts c in room, as Join does, and sends it first the messages of room's history
// after the position after (typically the last one the client saw before it lost its
// connection), then the live ones: nothing twice and nothing skipped. With the zero Position
// it joins as Join does. When the history no longer reaches back to after, c joins all the
// same, gets only the live messages, and JoinSince returns a *NotRecoverableError, so that the
// application can resynchronise the client. Joining a room c is in already is a no-op.
func (h *Hub) JoinSince(c *transport.Conn, room string, after Position) error {
	if h.hist == nil {
		return ErrNoHistory
	}
	if after.IsZero() {
		return h.Join(c, room)
	}
	t, _, err := h.acquire(room, nil)
	if err != nil {
		return err
	}
	defer h.release(t)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrClosed
	}
	m := h.member(c)
	_, in := m.rooms[room]
	h.mu.Unlock()
	if in {
		return nil
	}
	// Subscribed first, so that what is appended from now on comes; the log has the rest.
	if err := h.subscribeNow(t); err != nil {
		return err
	}
	t.hmu.Lock()
	defer t.hmu.Unlock()
	var missed []Envelope
	cur := after
	for {
		es, err := h.readLog(room, cur)
		if err != nil {
			h.joinLocked(t, m)
			return err
		}
		missed = append(missed, es...)
		if len(es) < readBatch {
			break
		}
		cur = es[len(es)-1].Pos
	}
	// What this node delivered already goes to c alone; the rest to every member, in order.
	var rest []Envelope
	evict := false
	for i, e := range missed {
		if t.hepoch == "" || e.Pos.Epoch != t.hepoch || e.Pos.Offset >= t.hnext {
			rest = missed[i:]
			break
		}
		if p, err := h.prepare(e.Op, h.stamped(e.Pos, e.Op, e.Payload)); err == nil && h.push(m, p) {
			evict = true
		}
	}
	if evict {
		defer h.evict(m) // once no lock is held, as fanout does
	}
	h.joinLocked(t, m)
	for _, e := range rest {
		h.deliverLogged(t, e)
	}
	return nil
}

// joinLocked makes m a member of t, which is pinned; t.hmu is held.
func (h *Hub) joinLocked(t *topic, m *member) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.topics[t.name] != t {
		return
	}
	if _, ok := m.rooms[t.name]; ok {
		return
	}
	t.mu.Lock()
	t.index[m] = len(t.members)
	t.members = append(t.members, m)
	t.mu.Unlock()
	m.rooms[t.name] = t
	h.cancelExpiry(t)
}

// StampJSON returns a HistoryOptions.Stamp that adds the position, as a string
// (Position.String), to JSON objects as their first member, named field:
// {"x":1} becomes {"field":"epoch:7","x":1}. Other payloads pass unchanged, and so does
// everything while the position is zero (the link is down).
func StampJSON(field string) func(Position, frame.Opcode, []byte) []byte {
	name, _ := json.Marshal(field)
	return func(p Position, _ frame.Opcode, payload []byte) []byte {
		i := 0
		for i < len(payload) && (payload[i] == ' ' || payload[i] == '\t' || payload[i] == '\n' || payload[i] == '\r') {
			i++
		}
		if p.IsZero() || i == len(payload) || payload[i] != '{' {
			return payload
		}
		pos, _ := json.Marshal(p.String())
		rest := bytes.TrimLeft(payload[i+1:], " \t\r\n")
		out := make([]byte, 0, len(payload)+len(name)+len(pos)+2)
		out = append(append(append(append(out, '{'), name...), ':'), pos...)
		if len(rest) > 0 && rest[0] != '}' {
			out = append(out, ',')
		}
		return append(out, rest...)
	}
}
