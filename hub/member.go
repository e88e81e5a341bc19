package hub

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// member is a connection known to the hub, with its send queue and writer goroutine.
//
// The queue is a slice under the member's own lock, a leaf lock taken for a moment by the
// broadcasters and the writer. Under SlowBlock, the messages that find it full join it all the
// same, each stamped with the time it arrived: they wait there, behind the others, for the
// writer to make room, and a timer closes the member if the oldest of them still has none
// after BlockTimeout. So the wait is the member's own: no broadcaster, broker delivery or
// other member ever waits for it, and its messages keep their order.
type member struct {
	c       *transport.Conn
	id      string            // unique across nodes: node id and a counter
	wake    chan struct{}     // the queue got its first message; capacity 1
	stop    chan struct{}     // closed when the member leaves the hub
	rooms   map[string]*topic // under Hub.mu
	evicted atomic.Bool

	mu     sync.Mutex // a leaf lock: nothing else is taken under it
	queue  []queued   // queue[head:] waits for the writer, oldest first
	head   int
	halted bool        // left the hub: the queue is gone and takes nothing more
	timer  *time.Timer // the Block deadline of the oldest message without room
	armed  bool        // timer is pending, and counted in Hub.wg
}

// queued is a message in a member's queue, with the time (Hub.now) it arrived when it found
// the queue full, which starts its Block deadline; zero for the others.
type queued struct {
	p  *transport.Prepared
	at time.Duration
}

// keepQueue is the largest queue array an empty queue keeps for its next message; a larger
// one, grown by a burst, is let go, so that an idle member holds nothing large.
const keepQueue = 8

// member returns c's member, registering c and starting its writer if need be; h.mu is held
// for writing and the hub is open.
func (h *Hub) member(c *transport.Conn) *member {
	if m := h.members[c]; m != nil {
		return m
	}
	m := &member{
		c:     c,
		id:    h.node + "/" + strconv.FormatUint(h.nextID.Add(1), 10),
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		rooms: make(map[string]*topic),
	}
	h.members[c] = m
	h.wg.Add(1)
	go h.run(m)
	return m
}

// lookup returns c's member, registering it when it is new, or ErrClosed.
func (h *Hub) lookup(c *transport.Conn) (*member, error) {
	h.mu.RLock()
	m, closed := h.members[c], h.closed
	h.mu.RUnlock()
	if m != nil || closed {
		if closed {
			return nil, ErrClosed
		}
		return m, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	return h.member(c), nil
}

// run is m's writer: it writes what m's queue holds, in order, until m leaves the hub or its
// connection ends (which makes it leave). It returns only once m is halted, which the
// Block timer relies on.
func (h *Hub) run(m *member) {
	defer h.wg.Done()
	for {
		if n, ok := h.writeQueued(m); ok {
			h.stats.written.Add(uint64(n))
			continue
		}
		select {
		case <-m.wake:
		case <-m.stop:
			return
		case <-m.c.Done():
			h.remove(m)
			return
		}
	}
}

// push queues p for m under the hub's SlowPolicy, without waiting, and reports whether m must
// be evicted, which the caller does once it holds no lock.
func (h *Hub) push(m *member, p *transport.Prepared) (evict bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.halted {
		return false // m has left: what was queued for it is discarded too
	}
	n := len(m.queue) - m.head
	var at time.Duration
	if h.queueLen >= 0 && n >= h.queueLen {
		switch h.policy {
		case SlowDrop:
			h.stats.dropped.Add(1)
			return false
		case SlowEvict:
			return true
		}
		at = h.now()
		if !m.armed && h.blockTimeout >= 0 {
			// No older message is waiting for room, or the timer would be pending.
			h.arm(m, h.blockTimeout)
		}
	}
	if len(m.queue) == cap(m.queue) && m.head > 0 {
		k := copy(m.queue, m.queue[m.head:])
		clear(m.queue[k:])
		m.queue, m.head = m.queue[:k], 0
	}
	m.queue = append(m.queue, queued{p, at})
	if n == 0 {
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
	return false
}

// take moves up to len(batch) of m's queued messages to batch, oldest first, and returns
// how many. Once no message lacks room, the Block timer has nothing left to time.
func (h *Hub) take(m *member, batch []*transport.Prepared) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := min(len(m.queue)-m.head, len(batch))
	for i := range n {
		batch[i] = m.queue[m.head+i].p
		m.queue[m.head+i] = queued{}
	}
	m.head += n
	if m.head == len(m.queue) {
		m.head = 0
		if cap(m.queue) > keepQueue {
			m.queue = nil
		} else {
			m.queue = m.queue[:0]
		}
	}
	if m.armed && len(m.queue)-m.head <= h.queueLen && m.timer.Stop() {
		m.armed = false
		h.wg.Done()
	}
	return n
}

// arm starts m's Block timer; m.mu is held and m is not halted, so that m's writer, which
// returns only after m is halted, keeps Hub.wg above zero for the Add.
func (h *Hub) arm(m *member, d time.Duration) {
	h.wg.Add(1)
	m.armed = true
	if m.timer == nil {
		m.timer = time.AfterFunc(d, func() { h.deadline(m) })
	} else {
		m.timer.Reset(d)
	}
}

// deadline runs when the oldest of m's messages waiting for room may have waited
// BlockTimeout: it evicts m if that message still has no room, and otherwise waits for the
// next one's deadline, if any.
func (h *Hub) deadline(m *member) {
	defer h.wg.Done()
	m.mu.Lock()
	m.armed = false
	evict := false
	// The messages past the first queueLen are those without room; the first of them is the
	// oldest.
	if i := m.head + h.queueLen; !m.halted && i < len(m.queue) {
		if left := m.queue[i].at + h.blockTimeout - h.now(); left > 0 {
			h.arm(m, left)
		} else {
			evict = true
		}
	}
	m.mu.Unlock()
	if evict {
		h.evict(m)
	}
}

// halt stops m's writer and Block timer and lets go of its queue.
func (m *member) halt(h *Hub) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.halted {
		return
	}
	m.halted = true
	close(m.stop)
	if m.armed && m.timer.Stop() {
		m.armed = false
		h.wg.Done()
	}
	m.queue, m.head = nil, 0
}

// remove takes m out of the hub and all its rooms and stops its writer.
func (h *Hub) remove(m *member) {
	h.mu.Lock()
	if h.members[m.c] == m {
		delete(h.members, m.c)
		for _, t := range m.rooms {
			h.drop(t, m)
		}
		clear(m.rooms)
	}
	h.mu.Unlock()
	m.halt(h)
}

// evict closes a connection that cannot keep up, with 1008.
func (h *Hub) evict(m *member) {
	if !m.evicted.CompareAndSwap(false, true) {
		return
	}
	h.stats.evicted.Add(1)
	h.remove(m)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return // the connection is its owner's to close now
	}
	// Close waits for the write lock, which a write to a stuck peer holds until its deadline.
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		m.c.Close(frame.ClosePolicyViolation, "slow consumer")
	}()
}
