package hubtest

import (
	"context"
	"sync"
	"testing"

	"github.com/ecows/ecows/hub"
)

// Fake is an in-process message engine that can fail on demand: Kill and Restart take it
// down and back as a crashed server would, and DropNext loses envelopes. Envelopes travel
// encoded (Envelope.AppendBinary, DecodeEnvelope) and come back to their publisher, as they
// do on a real engine. Its links are hub.Logs too: the logs survive Kill and Restart, as on
// an engine that persists them, unless LoseLogs drops them. It implements Engine and
// Restarter.
type Fake struct {
	mu    sync.Mutex
	down  bool
	drop  int
	links map[*fakeLink]bool
	subs  map[string]map[*fakeLink]bool // the engine's own; lost when it is killed
	logs  hub.Log                       // a Bus's, kept by the Fake: they survive Kill

	sendMu sync.Mutex // orders the deliveries of appended envelopes as the logs have them
}

// Forget kills the engine, drops its logs and starts it again (Forgetter).
func (f *Fake) Forget(t testing.TB) {
	f.Kill(t)
	f.LoseLogs()
	f.Restart(t)
}

// LoseLogs drops every topic's log, as an engine restarted without persistence would: the
// next Append starts a log with a new epoch.
func (f *Fake) LoseLogs() {
	f.mu.Lock()
	f.logs = newLogs()
	f.mu.Unlock()
}

// NewFake returns a running Fake.
func NewFake() *Fake {
	return &Fake{links: make(map[*fakeLink]bool), subs: make(map[string]map[*fakeLink]bool), logs: newLogs()}
}

// newLogs returns empty logs: those of a Bus of their own, through a link that is never
// opened or subscribed, which the Fake uses to append and read only (it delivers itself).
func newLogs() hub.Log {
	return hub.NewBus().Link().(hub.Log)
}

// Link returns a new Broker on f, for one Hub.
func (f *Fake) Link(testing.TB) hub.Broker {
	return &fakeLink{f: f, want: make(map[string]bool), events: make(chan fakeEvent, 4096), done: make(chan struct{})}
}

// Subscriptions returns the number of links the engine has subscribed to topic.
func (f *Fake) Subscriptions(_ testing.TB, topic string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs[topic])
}

// Kill takes the engine down: every link loses its subscriptions and reports LinkDown, and
// Publish fails with hub.ErrLinkDown until Restart.
func (f *Fake) Kill(testing.TB) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = true
	clear(f.subs)
	for l := range f.links {
		l.send(fakeEvent{down: true})
	}
}

// Restart brings the engine back: every link restores its subscriptions, then reports LinkUp.
func (f *Fake) Restart(testing.TB) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = false
	for l := range f.links {
		for topic := range l.want {
			f.subscribe(topic, l)
		}
		l.send(fakeEvent{up: true})
	}
}

// DropNext makes the engine lose the next n envelopes published, whoever publishes them.
func (f *Fake) DropNext(n int) {
	f.mu.Lock()
	f.drop += n
	f.mu.Unlock()
}

func (f *Fake) subscribe(topic string, l *fakeLink) {
	if f.subs[topic] == nil {
		f.subs[topic] = make(map[*fakeLink]bool)
	}
	f.subs[topic][l] = true
}

func (f *Fake) unsubscribe(topic string, l *fakeLink) {
	delete(f.subs[topic], l)
	if len(f.subs[topic]) == 0 {
		delete(f.subs, topic)
	}
}

type fakeEvent struct {
	env      []byte
	pos      hub.Position // of an appended envelope
	down, up bool
}

type fakeLink struct {
	f      *Fake
	want   map[string]bool // the subscriptions the link restores; under f.mu
	events chan fakeEvent
	done   chan struct{}
	exited chan struct{}
	closed bool // under f.mu
}

// send queues ev for the link's hub; a full queue makes the sender wait, as TCP would.
func (l *fakeLink) send(ev fakeEvent) {
	select {
	case l.events <- ev:
	case <-l.done:
	}
}

func (l *fakeLink) Open(r hub.Receiver) error {
	l.f.mu.Lock()
	l.f.links[l] = true
	l.f.mu.Unlock()
	l.exited = make(chan struct{})
	go func() {
		defer close(l.exited)
		for {
			select {
			case ev := <-l.events:
				switch {
				case ev.down:
					r.LinkDown(errKilled)
				case ev.up:
					r.LinkUp()
				default:
					if e, err := hub.DecodeEnvelope(ev.env); err == nil {
						e.Pos = ev.pos
						r.Receive(e)
					}
				}
			case <-l.done:
				return
			}
		}
	}()
	return nil
}

func (l *fakeLink) Subscribe(_ context.Context, topic string) error {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	if l.closed {
		return hub.ErrClosed
	}
	l.want[topic] = true
	if !l.f.down {
		l.f.subscribe(topic, l)
	}
	return nil
}

func (l *fakeLink) Unsubscribe(_ context.Context, topic string) error {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	if l.closed {
		return hub.ErrClosed
	}
	delete(l.want, topic)
	l.f.unsubscribe(topic, l)
	return nil
}

func (l *fakeLink) Publish(_ context.Context, e hub.Envelope) error {
	f := l.f
	f.mu.Lock()
	switch {
	case l.closed:
		f.mu.Unlock()
		return hub.ErrClosed
	case f.down:
		f.mu.Unlock()
		return hub.ErrLinkDown
	case f.drop > 0:
		f.drop--
		f.mu.Unlock()
		return nil
	}
	to := make([]*fakeLink, 0, len(f.subs[e.Topic]))
	for sub := range f.subs[e.Topic] {
		to = append(to, sub)
	}
	f.mu.Unlock()
	b, _ := e.AppendBinary(nil)
	for _, sub := range to {
		sub.send(fakeEvent{env: b})
	}
	return nil
}

// Append implements hub.Log.
func (l *fakeLink) Append(ctx context.Context, e hub.Envelope, lim hub.Limits) (hub.Position, error) {
	f := l.f
	b, _ := e.AppendBinary(nil)
	f.sendMu.Lock()
	defer f.sendMu.Unlock()
	f.mu.Lock()
	switch {
	case l.closed:
		f.mu.Unlock()
		return hub.Position{}, hub.ErrClosed
	case f.down:
		f.mu.Unlock()
		return hub.Position{}, hub.ErrLinkDown
	}
	logs := f.logs
	dropped := f.drop > 0
	if dropped {
		f.drop--
	}
	to := make([]*fakeLink, 0, len(f.subs[e.Topic]))
	for sub := range f.subs[e.Topic] {
		to = append(to, sub)
	}
	f.mu.Unlock()
	pos, err := logs.Append(ctx, e, lim)
	if err != nil || dropped {
		return pos, err
	}
	for _, sub := range to {
		sub.send(fakeEvent{env: b, pos: pos})
	}
	return pos, nil
}

// Read implements hub.Log.
func (l *fakeLink) Read(ctx context.Context, topic string, after hub.Position, n int) ([]hub.Envelope, error) {
	f := l.f
	f.mu.Lock()
	logs, down := f.logs, f.down
	f.mu.Unlock()
	if down {
		return nil, hub.ErrLinkDown
	}
	return logs.Read(ctx, topic, after, n)
}

var _ hub.Log = (*fakeLink)(nil)

func (l *fakeLink) Close() error {
	f := l.f
	f.mu.Lock()
	if l.closed {
		f.mu.Unlock()
		return hub.ErrClosed
	}
	l.closed = true
	for topic := range l.want {
		f.unsubscribe(topic, l)
	}
	delete(f.links, l)
	close(l.done)
	f.mu.Unlock()
	if l.exited != nil {
		<-l.exited
	}
	return nil
}

type fakeError string

func (e fakeError) Error() string { return string(e) }

const errKilled = fakeError("hubtest: fake engine killed")
