package hub

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecows/ecows/transport"
)

// topic is a room: its local members, its subscription, and the sequence numbers of what
// this node publishes and receives on it. A topic lives while it has members, is subscribed,
// is in use by a broadcast or was used within UnsubscribeDelay.
type topic struct {
	name string

	mu      sync.RWMutex // written under Hub.mu too, so either lock reads members
	members []*member
	index   map[*member]int // position in members; under Hub.mu

	pins    atomic.Int32 // callers using the topic outside Hub.mu
	lastUse atomic.Int64 // UnixNano of the last unpin
	timer   *time.Timer  // pending expiry; under Hub.mu
	gen     uint64       // expiry generation; under Hub.mu

	subMu      sync.Mutex  // serializes the broker calls for the topic
	subscribed atomic.Bool // changed under subMu

	sendMu     sync.Mutex // orders this node's broadcasts: numbering and local delivery
	pubMu      sync.Mutex // orders their Publish calls, taken before sendMu is released
	epoch, seq uint64     // under sendMu

	rmu  sync.Mutex
	seen map[string]position // last envelope received per origin

	// The room's history, as this node delivered it (history.go): the log's epoch and the
	// offset of the next envelope to deliver, "" and 0 before the first.
	hmu    sync.Mutex // orders the deliveries from the log, and JoinSince with them
	hepoch string
	hnext  uint64
	behind bool // a retry reads the log for what could not be delivered (retryCatchUp)
}

// position is where an origin's numbering stands.
type position struct{ epoch, seq uint64 }

// topic returns the topic named room, creating it; h.mu is held for writing.
func (h *Hub) topic(room string) *topic {
	t := h.topics[room]
	if t == nil {
		t = &topic{name: room, index: make(map[*member]int), epoch: rand.Uint64() | 1, seen: make(map[string]position)}
		h.topics[room] = t
	}
	return t
}

// acquire returns the topic named room, created if need be, pinned against removal until
// release, with except's member (nil when except is nil or unknown).
func (h *Hub) acquire(room string, except *transport.Conn) (*topic, *member, error) {
	h.mu.RLock()
	t, closed := h.topics[room], h.closed
	if t != nil && !closed {
		t.pins.Add(1)
	}
	em := h.members[except]
	h.mu.RUnlock()
	if closed {
		return nil, nil, ErrClosed
	}
	if t == nil {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return nil, nil, ErrClosed
		}
		t = h.topic(room)
		t.pins.Add(1)
		h.expireLater(t) // a topic only published to lives UnsubscribeDelay after its last use
		h.mu.Unlock()
	}
	return t, em, nil
}

// release unpins t. A topic without members always has an expiry pending, which looks at
// the pins and the time of the last release when it fires.
func (h *Hub) release(t *topic) {
	t.lastUse.Store(time.Now().UnixNano())
	t.pins.Add(-1)
}

// Join puts c in rooms. The first local member of a room subscribes the node to it, and Join
// returns once the broker has the subscription, so that c gets every broadcast published on
// any node after Join returns. A broker error is returned after c has joined all the same:
// c gets the room's local broadcasts, and the next Join of the room retries the subscription.
// Joining a room twice is a no-op. It returns ErrClosed after Close.
func (h *Hub) Join(c *transport.Conn, rooms ...string) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrClosed
	}
	m := h.member(c)
	var subscribe []*topic
	for _, room := range rooms {
		if _, ok := m.rooms[room]; ok {
			continue
		}
		t := h.topic(room)
		t.mu.Lock()
		t.index[m] = len(t.members)
		t.members = append(t.members, m)
		t.mu.Unlock()
		m.rooms[room] = t
		h.cancelExpiry(t)
		if !t.subscribed.Load() {
			t.pins.Add(1)
			subscribe = append(subscribe, t)
		}
	}
	h.mu.Unlock()
	var errs []error
	for _, t := range subscribe {
		errs = append(errs, h.subscribe(t))
		h.release(t)
	}
	return errors.Join(errs...)
}

// subscribe subscribes the node to t if t has members and is not subscribed yet.
func (h *Hub) subscribe(t *topic) error {
	return h.subscribeIf(t, true)
}

// subscribeNow subscribes the node to t, pinned, before it has members (JoinSince).
func (h *Hub) subscribeNow(t *topic) error {
	return h.subscribeIf(t, false)
}

func (h *Hub) subscribeIf(t *topic, needMembers bool) error {
	t.subMu.Lock()
	defer t.subMu.Unlock()
	if t.subscribed.Load() {
		return nil
	}
	h.mu.RLock()
	wanted := (len(t.members) > 0 || !needMembers) && !h.closed
	h.mu.RUnlock()
	if !wanted {
		return nil
	}
	ctx, cancel := h.brokerContext(h.ctx)
	defer cancel()
	if err := h.broker.Subscribe(ctx, t.name); err != nil {
		return fmt.Errorf("hub: subscribing to %q: %w", t.name, err)
	}
	t.subscribed.Store(true)
	return nil
}

// Leave takes c out of rooms; rooms it is not in are ignored. The node unsubscribes from a
// room UnsubscribeDelay after its last local member left, unless one joins meanwhile.
func (h *Hub) Leave(c *transport.Conn, rooms ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.members[c]
	if m == nil {
		return
	}
	for _, room := range rooms {
		if t := m.rooms[room]; t != nil {
			delete(m.rooms, room)
			h.drop(t, m)
		}
	}
}

// Remove takes c out of every room and out of the hub, and stops its writer; what was
// queued for it is discarded. A connection is removed by itself when it closes.
func (h *Hub) Remove(c *transport.Conn) {
	h.mu.RLock()
	m := h.members[c]
	h.mu.RUnlock()
	if m != nil {
		h.remove(m)
	}
}

// drop takes m out of t; h.mu is held for writing.
func (h *Hub) drop(t *topic, m *member) {
	i, ok := t.index[m]
	if !ok {
		return
	}
	t.mu.Lock()
	last := len(t.members) - 1
	t.members[i] = t.members[last]
	t.index[t.members[i]] = i
	t.members[last] = nil
	t.members = t.members[:last]
	t.mu.Unlock()
	delete(t.index, m)
	if len(t.members) == 0 {
		h.expireLater(t)
	}
}

// Members returns the connections in room on this node.
func (h *Hub) Members(room string) []*transport.Conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	t := h.topics[room]
	if t == nil {
		return nil
	}
	conns := make([]*transport.Conn, len(t.members))
	for i, m := range t.members {
		conns[i] = m.c
	}
	return conns
}

// Count returns the number of connections in room on this node.
func (h *Hub) Count(room string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if t := h.topics[room]; t != nil {
		return len(t.members)
	}
	return 0
}

// Rooms returns the rooms c is in, in no particular order.
func (h *Hub) Rooms(c *transport.Conn) []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	m := h.members[c]
	if m == nil {
		return nil
	}
	rooms := make([]string, 0, len(m.rooms))
	for room := range m.rooms {
		rooms = append(rooms, room)
	}
	return rooms
}

// expireLater schedules t's expiry, if t has no members and none is pending; h.mu is held for
// writing.
func (h *Hub) expireLater(t *topic) {
	if len(t.members) > 0 || t.timer != nil || h.closed || h.topics[t.name] != t {
		return
	}
	h.scheduleExpiry(t, h.unsubDelay)
}

func (h *Hub) scheduleExpiry(t *topic, d time.Duration) {
	t.gen++
	gen := t.gen
	h.wg.Add(1)
	t.timer = time.AfterFunc(d, func() { h.expire(t, gen) })
}

// cancelExpiry cancels t's pending expiry; h.mu is held for writing.
func (h *Hub) cancelExpiry(t *topic) {
	if t.timer == nil {
		return
	}
	if t.timer.Stop() {
		h.wg.Done()
	}
	t.timer = nil
	t.gen++ // an expiry already running gives up
}

// expire unsubscribes from and forgets t, unless it got a member or was used meanwhile.
func (h *Hub) expire(t *topic, gen uint64) {
	defer h.wg.Done()
	t.subMu.Lock()
	defer t.subMu.Unlock()
	h.mu.Lock()
	if h.closed || t.gen != gen {
		h.mu.Unlock()
		return
	}
	t.timer = nil
	if len(t.members) > 0 {
		h.mu.Unlock()
		return
	}
	if rest := h.unsubDelay - time.Since(time.Unix(0, t.lastUse.Load())); t.pins.Load() > 0 || rest > 0 {
		h.scheduleExpiry(t, max(rest, h.unsubDelay/4, time.Millisecond)) // no spin while pinned
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	if t.subscribed.Load() {
		ctx, cancel := h.brokerContext(h.ctx)
		h.broker.Unsubscribe(ctx, t.name) // on error the broker may deliver a while more: dropped
		cancel()
		t.subscribed.Store(false)
	}
	h.mu.Lock()
	if len(t.members) == 0 && t.timer == nil && !h.closed && h.topics[t.name] == t {
		if t.pins.Load() == 0 {
			delete(h.topics, t.name)
		} else {
			h.scheduleExpiry(t, h.unsubDelay) // a broadcast holds it
		}
	}
	h.mu.Unlock()
}
