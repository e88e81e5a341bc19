package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ecows/ecows/hub"
)

// DefaultStream names the JetStream stream of the logs when Options.Stream is empty.
const DefaultStream = "ECOWS_HUB"

const (
	// hdrOffset carries an envelope's offset beside it in the stream.
	hdrOffset = "Ecows-Offset"
	// hdrEpoch names the epoch a head record belongs to.
	hdrEpoch = "Ecows-Epoch"
	// casTries bounds the compare-and-set loops against other nodes' appends; each lost
	// round means another node appended, so running out takes heavy contention.
	casTries = 32
	// resumeWait spaces the attempts to resume delivery after a reconnection, while
	// JetStream recovers its streams.
	resumeWait = 250 * time.Millisecond
	// idleConsumer is how long the engine keeps a consumer nobody pulls from: the
	// consumers of a node that vanished without deleting them.
	idleConsumer = 30 * time.Second
	// deleteWait bounds the deletion of a consumer no longer followed.
	deleteWait = 2 * time.Second
	// followHeartbeat is how often the engine tells an idle consumer that it is alive: a
	// consumer that hears nothing for twice as long starts again from where it stopped
	// (nats.go's default, half the pull's 30 s expiry, left a follower stalled for 30 s).
	followHeartbeat = 5 * time.Second
)

// errContention is returned when Append loses casTries rounds in a row to other nodes.
var errContention = errors.New("natsbroker: too many concurrent appends to one topic")

// tail is what this node knows of the end of a topic's log: the stream sequence and
// offset of its last envelope (seq 0: the log holds none, off is the head's), and the
// sequence of the topic's head record. Its mutex serialises this node's appends to the
// topic, so that they do not race each other.
type tail struct {
	mu      sync.Mutex
	epoch   string
	known   bool
	seq     uint64
	off     uint64
	headSeq uint64
}

// follower delivers a subscribed topic's log to the Receiver with an ordered consumer.
// mu is held while it delivers, so that a consumer it replaced cannot deliver at the same
// time as the new one; gen names the current consumer.
type follower struct {
	subject string
	start   sync.Mutex // serialises follow, so that the consumer started last is the one kept
	mu      sync.Mutex
	gen     uint64
	epoch   string // of next; "" until the first consumer starts
	next    uint64 // stream sequence to resume from
	stopped atomic.Bool
	cc      jetstream.ConsumeContext // cc and cons are guarded by the Broker's mu
	cons    jetstream.Consumer
}

// logSubject is the subject of topic's log in the stream.
func (b *Broker) logSubject(topic string) string { return b.prefix + ".log." + b.token(topic) }

// headSubject is the subject of topic's head record: the last offset given in the epoch,
// which outlives the log's envelopes so that offsets go on after they all expired.
func (b *Broker) headSubject(topic string) string { return b.prefix + ".head." + b.token(topic) }

func (b *Broker) headStream() string { return b.stream + "_HEADS" }

// streamConfig is cfg made the log stream's configuration for lim. MaxMsgsPerSubject and
// MaxAge are the stream's, so the Limits set last apply to every topic.
func (b *Broker) streamConfig(cfg jetstream.StreamConfig, lim hub.Limits) jetstream.StreamConfig {
	cfg.Name = b.stream
	cfg.Subjects = []string{b.prefix + ".log.>"}
	cfg.Storage = jetstream.FileStorage
	cfg.MaxMsgsPerSubject = -1
	if lim.Len > 0 {
		cfg.MaxMsgsPerSubject = int64(lim.Len)
	}
	cfg.MaxAge = max(lim.Age, 0)
	// No message ids are used, but the window may not exceed MaxAge.
	cfg.Duplicates = 0
	if cfg.MaxAge > 0 && cfg.MaxAge < 2*time.Minute {
		cfg.Duplicates = cfg.MaxAge
	}
	return cfg
}

// epochOf names a stream's lifetime by its creation time: a stream the engine lost and
// created again has another.
func epochOf(info *jetstream.StreamInfo) string {
	return strconv.FormatInt(info.Created.UnixNano(), 36)
}

// logStreams returns the log stream and the heads stream, creating them if the engine has
// none, and brings the log stream's limits to lim unless lim is nil. It fetches the
// stream's info when lim differs from what this node last set or when fresh is true.
func (b *Broker) logStreams(ctx context.Context, lim *hub.Limits, fresh bool) (jetstream.Stream, jetstream.Stream, *jetstream.StreamInfo, error) {
	b.lmu.Lock()
	defer b.lmu.Unlock()
	if !fresh && b.logs != nil && (lim == nil || b.limSet && *lim == b.lim) {
		return b.logs, b.heads, b.logs.CachedInfo(), nil
	}
	var set hub.Limits
	if lim != nil {
		set = *lim
	}
	s, err := b.js.Stream(ctx, b.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = b.js.CreateStream(ctx, b.streamConfig(jetstream.StreamConfig{}, set))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = b.js.Stream(ctx, b.stream)
		}
	}
	if err != nil {
		return nil, nil, nil, err
	}
	info := s.CachedInfo()
	if lim != nil {
		if cfg := b.streamConfig(info.Config, set); cfg.MaxMsgsPerSubject != info.Config.MaxMsgsPerSubject || cfg.MaxAge != info.Config.MaxAge {
			if s, err = b.js.UpdateStream(ctx, cfg); err != nil {
				return nil, nil, nil, err
			}
			info = s.CachedInfo()
		}
		b.lim, b.limSet = set, true
	}
	if epoch := epochOf(info); b.heads == nil || epoch != b.epoch {
		h, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:              b.headStream(),
			Subjects:          []string{b.prefix + ".head.>"},
			Storage:           jetstream.FileStorage,
			MaxMsgsPerSubject: 1,
		})
		if err != nil {
			return nil, nil, nil, err
		}
		b.heads, b.epoch = h, epoch
	}
	b.logs = s
	return s, b.heads, info, nil
}

// forgetStreams makes the next logStreams ask the engine again, after an error that says
// the stream may be gone.
func (b *Broker) forgetStreams() {
	b.lmu.Lock()
	b.logs, b.limSet = nil, false
	b.lmu.Unlock()
}

// usable returns the error Append and Read fail with at once, if any.
func (b *Broker) usable() error {
	if !b.history {
		return fmt.Errorf("natsbroker: Options.History is off: %w", errors.ErrUnsupported)
	}
	if !b.nc.IsConnected() {
		if b.nc.IsClosed() || !b.live() {
			return hub.ErrClosed
		}
		return hub.ErrLinkDown
	}
	return nil
}

// linkErr marks err as a loss of the link when the connection is down.
func (b *Broker) linkErr(err error) error {
	if err != nil && !b.nc.IsConnected() && !errors.Is(err, hub.ErrLinkDown) {
		return fmt.Errorf("%w: %w", hub.ErrLinkDown, err)
	}
	return err
}

func wrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

func offsetOf(h nats.Header) (uint64, error) {
	off, err := strconv.ParseUint(h.Get(hdrOffset), 10, 64)
	if err != nil || off == 0 {
		return 0, fmt.Errorf("natsbroker: log message without a valid %s header", hdrOffset)
	}
	return off, nil
}

// Append implements hub.Log: it publishes e to its topic's log subject with the next
// offset, on the condition that the subject's last message is still the one this node
// knows of (Nats-Expected-Last-Subject-Sequence), so that two nodes cannot take the same
// offset; on losing that race it reads the subject's last message and tries again. Then it
// raises the topic's head record to the new offset. It fails with hub.ErrLinkDown only when
// e was not sent; when its answer is lost, e may be in the log and the error says "in doubt".
func (b *Broker) Append(ctx context.Context, e hub.Envelope, lim hub.Limits) (hub.Position, error) {
	if err := b.usable(); err != nil {
		return hub.Position{}, err
	}
	bp := b.encode(e)
	defer b.bufs.Put(bp)

	t := b.tail(e.Topic)
	t.mu.Lock()
	defer t.mu.Unlock()
	subject := b.logSubject(e.Topic)
	for range casTries {
		logs, heads, info, err := b.logStreams(ctx, &lim, false)
		if err != nil {
			return hub.Position{}, b.linkErr(err)
		}
		if epoch := epochOf(info); t.epoch != epoch {
			t.epoch, t.known = epoch, false
		}
		if !t.known {
			if err := b.loadTail(ctx, t, logs, heads, e.Topic); err != nil {
				return hub.Position{}, b.linkErr(err)
			}
		}
		m := &nats.Msg{Subject: subject, Header: nats.Header{hdrOffset: {strconv.FormatUint(t.off+1, 10)}}, Data: *bp}
		// PublishMsg has sent m, and so is done with its data, when it returns.
		ack, err := b.js.PublishMsg(ctx, m, jetstream.WithExpectStream(b.stream), jetstream.WithExpectLastSequencePerSubject(t.seq))
		switch {
		case err == nil:
			t.seq, t.off = ack.Sequence, t.off+1
			// e is in the log, whether or not its head record follows: a head left behind
			// is raised by the next Append, and matters only once every envelope expired.
			_ = b.raiseHead(ctx, t, heads, e.Topic)
			return hub.Position{Epoch: t.epoch, Offset: t.off}, nil
		case errors.Is(err, nats.ErrReconnectBufExceeded):
			return hub.Position{}, b.linkErr(err) // refused before it was sent
		case wrongLastSeq(err):
			// Another node appended, or the stream was deleted and created again, with
			// another epoch, without this node losing its link.
			t.known = false
			b.forgetStreams()
		case errors.Is(err, jetstream.ErrNoStreamResponse) && b.nc.IsConnected():
			b.forgetStreams() // the stream was deleted or lost with the engine's state
		default:
			// Sent, and its answer lost: e may be in the log, so this is not ErrLinkDown.
			t.known = false
			return hub.Position{}, fmt.Errorf("natsbroker: append in doubt: %w", err)
		}
	}
	return hub.Position{}, errContention
}

func (b *Broker) tail(topic string) *tail {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.tails[topic]
	if t == nil {
		t = new(tail)
		b.tails[topic] = t
	}
	return t
}

// loadTail reads the end of the topic's log from the engine: its last message or, when it
// holds none, its head record of the same epoch.
func (b *Broker) loadTail(ctx context.Context, t *tail, logs, heads jetstream.Stream, topic string) error {
	m, err := logs.GetLastMsgForSubject(ctx, b.logSubject(topic))
	switch {
	case err == nil:
		if t.off, err = offsetOf(m.Header); err != nil {
			return err
		}
		t.seq = m.Sequence
	case errors.Is(err, jetstream.ErrMsgNotFound):
		t.seq, t.off = 0, 0
	default:
		return err
	}
	h, err := heads.GetLastMsgForSubject(ctx, b.headSubject(topic))
	switch {
	case err == nil:
		t.headSeq = h.Sequence
		if h.Header.Get(hdrEpoch) == t.epoch && t.seq == 0 {
			if t.off, err = strconv.ParseUint(string(h.Data), 10, 64); err != nil {
				return fmt.Errorf("natsbroker: malformed head record of %q: %w", topic, err)
			}
		}
	case errors.Is(err, jetstream.ErrMsgNotFound):
		t.headSeq = 0
	default:
		return err
	}
	t.known = true
	return nil
}

// raiseHead sets the topic's head record to t.off unless another node already set it
// higher.
func (b *Broker) raiseHead(ctx context.Context, t *tail, heads jetstream.Stream, topic string) error {
	subject := b.headSubject(topic)
	for range casTries {
		m := &nats.Msg{Subject: subject, Header: nats.Header{hdrEpoch: {t.epoch}}, Data: strconv.AppendUint(nil, t.off, 10)}
		ack, err := b.js.PublishMsg(ctx, m, jetstream.WithExpectStream(b.headStream()), jetstream.WithExpectLastSequencePerSubject(t.headSeq))
		if err == nil {
			t.headSeq = ack.Sequence
			return nil
		}
		if !wrongLastSeq(err) {
			return err
		}
		h, err := heads.GetLastMsgForSubject(ctx, subject)
		if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return err
		}
		t.headSeq = 0
		if h != nil {
			t.headSeq = h.Sequence
			if off, err := strconv.ParseUint(string(h.Data), 10, 64); err == nil && h.Header.Get(hdrEpoch) == t.epoch && off >= t.off {
				return nil
			}
		}
	}
	return errContention
}

// Read implements hub.Log. It finds the first envelope after after by a binary search
// over the stream's sequences (each probe a JetStream message get of the next message of
// the topic's subject), then reads on one message at a time.
func (b *Broker) Read(ctx context.Context, topic string, after hub.Position, max int) ([]hub.Envelope, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	logs, heads, info, err := b.logStreams(ctx, nil, true)
	if err != nil {
		return nil, b.linkErr(err)
	}
	epoch := epochOf(info)
	subject := b.logSubject(topic)
	var cutoff time.Time // messages older are no longer held, whether or not the engine has removed them yet
	if info.Config.MaxAge > 0 {
		cutoff = time.Now().Add(-info.Config.MaxAge)
	}
	get := func(seq uint64) (*jetstream.RawStreamMsg, uint64, error) {
		m, err := logs.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if err != nil {
			return nil, 0, err
		}
		off, err := offsetOf(m.Header)
		return m, off, err
	}
	// first: the oldest envelope held.
	first, firstOff, err := get(1)
	for err == nil && !cutoff.IsZero() && first.Time.Before(cutoff) {
		first, firstOff, err = get(first.Sequence + 1)
	}
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		if after.IsZero() {
			return nil, nil
		}
		// Nothing is held: nothing is missing only if after is the last offset given.
		if after.Epoch == epoch {
			h, err := heads.GetLastMsgForSubject(ctx, b.headSubject(topic))
			if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return nil, b.linkErr(err)
			}
			if h != nil && h.Header.Get(hdrEpoch) == epoch && string(h.Data) == strconv.FormatUint(after.Offset, 10) {
				return nil, nil
			}
		}
		return nil, &hub.NotRecoverableError{Room: topic, After: after}
	}
	if err != nil {
		return nil, b.linkErr(err)
	}
	oldest := hub.Position{Epoch: epoch, Offset: firstOff}
	if !after.IsZero() && (after.Epoch != epoch || after.Offset+1 < firstOff) {
		return nil, &hub.NotRecoverableError{Room: topic, After: after, Oldest: oldest}
	}
	m := first
	if firstOff <= after.Offset {
		last, lastOff, err := b.lastOf(ctx, logs, subject)
		if err != nil {
			return nil, b.linkErr(err)
		}
		if lastOff <= after.Offset {
			return nil, nil
		}
		// The smallest sequence whose next message of the subject is after after.
		lo, hi := first.Sequence+1, last.Sequence
		m = last
		for lo < hi {
			mid := lo + (hi-lo)/2
			p, off, err := get(mid)
			if err != nil {
				return nil, b.linkErr(err)
			}
			if off > after.Offset {
				hi, m = mid, p
			} else {
				lo = p.Sequence + 1
			}
		}
	}
	var out []hub.Envelope
	for len(out) < max {
		off, err := offsetOf(m.Header)
		if err != nil {
			return nil, err
		}
		e, err := hub.DecodeEnvelope(m.Data)
		if err != nil {
			return nil, fmt.Errorf("natsbroker: log message %d of %q: %w", m.Sequence, topic, err)
		}
		e.Pos = hub.Position{Epoch: epoch, Offset: off}
		out = append(out, e)
		if m, _, err = get(m.Sequence + 1); errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		} else if err != nil {
			return nil, b.linkErr(err)
		}
	}
	return out, nil
}

func (b *Broker) lastOf(ctx context.Context, logs jetstream.Stream, subject string) (*jetstream.RawStreamMsg, uint64, error) {
	m, err := logs.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		return nil, 0, err
	}
	off, err := offsetOf(m.Header)
	return m, off, err
}

// follow starts (or, after a reconnection, restarts) f's ordered consumer: from where it
// stopped in the same epoch, from the stream's end when it never started, and from the
// beginning of a new epoch.
func (b *Broker) follow(ctx context.Context, f *follower) error {
	f.start.Lock()
	defer f.start.Unlock()
	_, _, info, err := b.logStreams(ctx, nil, true)
	if err != nil {
		return err
	}
	epoch := epochOf(info)
	f.mu.Lock()
	f.gen++
	gen := f.gen
	switch {
	case f.epoch == "":
		f.next = info.State.LastSeq + 1
	case f.epoch != epoch:
		f.next = 1
	}
	f.epoch = epoch
	start := f.next
	f.mu.Unlock()
	cons, err := b.js.OrderedConsumer(ctx, b.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{f.subject},
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       start,
		InactiveThreshold: idleConsumer,
	})
	if err != nil {
		return err
	}
	r := b.r
	cc, err := cons.Consume(func(m jetstream.Msg) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.gen != gen || f.stopped.Load() || !b.live() {
			return
		}
		meta, err := m.Metadata()
		if err != nil {
			return
		}
		f.next = meta.Sequence.Stream + 1
		off, err := offsetOf(m.Headers())
		if err != nil {
			return
		}
		e, err := hub.DecodeEnvelope(m.Data())
		if err != nil {
			return
		}
		e.Pos = hub.Position{Epoch: f.epoch, Offset: off}
		r.Receive(e)
	}, jetstream.PullHeartbeat(followHeartbeat))
	if err != nil {
		return err
	}
	b.mu.Lock()
	oldCC, oldCons := f.cc, f.cons
	f.cc, f.cons = cc, cons
	b.mu.Unlock()
	b.stop(oldCC, oldCons)
	if f.stopped.Load() { // unfollow ran meanwhile and may not have seen cc
		b.stop(cc, cons)
	}
	return nil
}

// stop stops a consumer of this node's and, while connected, deletes it from the engine,
// which would otherwise keep it until idleConsumer has passed.
func (b *Broker) stop(cc jetstream.ConsumeContext, cons jetstream.Consumer) {
	if cc == nil {
		return
	}
	cc.Stop()
	if info := cons.CachedInfo(); info != nil && b.nc.IsConnected() {
		ctx, cancel := context.WithTimeout(context.Background(), deleteWait)
		_ = b.js.DeleteConsumer(ctx, b.stream, info.Name) // idleConsumer is the fallback
		cancel()
	}
}

// pause stops every follower's consumer when the link is lost, so that nothing is
// delivered until resume has started them again after the last envelope delivered. The
// engine's consumers are deleted when they are replaced.
func (b *Broker) pause() {
	b.mu.Lock()
	ccs := make([]jetstream.ConsumeContext, 0, len(b.follows))
	for _, f := range b.follows {
		if f.cc != nil {
			ccs = append(ccs, f.cc)
		}
	}
	b.mu.Unlock()
	for _, cc := range ccs {
		cc.Stop()
	}
}

// unfollow stops f for good. It does not wait for a Receive under way, which may be
// what called it.
func (b *Broker) unfollow(f *follower) {
	f.stopped.Store(true)
	b.mu.Lock()
	cc, cons := f.cc, f.cons
	f.cc, f.cons = nil, nil
	b.mu.Unlock()
	b.stop(cc, cons)
}

// relinked reports whether the link changed since link.
func (b *Broker) relinked(link uint64) bool {
	b.linkMu.Lock()
	defer b.linkMu.Unlock()
	return b.link != link
}

// resume restarts every follower after a reconnection, retrying while JetStream recovers,
// and then reports the link up, unless the link was lost again (link changed) or the
// Broker closed meanwhile.
func (b *Broker) resume(link uint64) {
	defer b.wg.Done()
	for {
		b.mu.Lock()
		fs := make([]*follower, 0, len(b.follows))
		for _, f := range b.follows {
			fs = append(fs, f)
		}
		b.mu.Unlock()
		b.forgetStreams() // the engine may have lost them
		var err error
		for _, f := range fs {
			if err != nil || b.relinked(link) {
				break // a newer resume follows them
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = b.follow(ctx, f)
			cancel()
		}
		b.linkMu.Lock()
		if b.link != link || !b.live() {
			b.linkMu.Unlock()
			return
		}
		if err == nil {
			b.r.LinkUp()
			b.linkMu.Unlock()
			return
		}
		b.linkMu.Unlock()
		select {
		case <-b.done:
			return
		case <-time.After(resumeWait):
		}
	}
}
