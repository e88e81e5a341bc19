package hub

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecows/ecows/internal/option"
	"github.com/ecows/ecows/metrics"
	"github.com/ecows/ecows/transport"
)

// Defaults for the zero values of Options.
const (
	defaultQueueLen         = 128
	defaultBlockTimeout     = time.Second
	defaultUnsubscribeDelay = time.Second
	defaultBrokerTimeout    = 5 * time.Second
)

// Options configure a Hub. The zero value (or nil) gives a single node with the defaults. As
// in transport.Options, a zero number means the default and a negative one means none,
// unlimited or off.
type Options struct {
	// NodeID names this node to the others; it must be unique among the nodes on one engine
	// (a node drops envelopes with its own id). Default: random.
	NodeID string
	// Broker links this node to the others. Default: a Bus of its own (a single node).
	Broker Broker
	// QueueLen is how many messages each connection's send queue holds before OnSlow applies
	// (default 128); under SlowBlock, the messages past it wait there for room. A negative
	// QueueLen means no limit: OnSlow never applies, and a member that stops reading holds
	// every message broadcast to it until its connection ends.
	QueueLen int
	// OnSlow is what a broadcast does for a connection whose queue is full (default
	// SlowBlock).
	OnSlow SlowPolicy
	// BlockTimeout is how long, under SlowBlock, a message may wait for room in its
	// connection's full queue before the connection is closed (default 1 s). A negative
	// BlockTimeout means no timeout: the messages wait as long as the connection lives.
	BlockTimeout time.Duration
	// UnsubscribeDelay is how long a topic stays subscribed after its last local member left
	// (default 1 s), so that a member that comes straight back costs no round trip. A
	// negative UnsubscribeDelay means no delay.
	UnsubscribeDelay time.Duration
	// BrokerTimeout bounds each Subscribe and Unsubscribe call to the broker (default 5 s).
	// A negative BrokerTimeout means no bound of the hub's own (the broker may have one).
	BrokerTimeout time.Duration
	// OnGap, when set, is called for every gap in what this node received from the others:
	// a skipped sequence, or a lost link once it is back (one call per subscribed topic). It
	// runs in the broker's delivery goroutine, so it must not block.
	OnGap func(Gap)
	// Metrics, when set, samples the hub's Stats whenever it is read, under the name
	// NodeID; the hub adds no work to a broadcast for it.
	Metrics metrics.Recorder
	// History, when set, gives every room a history on the Broker's log (history.go); nil
	// leaves the hub at most once, as the guarantees above say.
	History *HistoryOptions
}

// Hub keeps rooms of connections and broadcasts to them. Create one with New; every method
// may be called from any goroutine.
type Hub struct {
	node          string
	broker        Broker
	queueLen      int
	policy        SlowPolicy
	blockTimeout  time.Duration
	unsubDelay    time.Duration
	brokerTimeout time.Duration
	onGap         func(Gap)

	ctx    context.Context // cancelled by Close
	start  time.Time       // the origin of now
	cancel context.CancelFunc

	mu      sync.RWMutex // guards the maps, closed, and the membership of every topic
	topics  map[string]*topic
	members map[*transport.Conn]*member
	closed  bool
	wg      sync.WaitGroup // writers, expiry timers and evictions; Add under mu while !closed

	linkDown  atomic.Bool
	linkMu    sync.Mutex
	linkErr   error // why the link went down; under linkMu
	nextID    atomic.Uint64
	stats     counters
	closeOnce sync.Once
	closeErr  error
	unmetric  func()   // forgets the hub in Options.Metrics
	hist      *history // nil without Options.History
}

// New returns a Hub; it opens opts.Broker. It fails only when the broker's Open does.
func New(opts *Options) (*Hub, error) {
	if opts == nil {
		opts = &Options{}
	}
	h := &Hub{
		node:          opts.NodeID,
		broker:        opts.Broker,
		queueLen:      option.Or(opts.QueueLen, defaultQueueLen),
		policy:        opts.OnSlow,
		blockTimeout:  option.Or(opts.BlockTimeout, defaultBlockTimeout),
		unsubDelay:    max(option.Or(opts.UnsubscribeDelay, defaultUnsubscribeDelay), 0),
		brokerTimeout: option.Or(opts.BrokerTimeout, defaultBrokerTimeout),
		onGap:         opts.OnGap,
		start:         time.Now(),
		topics:        make(map[string]*topic),
		members:       make(map[*transport.Conn]*member),
	}
	if h.node == "" {
		h.node = strconv.FormatUint(rand.Uint64(), 36)
	}
	if h.broker == nil {
		h.broker = NewBus().Link()
	}
	if opts.History != nil {
		var err error
		if h.hist, err = newHistory(opts.History, h.broker); err != nil {
			return nil, err
		}
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	if err := h.broker.Open(receiver{h}); err != nil {
		h.cancel()
		return nil, fmt.Errorf("hub: opening broker: %w", err)
	}
	if opts.Metrics != nil {
		h.unmetric = opts.Metrics.Hub(h.node, h.Stats)
	}
	return h, nil
}

// brokerContext returns the context of one call to the broker, bounded by BrokerTimeout
// unless it is negative.
func (h *Hub) brokerContext(parent context.Context) (context.Context, context.CancelFunc) {
	if h.brokerTimeout < 0 {
		return context.WithCancel(parent)
	}
	return context.WithTimeout(parent, h.brokerTimeout)
}

// now is the time since the hub started, on the monotonic clock.
func (h *Hub) now() time.Duration { return time.Since(h.start) }

// Node returns this node's id, as other nodes see it in Envelope.Origin.
func (h *Hub) Node() string { return h.node }

// Close unsubscribes the node from every topic, closes the broker, removes every connection
// and waits for the hub's goroutines to end. A writer in the middle of a write to a stuck
// connection ends at the connection's write deadline, so Close may take that long. The
// connections themselves stay open: they belong to whoever accepted them (the router's
// Shutdown closes them with 1001). After Close, Join, Broadcast and Send return ErrClosed.
func (h *Hub) Close() error {
	h.closeOnce.Do(h.close)
	return h.closeErr
}

func (h *Hub) close() {
	h.mu.Lock()
	h.closed = true
	h.cancel()
	topics := make([]*topic, 0, len(h.topics))
	for _, t := range h.topics {
		if t.timer != nil && t.timer.Stop() {
			h.wg.Done() // the expiry will not run
		}
		t.timer = nil
		topics = append(topics, t)
	}
	members := make([]*member, 0, len(h.members))
	for _, m := range h.members {
		members = append(members, m)
	}
	clear(h.topics)
	clear(h.members)
	h.mu.Unlock()
	for _, m := range members {
		m.halt(h)
	}
	var errs []error
	for _, t := range topics {
		t.subMu.Lock()
		if t.subscribed.Load() {
			ctx, cancel := h.brokerContext(context.Background())
			if err := h.broker.Unsubscribe(ctx, t.name); err != nil {
				errs = append(errs, fmt.Errorf("hub: unsubscribing %q: %w", t.name, err))
			}
			cancel()
			t.subscribed.Store(false)
		}
		t.subMu.Unlock()
	}
	if err := h.broker.Close(); err != nil {
		errs = append(errs, fmt.Errorf("hub: closing broker: %w", err))
	}
	h.wg.Wait()
	if h.unmetric != nil {
		h.unmetric()
	}
	h.closeErr = errors.Join(errs...)
}

// Stats counts what a Hub has done so far and what it holds now; it is what the hub reports
// to Options.Metrics.
type Stats = metrics.HubStats

type counters struct {
	encoded, written, dropped, evicted          atomic.Uint64
	published, publishErrors, received, gapsSum atomic.Uint64
}

// Stats returns the counts so far.
func (h *Hub) Stats() Stats {
	h.mu.RLock()
	conns, rooms, queued := len(h.members), 0, 0
	for _, t := range h.topics {
		if len(t.members) > 0 {
			rooms++
		}
	}
	for _, m := range h.members {
		m.mu.Lock()
		queued += len(m.queue) - m.head
		m.mu.Unlock()
	}
	h.mu.RUnlock()
	return Stats{
		Conns: conns, Rooms: rooms, Queued: queued, LinkUp: !h.linkDown.Load(),
		Encoded: h.stats.encoded.Load(), Written: h.stats.written.Load(),
		Dropped: h.stats.dropped.Load(), Evicted: h.stats.evicted.Load(),
		Published: h.stats.published.Load(), PublishErrors: h.stats.publishErrors.Load(),
		Received: h.stats.received.Load(), Gaps: h.stats.gapsSum.Load(),
	}
}
