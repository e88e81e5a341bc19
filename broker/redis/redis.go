// Package redisbroker links ecows hubs on many nodes through Redis pub/sub, with the
// go-redis client (github.com/redis/go-redis/v9): a hub.Broker whose topics are Redis
// channels.
//
//	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	h, err := hub.New(&hub.Options{Broker: redisbroker.New(client, nil), OnGap: tellRoom})
//
// Each node keeps one dedicated pub/sub connection, which carries every topic it has local
// members in, and publishes through the client's pool. Redis pub/sub delivers at most once
// and keeps one publisher's order per channel, which is what package hub needs; the hub
// numbers its envelopes to detect what is lost (a reconnection, a client output buffer over
// its limit).
//
// The Broker watches its pub/sub connection (a ping when it has been quiet for
// Options.HealthCheck): when the connection breaks it reports the link down, makes Publish
// fail fast, reconnects with a backoff, subscribes again to every topic, and only then reports
// the link up.
//
// # Rooms that remember
//
// The Broker is also a hub.Log, for hubs whose rooms keep a history. A topic's log is a Redis
// stream, prefix + "log.{room." + topic + "}", whose entry IDs are "<offset>-0" (the ID is the
// offset) with the envelope and the time it was appended, and a hash beside it, the stream's
// key + ".meta", with the log's epoch, its last offset and its Age; the braces put both in one
// slot of a Redis Cluster. Append runs one Lua script (EVALSHA) that, atomically, starts the
// log with a new random epoch if its hash is gone (the stream too is dropped), takes the next
// offset (HINCRBY), adds the entry (XADD with the explicit ID and an exact MAXLEN of
// Limits.Len), drops from the head the entries older than Limits.Age (XTRIM MINID), sets both
// keys to expire Limits.Age after this Append (PEXPIRE; PERSIST without an Age), and publishes
// the envelope with its position on the topic's channel. So offsets are contiguous whichever
// node appends, Redis holds at most Len entries of a log, those older than Age leave it at the
// next Append or Read, and a log without appends for Age is gone (and starts again in a new
// epoch); and every node subscribed to the topic receives the log's envelopes in its order on
// the pub/sub connection it already has. Read runs a script that drops the entries older than
// the Age of the last Append and reads the stream (XRANGE) after a position. Logs need Redis
// 6.2 or later (XTRIM MINID).
//
// The Broker remembers, for each topic it is subscribed to, the last position it delivered
// (the end of the log when it subscribed, before anything). After a loss of its link it
// subscribes again, then reads from each log what came after that position, delivers it, and
// only then reports the link up; what the channels bring meanwhile is delivered after it,
// without what was delivered already. A log that no longer reaches back to the position (it
// was trimmed, or started again) is delivered from its oldest envelope. A node too slow to
// read its pub/sub connection is disconnected by Redis (client-output-buffer-limit pubsub)
// and catches up the same way.
//
// A log survives a restart of Redis only with persistence: with the append-only file and
// appendfsync always, a restart keeps every log and its epoch; with a looser fsync, or RDB
// snapshots, a restart may forget the last appends and give their offsets to others in the
// same epoch. Without persistence every log starts again in a new epoch.
package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ecows/ecows/hub"
)

// DefaultPrefix starts the channel and key names when Options.Prefix is empty.
const DefaultPrefix = "ecows.hub."

// Options configure a Broker. The zero value (or nil) gives the defaults.
type Options struct {
	// Prefix starts every channel and key name (default DefaultPrefix); the nodes that share
	// rooms use the same prefix.
	Prefix string
	// HealthCheck is how long the pub/sub connection may be quiet before a ping checks it
	// (default 1 s).
	HealthCheck time.Duration
	// ConnectTimeout bounds the wait in Open for the first connection (default 5 s). A node
	// that cannot reach Redis by then starts with its link down.
	ConnectTimeout time.Duration
}

// Broker is a hub.Broker, and a hub.Log, over a go-redis client.
type Broker struct {
	client      redis.UniversalClient
	prefix      string
	control     string // this broker's own channel, subscribed first, so a link always has one
	healthCheck time.Duration
	connTimeout time.Duration

	mu      sync.Mutex
	r       hub.Receiver
	ps      *redis.PubSub // the live connection; nil while down
	sess    *redis.PubSub // the connection of the current session, live or not
	want    map[string]bool
	pos     map[string]hub.Position    // per topic wanted, the last log position delivered (zero: from a log's start)
	waiters map[string][]chan struct{} // subscriptions waiting for Redis's confirmation
	down    bool                       // the link was lost and is not back yet
	closed  bool
	cancel  context.CancelFunc
	exited  chan struct{}
	bufs    sync.Pool
}

// New returns a Broker on client, which the caller keeps (Close leaves it open). For
// Publish to fail fast while Redis is unreachable the Broker checks its own link first; a
// client with MaxRetries -1 also fails fast in the moment before the link's loss is seen.
func New(client redis.UniversalClient, opts *Options) *Broker {
	if opts == nil {
		opts = &Options{}
	}
	b := &Broker{
		client:      client,
		prefix:      opts.Prefix,
		healthCheck: opts.HealthCheck,
		connTimeout: opts.ConnectTimeout,
		want:        make(map[string]bool),
		pos:         make(map[string]hub.Position),
		waiters:     make(map[string][]chan struct{}),
	}
	if b.prefix == "" {
		b.prefix = DefaultPrefix
	}
	if b.healthCheck <= 0 {
		b.healthCheck = time.Second
	}
	if b.connTimeout <= 0 {
		b.connTimeout = 5 * time.Second
	}
	b.control = b.prefix + "link." + strconv.FormatUint(rand.Uint64(), 36)
	return b
}

// Channel returns the Redis channel of topic.
func (b *Broker) Channel(topic string) string { return b.prefix + "room." + topic }

// Open connects the pub/sub connection and starts the goroutine that reads it. It waits up
// to Options.ConnectTimeout for the connection; without one by then the node starts with its
// link down (reported to r) and the Broker keeps trying.
func (b *Broker) Open(r hub.Receiver) error {
	ctx, cancel := context.WithCancel(context.Background())
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		cancel()
		return hub.ErrClosed
	}
	b.r, b.cancel, b.exited = r, cancel, make(chan struct{})
	b.mu.Unlock()
	up := make(chan struct{})
	go b.run(ctx, up)
	select {
	case <-up:
	case <-time.After(b.connTimeout):
		b.mu.Lock()
		if b.ps == nil && !b.down {
			b.down = true
			b.mu.Unlock()
			r.LinkDown(fmt.Errorf("redisbroker: no connection to Redis in %v", b.connTimeout))
		} else {
			b.mu.Unlock()
		}
	}
	return nil
}

// run keeps the pub/sub connection up and delivers what it reads, until ctx is cancelled.
func (b *Broker) run(ctx context.Context, firstUp chan struct{}) {
	defer close(b.exited)
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := b.session(ctx, firstUp)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			backoff = 50 * time.Millisecond // it was up a while: retry soon
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// session runs one pub/sub connection: it subscribes to the control channel and every topic
// wanted, delivers from the topics' logs what their channels missed once Redis confirmed
// them, then marks the link up, and reads until the connection fails. It returns nil when
// the link had come up before failing.
func (b *Broker) session(ctx context.Context, firstUp chan struct{}) error {
	b.mu.Lock()
	topics := make([]string, 0, len(b.want))
	for topic := range b.want {
		topics = append(topics, topic)
	}
	b.mu.Unlock()
	if err := b.mark(ctx, topics); err != nil {
		return err
	}
	b.mu.Lock()
	// Topics unsubscribed meanwhile are left out; those subscribed meanwhile, up adds.
	topics = slices.DeleteFunc(topics, func(topic string) bool { return !b.want[topic] })
	channels := make([]string, 0, len(topics)+1)
	channels = append(channels, b.control)
	pending := make(map[string]bool, len(topics)+1)
	for _, topic := range topics {
		channels = append(channels, b.Channel(topic))
	}
	for _, ch := range channels {
		pending[ch] = true
	}
	ps := b.client.Subscribe(ctx, channels...)
	b.sess = ps
	b.mu.Unlock()
	defer ps.Close()
	live, quiet := false, false
	for {
		msg, err := ps.ReceiveTimeout(ctx, b.healthCheck)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil && !quiet {
				quiet = true // a ping must come back before the next check
				if err = ps.Ping(ctx); err == nil {
					continue
				}
			}
			if live {
				b.lost(ps, err)
				return nil
			}
			return err
		}
		quiet = false
		switch m := msg.(type) {
		case *redis.Message:
			if len(m.Payload) > 0 && m.Payload[0] == logMark {
				if e, err := decodeLogMessage(m.Payload); err == nil {
					b.deliverLog(e)
				}
			} else if e, err := hub.DecodeEnvelope([]byte(m.Payload)); err == nil {
				b.r.Receive(e)
			}
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			b.confirmed(m.Channel)
			if !live {
				delete(pending, m.Channel)
				if len(pending) == 0 {
					// The channels carry what is appended from now on, and the logs
					// what they missed while the link was down. Redis confirms the
					// channels of one SUBSCRIBE before it sends any message on them, so
					// what the channels brought meanwhile is read after the catch-up
					// (and what it delivered already is dropped).
					if err := b.catchUp(ctx, topics); err != nil {
						return err
					}
					live = true
					b.up(ctx, ps, topics, firstUp)
				}
			}
		}
	}
}

// up records a live connection and tells the hub, after a loss, that the link is back.
func (b *Broker) up(ctx context.Context, ps *redis.PubSub, subscribed []string, firstUp chan struct{}) {
	b.mu.Lock()
	b.ps = ps
	// Topics wanted since the session started, while the link was down.
	var late []string
	for topic := range b.want {
		if !slices.Contains(subscribed, topic) {
			late = append(late, topic)
		}
	}
	wasDown := b.down
	b.down = false
	b.mu.Unlock()
	if len(late) > 0 {
		b.mark(ctx, late) // an error is a failing link: the next session marks them
		for _, topic := range late {
			ps.Subscribe(ctx, b.Channel(topic))
		}
	}
	select {
	case <-firstUp:
	default:
		close(firstUp)
	}
	if wasDown {
		b.r.LinkUp()
	}
}

// lost records the loss of the link and tells the hub.
func (b *Broker) lost(ps *redis.PubSub, err error) {
	b.mu.Lock()
	if b.ps == ps {
		b.ps = nil
	}
	b.down = true
	b.mu.Unlock()
	b.r.LinkDown(err)
}

// confirmed wakes the Subscribe calls waiting for channel.
func (b *Broker) confirmed(channel string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, w := range b.waiters[channel] {
		close(w)
	}
	delete(b.waiters, channel)
}

// Subscribe subscribes the pub/sub connection to topic's channel and waits for Redis's
// confirmation; before, it notes the end of topic's log, where delivery resumes after a loss
// of the link if nothing was delivered by then. While the link is down it records the topic,
// for the reconnection to subscribe to (from the end of the log then), and returns at once.
func (b *Broker) Subscribe(ctx context.Context, topic string) error {
	channel := b.Channel(topic)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return hub.ErrClosed
	}
	b.want[topic] = true
	ps := b.ps
	b.mu.Unlock()
	if ps == nil {
		return nil
	}
	if err := b.mark(ctx, []string{topic}); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("redisbroker: subscribing to %q: %w", topic, ctx.Err())
		}
		return nil // the link is failing: the reconnection marks and subscribes again
	}
	w := make(chan struct{})
	b.mu.Lock()
	b.waiters[channel] = append(b.waiters[channel], w)
	b.mu.Unlock()
	if err := ps.Subscribe(ctx, channel); err != nil {
		return nil // the link is failing: the reconnection subscribes again
	}
	select {
	case <-w:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("redisbroker: confirming the subscription to %q: %w", topic, ctx.Err())
	}
}

// Unsubscribe unsubscribes from topic's channel and forgets the last position delivered.
func (b *Broker) Unsubscribe(ctx context.Context, topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return hub.ErrClosed
	}
	delete(b.want, topic)
	delete(b.pos, topic)
	if b.ps != nil {
		b.ps.Unsubscribe(ctx, b.Channel(topic)) // an error is a failing link: nothing to undo
	}
	return nil
}

// Publish publishes e on its topic's channel. It fails at once with hub.ErrLinkDown while
// the link is down.
func (b *Broker) Publish(ctx context.Context, e hub.Envelope) error {
	b.mu.Lock()
	closed, down := b.closed, b.ps == nil
	b.mu.Unlock()
	switch {
	case closed:
		return hub.ErrClosed
	case down:
		return hub.ErrLinkDown
	}
	bp := b.encode(e)
	err := b.client.Publish(ctx, b.Channel(e.Topic), *bp).Err() // written before it returns
	b.bufs.Put(bp)
	return linkErr(err)
}

// encode returns e encoded in a buffer of the pool, to put back (b.bufs.Put) once sent.
func (b *Broker) encode(e hub.Envelope) *[]byte {
	bp, _ := b.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	*bp, _ = e.AppendBinary((*bp)[:0])
	return bp
}

// linkErr wraps in hub.ErrLinkDown the errors of a client that cannot reach Redis.
func linkErr(err error) error {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("%w: %w", hub.ErrLinkDown, err)
	}
	return err
}

// Close closes the pub/sub connection, which unsubscribes from everything, and waits for its
// goroutine to end.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return hub.ErrClosed
	}
	b.closed = true
	clear(b.want)
	clear(b.pos)
	cancel, exited, sess := b.cancel, b.exited, b.sess
	b.mu.Unlock()
	if cancel != nil {
		cancel()
		if sess != nil {
			sess.Close() // ends a read in progress now, not at its timeout
		}
		<-exited
	}
	return nil
}
