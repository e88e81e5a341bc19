package hub

import (
	"bytes"
	"context"
	"slices"
	"sync"
)

// Bus is an in-process message engine: the Brokers its Link method returns, one per Hub,
// share rooms as nodes on a real engine would, with nothing to start. A Hub without a Broker
// gets a Bus of its own, which makes it a single node. A Bus never loses its link. It is a
// Log: it keeps the topics' logs in memory, within the bounds of the last Append.
type Bus struct {
	mu   sync.RWMutex
	subs map[string][]*busLink // replaced, never modified, so that Publish reads it unlocked

	lmu  sync.Mutex         // guards the logs (buslog.go)
	logs map[string]*memLog // the topics' logs, made by the first Append
}

// NewBus returns a Bus with no links.
func NewBus() *Bus { return &Bus{subs: make(map[string][]*busLink)} }

// busQueue is how many envelopes a link holds for its hub before publishers wait.
const busQueue = 1024

// Link returns a new Broker on b, for one Hub. Envelopes reach the other links in the order
// they were published; a publisher waits while a receiving link's queue is full, so nothing
// is lost.
func (b *Bus) Link() Broker {
	return &busLink{bus: b, in: make(chan Envelope, busQueue), grown: make(chan struct{}, 1), done: make(chan struct{}),
		topics: make(map[string]bool), cursors: make(map[string]uint64)}
}

// Subscribers returns the number of links subscribed to topic.
func (b *Bus) Subscribers(topic string) int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs[topic])
}

type busLink struct {
	bus     *Bus
	in      chan Envelope
	grown   chan struct{} // a log this link follows has grown (buslog.go)
	done    chan struct{} // closed by Close
	exited  chan struct{} // closed when the delivery goroutine has returned
	mu      sync.Mutex
	topics  map[string]bool   // under mu
	cursors map[string]uint64 // the next offset to deliver of each topic's log; under mu
	closed  bool              // under mu
}

func (l *busLink) Open(r Receiver) error {
	l.exited = make(chan struct{})
	go func() {
		defer close(l.exited)
		for {
			select {
			case e := <-l.in:
				r.Receive(e)
			case <-l.grown:
				l.deliverLogs(r)
			case <-l.done:
				return
			}
		}
	}()
	return nil
}

func (l *busLink) Subscribe(ctx context.Context, topic string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if !l.topics[topic] {
		l.topics[topic] = true
		l.startCursor(topic)
		b := l.bus
		b.mu.Lock()
		b.subs[topic] = append(slices.Clip(b.subs[topic]), l)
		b.mu.Unlock()
	}
	return nil
}

func (l *busLink) Unsubscribe(ctx context.Context, topic string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.unsubscribe(topic)
	return nil
}

// unsubscribe removes l from topic; l.mu is held.
func (l *busLink) unsubscribe(topic string) {
	if !l.topics[topic] {
		return
	}
	delete(l.topics, topic)
	delete(l.cursors, topic)
	b := l.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	links := slices.DeleteFunc(slices.Clone(b.subs[topic]), func(x *busLink) bool { return x == l })
	if len(links) == 0 {
		delete(b.subs, topic)
	} else {
		b.subs[topic] = links
	}
}

func (l *busLink) Publish(ctx context.Context, e Envelope) error {
	select {
	case <-l.done:
		return ErrClosed
	default:
	}
	l.bus.mu.RLock()
	links := l.bus.subs[e.Topic]
	l.bus.mu.RUnlock()
	copied := false
	for _, to := range links {
		if to == l {
			continue // a node's own envelopes would only be dropped
		}
		if !copied {
			e.Payload, copied = bytes.Clone(e.Payload), true
		}
		select {
		case to.in <- e:
		case <-to.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (l *busLink) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	for topic := range l.topics {
		l.unsubscribe(topic)
	}
	close(l.done)
	l.mu.Unlock()
	if l.exited != nil {
		<-l.exited
	}
	return nil
}
