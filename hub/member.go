package hub

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/transport"
)

// member is a connection known to the hub, with its send queue and writer goroutine.
type member struct {
	c       *transport.Conn
	id      string                   // unique across nodes: node id and a counter
	q       chan *transport.Prepared // the bounded send queue
	stop    chan struct{}            // closed when the member leaves the hub
	rooms   map[string]*topic        // under Hub.mu
	halted  sync.Once
	evicted atomic.Bool
}

// member returns c's member, registering c and starting its writer if need be; h.mu is held
// for writing and the hub is open.
func (h *Hub) member(c *transport.Conn) *member {
	if m := h.members[c]; m != nil {
		return m
	}
	m := &member{
		c:     c,
		id:    h.node + "/" + strconv.FormatUint(h.nextID.Add(1), 10),
		q:     make(chan *transport.Prepared, h.queueLen),
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
// connection ends (which makes it leave).
func (h *Hub) run(m *member) {
	defer h.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		default:
		}
		select {
		case p := <-m.q:
			h.stats.written.Add(uint64(writeQueued(m, p)))
		case <-m.stop:
			return
		case <-m.c.Done():
			h.remove(m)
			return
		}
	}
}

// offer queues p for m if there is room, without waiting.
func (m *member) offer(p *transport.Prepared) bool {
	select {
	case m.q <- p:
		return true
	default:
		return false
	}
}

// halt stops m's writer.
func (m *member) halt() { m.halted.Do(func() { close(m.stop) }) }

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
	m.halt()
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
