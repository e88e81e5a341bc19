// Package natsbroker links ecows hubs on many nodes through NATS core pub/sub
// (github.com/nats-io/nats.go): a hub.Broker whose topics are NATS subjects.
//
//	b, err := natsbroker.Connect("nats://127.0.0.1:4222", nil)
//	h, err := hub.New(&hub.Options{Broker: b, OnGap: tellRoom})
//
// Every topic is one subject under Options.Prefix, with one NATS subscription (and so one
// delivery goroutine) per topic the node has local members in. NATS core delivers at most
// once and keeps one publisher's order per subject, which is what package hub needs; the hub
// numbers its envelopes to detect what NATS drops (a slow consumer, a reconnection).
//
// The Broker reports its connection's disconnections and reconnections to the hub (NATS
// restores the subscriptions itself before it reports a reconnection) and makes Publish fail
// fast while disconnected instead of buffering in the client.
//
// # Rooms with history
//
// With Options.History the Broker is also a hub.Log, for hubs with hub.Options.History,
// over NATS JetStream (the server runs with JetStream enabled):
//
//	b, err := natsbroker.Connect("nats://127.0.0.1:4222", &natsbroker.Options{History: true})
//
// Each topic's log is the subject Prefix+".log."+token in the stream Options.Stream (default
// DefaultStream, file storage, created by the first node that needs it), each envelope with
// its offset in the header Ecows-Offset. Append publishes with
// Nats-Expected-Last-Subject-Sequence set to the subject's last message as the node knows it,
// so that two nodes never take the same offset; the one that loses reads the subject's last
// message and tries again. The log's Limits are the stream's MaxMsgsPerSubject and MaxAge,
// which a node updates when the Limits it appends with change: the Limits set last apply
// to every topic. A head record per topic (the subject
// Prefix+".head."+token in the stream Stream+"_HEADS", one message per subject and no age
// limit) keeps the last offset given, so that offsets go on after every envelope of a topic
// expired; the head records are never removed. The epoch is the log stream's creation time:
// it stays while the engine keeps the stream, across restarts on its store, and changes when
// the stream was lost and made again.
//
// Subscribe follows the topic's log with an ordered consumer (an ephemeral pull consumer,
// deleted when no longer followed) from the stream's end. After a reconnection every
// consumer resumes after the last stream sequence it delivered (from the start of the stream
// in a new epoch), and only then does the Broker report the link up. Read finds the first
// envelope after a position by a binary search over the stream's sequences, with message
// gets of the subject's next message, then reads on one message get per envelope.
//
// Offsets are made contiguous by the log itself, and the head record is raised after the
// envelope is in: if a node dies between the two and every envelope of the topic expires
// before the next Append, that Append gives the lost head's offset again.
package natsbroker

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ecows/ecows/hub"
)

// DefaultPrefix starts the subjects when Options.Prefix is empty.
const DefaultPrefix = "ecows.hub"

// Options configure a Broker. The zero value (or nil) gives the defaults.
type Options struct {
	// Prefix starts every subject (default DefaultPrefix); the nodes that share rooms use
	// the same prefix, and other applications on the same NATS use another.
	Prefix string
	// History makes the Broker a hub.Log for hubs with hub.Options.History: Subscribe
	// then also follows the topic's log in JetStream, and Append and Read work (without
	// it they fail with an error matching errors.ErrUnsupported). The NATS server needs
	// JetStream enabled. Every node of the hubs sets it alike.
	History bool
	// Stream names the JetStream stream of the logs (default DefaultStream) and, with the
	// suffix "_HEADS", the stream of their head records.
	Stream string
}

var _ hub.Log = (*Broker)(nil)

// Broker is a hub.Broker, and with Options.History a hub.Log, over one NATS connection.
type Broker struct {
	nc      *nats.Conn
	own     bool // Close closes nc
	prefix  string
	history bool
	stream  string
	js      jetstream.JetStream

	mu       sync.Mutex
	r        hub.Receiver
	subs     map[string]*nats.Subscription
	closed   bool
	prevDown nats.ConnErrHandler
	prevUp   nats.ConnHandler
	bufs     sync.Pool
	tails    map[string]*tail
	follows  map[string]*follower

	// The log streams as last seen, guarded by lmu.
	lmu    sync.Mutex
	logs   jetstream.Stream
	heads  jetstream.Stream
	epoch  string
	lim    hub.Limits
	limSet bool

	// linkMu orders the reports of the link; link counts its changes, so that a resume
	// started by a reconnection that was lost again does not report it up.
	linkMu sync.Mutex
	link   uint64
	done   chan struct{}
	wg     sync.WaitGroup
}

// Connect dials NATS at url with the options a hub needs (reconnect for ever, every 250 ms,
// and no reconnect buffer, so that Publish fails fast while disconnected), then natsOpts,
// which may override them. The Broker owns the connection: Close closes it.
func Connect(url string, opts *Options, natsOpts ...nats.Option) (*Broker, error) {
	all := append([]nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(-1),
	}, natsOpts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		return nil, err
	}
	b := New(nc, opts)
	b.own = true
	return b, nil
}

// New returns a Broker over nc, which the caller keeps: Close leaves it open. Open adds
// disconnect and reconnect handlers to nc (calling those nc had first) and Close puts the
// old ones back. For nc to fail fast while disconnected, dial it with
// nats.ReconnectBufSize(-1); the Broker also refuses to publish while nc is not connected.
func New(nc *nats.Conn, opts *Options) *Broker {
	if opts == nil {
		opts = &Options{}
	}
	b := &Broker{
		nc: nc, prefix: opts.Prefix, history: opts.History, stream: opts.Stream,
		subs:    make(map[string]*nats.Subscription),
		tails:   make(map[string]*tail),
		follows: make(map[string]*follower),
		done:    make(chan struct{}),
	}
	if b.prefix == "" {
		b.prefix = DefaultPrefix
	}
	if b.stream == "" {
		b.stream = DefaultStream
	}
	if b.history {
		b.js, _ = jetstream.New(nc) // fails only for invalid options, and there are none
	}
	return b
}

// Subject returns the NATS subject of topic: the prefix, a dot, and the topic itself when
// it is a valid token of letters, digits, '-' and '_', or else '~' and its unpadded
// base64url form, so that any topic maps to one subject and no two topics to the same.
func (b *Broker) Subject(topic string) string { return b.prefix + "." + b.token(topic) }

// token is the subject token of topic, as Subject describes.
func (b *Broker) token(topic string) string {
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return "~" + base64.RawURLEncoding.EncodeToString([]byte(topic))
		}
	}
	if topic == "" {
		return "~"
	}
	return topic
}

// Open installs the connection handlers that report to r.
func (b *Broker) Open(r hub.Receiver) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return hub.ErrClosed
	}
	b.r = r
	b.prevDown, b.prevUp = b.nc.DisconnectErrHandler(), b.nc.ReconnectHandler()
	b.nc.SetDisconnectErrHandler(func(nc *nats.Conn, err error) {
		if b.prevDown != nil {
			b.prevDown(nc, err)
		}
		if err == nil {
			err = nats.ErrDisconnected
		}
		b.linkMu.Lock()
		b.link++
		if b.live() {
			b.pause()
			r.LinkDown(err)
		}
		b.linkMu.Unlock()
	})
	b.nc.SetReconnectHandler(func(nc *nats.Conn) {
		if b.prevUp != nil {
			b.prevUp(nc)
		}
		b.linkMu.Lock()
		defer b.linkMu.Unlock()
		b.link++
		if !b.live() {
			return
		}
		if b.history {
			// The logs' consumers must resume before the link is reported up.
			b.wg.Add(1)
			go b.resume(b.link)
			return
		}
		r.LinkUp() // nats.go has sent every subscription again before it calls this
	})
	return nil
}

func (b *Broker) live() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.closed
}

// Subscribe subscribes to topic's subject and, while connected, waits for the server to
// have the subscription (a flush). While disconnected it returns at once: nats.go sends the
// subscription when it reconnects. With Options.History it also starts an ordered
// consumer of the topic's log from the stream's end, and returns once the engine has it;
// while disconnected, the consumer starts when the link is back.
func (b *Broker) Subscribe(ctx context.Context, topic string) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return hub.ErrClosed
	}
	if b.subs[topic] == nil {
		r := b.r
		sub, err := b.nc.Subscribe(b.Subject(topic), func(m *nats.Msg) {
			if e, err := hub.DecodeEnvelope(m.Data); err == nil && b.live() {
				r.Receive(e)
			}
		})
		if err != nil {
			b.mu.Unlock()
			return err
		}
		b.subs[topic] = sub
	}
	f := b.follows[topic]
	start := b.history && f == nil
	if start {
		f = &follower{subject: b.logSubject(topic)}
		b.follows[topic] = f
	}
	b.mu.Unlock()
	if !b.nc.IsConnected() {
		return nil
	}
	if err := b.nc.FlushWithContext(ctx); err != nil && b.nc.IsConnected() {
		return fmt.Errorf("natsbroker: confirming the subscription to %q: %w", topic, err)
	}
	if start {
		if err := b.follow(ctx, f); err != nil && b.nc.IsConnected() {
			b.mu.Lock()
			if b.follows[topic] == f {
				delete(b.follows, topic)
			}
			b.mu.Unlock()
			b.unfollow(f)
			return fmt.Errorf("natsbroker: following the log of %q: %w", topic, err)
		}
	}
	return nil
}

// Unsubscribe removes topic's subscription and stops following its log.
func (b *Broker) Unsubscribe(ctx context.Context, topic string) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return hub.ErrClosed
	}
	f := b.follows[topic]
	delete(b.follows, topic)
	delete(b.tails, topic) // the next Append to topic reads the log's end again
	sub := b.subs[topic]
	delete(b.subs, topic)
	b.mu.Unlock()
	if f != nil {
		b.unfollow(f)
	}
	if sub == nil {
		return nil
	}
	return sub.Unsubscribe()
}

// Publish sends e on its topic's subject. It fails at once with hub.ErrLinkDown while the
// connection is down.
func (b *Broker) Publish(ctx context.Context, e hub.Envelope) error {
	if !b.nc.IsConnected() {
		if b.nc.IsClosed() {
			return hub.ErrClosed
		}
		return hub.ErrLinkDown
	}
	bp := b.encode(e)
	err := b.nc.Publish(b.Subject(e.Topic), *bp) // copies it into the connection's buffer
	b.bufs.Put(bp)
	if err != nil && !b.nc.IsConnected() {
		return fmt.Errorf("%w: %w", hub.ErrLinkDown, err)
	}
	return err
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

// Close unsubscribes from every topic, stops following their logs, puts back nc's
// handlers, and closes nc if Connect opened it.
func (b *Broker) Close() error {
	b.linkMu.Lock() // a reconnection starts no resume after this
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.linkMu.Unlock()
		return hub.ErrClosed
	}
	b.closed = true
	close(b.done)
	fs := b.follows
	b.follows = nil
	var errs []error
	for topic, sub := range b.subs {
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
		delete(b.subs, topic)
	}
	if b.r != nil {
		b.nc.SetDisconnectErrHandler(b.prevDown)
		b.nc.SetReconnectHandler(b.prevUp)
	}
	b.mu.Unlock()
	b.linkMu.Unlock()
	for _, f := range fs {
		b.unfollow(f)
	}
	b.wg.Wait()
	if b.own {
		b.nc.Close()
	} else if b.nc.IsConnected() {
		b.nc.Flush() // the server has the unsubscriptions when Close returns
	}
	return errors.Join(errs...)
}
