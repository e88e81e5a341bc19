package hub

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strconv"
	"time"
)

// The Bus as a Log: each topic's log lives in the Bus, and each link delivers it to its hub
// by reading it from where it stands (a cursor per subscribed topic), woken when something is
// appended. A link never waits for another, and an appender never waits for a link, so a hub
// that reads the log while its delivery is held up cannot deadlock the Bus.

// memLog is one topic's log.
type memLog struct {
	lim     Limits // the bounds of the last Append
	epoch   string
	next    uint64     // the offset of the next envelope appended
	entries []memEntry // entries[i] is at offset next-len(entries)+i
}

type memEntry struct {
	e  Envelope // its own copy of the payload
	at time.Time
}

// first returns the offset of the oldest entry (next when there is none).
func (g *memLog) first() uint64 { return g.next - uint64(len(g.entries)) }

// trim drops what lim does not allow, oldest first.
func (g *memLog) trim(lim Limits, now time.Time) {
	drop := 0
	if lim.Len > 0 && len(g.entries) > lim.Len {
		drop = len(g.entries) - lim.Len
	}
	for lim.Age > 0 && drop < len(g.entries) && now.Sub(g.entries[drop].at) > lim.Age {
		drop++
	}
	if drop > 0 {
		clear(g.entries[:drop])
		g.entries = g.entries[drop:]
	}
}

// read returns up to n entries after offset after.Offset, or a *NotRecoverableError.
func (g *memLog) read(topic string, after Position, n int, now time.Time) ([]Envelope, error) {
	if g == nil {
		if after.IsZero() {
			return nil, nil
		}
		return nil, &NotRecoverableError{Room: topic, After: after}
	}
	g.trim(g.lim, now)
	oldest := Position{Epoch: g.epoch, Offset: g.first()}
	if len(g.entries) == 0 {
		oldest = Position{}
	}
	start := g.first()
	if !after.IsZero() {
		if after.Epoch != g.epoch || after.Offset+1 < g.first() {
			return nil, &NotRecoverableError{Room: topic, After: after, Oldest: oldest}
		}
		start = max(start, after.Offset+1)
	}
	var out []Envelope
	for off := start; off < g.next && len(out) < n; off++ {
		e := g.entries[off-g.first()].e
		e.Payload = bytes.Clone(e.Payload)
		out = append(out, e)
	}
	return out, nil
}

// logs returns the Bus's logs, made on first use; b.lmu is held.
func (b *Bus) logsLocked() map[string]*memLog {
	if b.logs == nil {
		b.logs = make(map[string]*memLog)
	}
	return b.logs
}

// Append implements Log.
func (l *busLink) Append(ctx context.Context, e Envelope, lim Limits) (Position, error) {
	select {
	case <-l.done:
		return Position{}, ErrClosed
	default:
	}
	b := l.bus
	now := time.Now()
	b.lmu.Lock()
	logs := b.logsLocked()
	g := logs[e.Topic]
	if g == nil {
		g = &memLog{epoch: strconv.FormatUint(rand.Uint64(), 36), next: 1}
		logs[e.Topic] = g
	}
	e.Pos = Position{Epoch: g.epoch, Offset: g.next}
	e.Payload = bytes.Clone(e.Payload)
	g.entries = append(g.entries, memEntry{e: e, at: now})
	g.next++
	g.lim = lim
	g.trim(lim, now)
	b.lmu.Unlock()
	b.mu.RLock()
	links := b.subs[e.Topic]
	b.mu.RUnlock()
	for _, to := range links {
		to.wake()
	}
	return e.Pos, nil
}

// Read implements Log.
func (l *busLink) Read(ctx context.Context, topic string, after Position, n int) ([]Envelope, error) {
	b := l.bus
	b.lmu.Lock()
	defer b.lmu.Unlock()
	return b.logsLocked()[topic].read(topic, after, n, time.Now())
}

// wake tells l's delivery goroutine that a log it follows has grown.
func (l *busLink) wake() {
	select {
	case l.grown <- struct{}{}:
	default:
	}
}

// startCursor makes l follow topic's log from its end; l.mu is held.
func (l *busLink) startCursor(topic string) {
	b := l.bus
	b.lmu.Lock()
	next := uint64(1)
	if g := b.logsLocked()[topic]; g != nil {
		next = g.next
	}
	b.lmu.Unlock()
	l.cursors[topic] = next
}

// deliverLogs delivers what the logs l follows hold past its cursors, in order per topic.
func (l *busLink) deliverLogs(r Receiver) {
	b := l.bus
	l.mu.Lock()
	topics := make(map[string]uint64, len(l.cursors))
	for t, c := range l.cursors {
		topics[t] = c
	}
	l.mu.Unlock()
	for topic, next := range topics {
		for {
			b.lmu.Lock()
			g := b.logsLocked()[topic]
			var batch []Envelope
			if g != nil {
				next = max(next, g.first()) // what was trimmed meanwhile is the reader's gap
				for off := next; off < g.next && len(batch) < 64; off++ {
					batch = append(batch, g.entries[off-g.first()].e)
				}
			}
			b.lmu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, e := range batch {
				r.Receive(e)
			}
			next = batch[len(batch)-1].Pos.Offset + 1
			l.mu.Lock()
			if _, ok := l.cursors[topic]; ok {
				l.cursors[topic] = next
			}
			l.mu.Unlock()
		}
	}
}
