package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ecows/ecows/hub"
)

var _ hub.Log = (*Broker)(nil)

// logLua is the part of the scripts both use: the server's clock in milliseconds, and the
// trimming of a stream's head to the entries not older than age (ms; 0: no bound). The
// entries' IDs are "<offset>-0" and their field t is the time they were appended.
const logLua = `
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function trim(stream, age, now)
  if age <= 0 then return end
  local cutoff = now - age
  while true do
    local es = redis.call('XRANGE', stream, '-', '+', 'COUNT', 64)
    if #es == 0 then return end
    for _, e in ipairs(es) do
      if tonumber(e[2][4]) >= cutoff then
        redis.call('XTRIM', stream, 'MINID', e[1])
        return
      end
    end
    local last = tonumber(string.match(es[#es][1], '^(%d+)'))
    redis.call('XTRIM', stream, 'MINID', string.format('%d-0', last + 1))
  end
end
`

// appendScript adds an envelope to a topic's log and publishes it, with its position, on
// the topic's channel. KEYS: the stream, the meta hash (e: epoch, n: last offset, a: age).
// ARGV: the epoch to start with if the log has none, Len (0: none), Age in ms (0: none),
// the envelope, the channel. A log without its meta hash was lost: its stream is dropped
// and it starts again with the new epoch. It returns the epoch and the offset.
var appendScript = redis.NewScript(logLua + `
local stream, meta = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'e', epoch, 'n', 0)
end
local n = redis.call('HINCRBY', meta, 'n', 1)
local len, age = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('HSET', meta, 'a', ARGV[3])
local now = clock()
local id, t = string.format('%d-0', n), string.format('%d', now)
if len > 0 then
  redis.call('XADD', stream, 'MAXLEN', len, id, 'd', ARGV[4], 't', t)
else
  redis.call('XADD', stream, id, 'd', ARGV[4], 't', t)
end
trim(stream, age, now)
if age > 0 then
  redis.call('PEXPIRE', stream, age)
  redis.call('PEXPIRE', meta, age)
else
  redis.call('PERSIST', stream)
  redis.call('PERSIST', meta)
end
redis.call('PUBLISH', ARGV[5], 'L' .. epoch .. ':' .. string.format('%d', n) .. ':' .. ARGV[4])
return {epoch, n}
`)

// readScript reads a topic's log after trimming it to its age. KEYS: as appendScript.
// ARGV: "1" to read whatever the epoch, else "0"; the epoch to read; the first ID to read
// ("-" for the oldest); the count (0: no bound). It returns the epoch ("" without a log),
// the last offset, the oldest offset held (0: none) and the entries, read only when the
// epoch is the one asked for.
var readScript = redis.NewScript(logLua + `
local stream, meta = KEYS[1], KEYS[2]
local m = redis.call('HMGET', meta, 'e', 'n', 'a')
if not m[1] then return {'', '0', '0', {}} end
trim(stream, tonumber(m[3]) or 0, clock())
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
local oldest = '0'
if #first > 0 then oldest = string.match(first[1][1], '^(%d+)') end
local es = {}
if ARGV[1] == '1' or ARGV[2] == m[1] then
  if ARGV[4] ~= '0' then
    es = redis.call('XRANGE', stream, ARGV[3], '+', 'COUNT', ARGV[4])
  else
    es = redis.call('XRANGE', stream, ARGV[3], '+')
  end
end
return {m[1], m[2], oldest, es}
`)

// logMark starts a log envelope on a topic's channel, where plain envelopes start with
// their version byte: "L<epoch>:<offset>:<envelope>".
const logMark = 'L'

// streamKey is the Redis key of topic's log, a stream. The braces make it and metaKey one
// hash slot of a Redis Cluster, as a script's keys must be; "room." keeps what they enclose
// from being empty, which would make them no hash tag.
func (b *Broker) streamKey(topic string) string { return b.prefix + "log.{room." + topic + "}" }

// metaKey is the Redis key of the hash that holds the epoch, last offset and age of topic's
// log.
func (b *Broker) metaKey(topic string) string { return b.streamKey(topic) + ".meta" }

// Append adds e to the log of its topic, with the next offset, trims the log to lim, and
// publishes e with its position on the topic's channel, all in one script, so that offsets
// are contiguous whichever node appends and every subscribed node receives e in the log's
// order. A log with lim.Age expires lim.Age after its last Append. It fails at once with
// hub.ErrLinkDown while the link is down; an error once the script was sent says "in
// doubt": e may be in the log.
func (b *Broker) Append(ctx context.Context, e hub.Envelope, lim hub.Limits) (hub.Position, error) {
	b.mu.Lock()
	closed, down := b.closed, b.ps == nil
	b.mu.Unlock()
	switch {
	case closed:
		return hub.Position{}, hub.ErrClosed
	case down:
		return hub.Position{}, hub.ErrLinkDown
	}
	maxLen := max(lim.Len, 0)
	var age int64
	if lim.Age > 0 {
		age = int64((lim.Age + time.Millisecond - 1) / time.Millisecond)
	}
	bp := b.encode(e)
	res, err := appendScript.Run(ctx, b.client, []string{b.streamKey(e.Topic), b.metaKey(e.Topic)},
		strconv.FormatUint(rand.Uint64(), 36), maxLen, age, *bp, b.Channel(e.Topic)).Slice() // written before it returns
	b.bufs.Put(bp)
	if err != nil {
		// Even an error on dialling may follow an attempt whose answer was lost (the
		// client retries): e may be in the log, so this is not hub.ErrLinkDown.
		return hub.Position{}, fmt.Errorf("redisbroker: append in doubt: %w", err)
	}
	if len(res) == 2 {
		epoch, ok1 := res[0].(string)
		n, ok2 := res[1].(int64)
		if ok1 && ok2 && epoch != "" && n > 0 {
			return hub.Position{Epoch: epoch, Offset: uint64(n)}, nil
		}
	}
	return hub.Position{}, fmt.Errorf("redisbroker: unexpected reply to an append: %v", res)
}

// Read returns the envelopes of topic's log after the position after, at most limit of
// them (limit <= 0: all), after dropping those older than the Age of the last Append. It reads
// through the client's pool, without checking the Broker's own link.
func (b *Broker) Read(ctx context.Context, topic string, after hub.Position, limit int) ([]hub.Envelope, error) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, hub.ErrClosed
	}
	whole, start := "0", "-"
	if after.IsZero() {
		whole = "1"
	} else {
		start = strconv.FormatUint(after.Offset+1, 10) + "-0"
	}
	res, err := readScript.Run(ctx, b.client, []string{b.streamKey(topic), b.metaKey(topic)},
		whole, after.Epoch, start, strconv.Itoa(max(limit, 0))).Slice()
	if err != nil {
		return nil, linkErr(err)
	}
	bad := fmt.Errorf("redisbroker: unexpected reply to a read of %q: %v", topic, res)
	if len(res) != 4 {
		return nil, bad
	}
	epoch, ok1 := res[0].(string)
	last, err1 := replyUint(res[1])
	oldest, err2 := replyUint(res[2])
	entries, ok3 := res[3].([]any)
	if !ok1 || err1 != nil || err2 != nil || !ok3 {
		return nil, bad
	}
	if !after.IsZero() {
		nr := &hub.NotRecoverableError{Room: topic, After: after}
		if oldest > 0 {
			nr.Oldest = hub.Position{Epoch: epoch, Offset: oldest}
		}
		switch {
		case epoch == "" || epoch != after.Epoch || after.Offset > last:
			return nil, nr
		case after.Offset == last:
			return nil, nil
		case oldest == 0 || oldest > after.Offset+1:
			return nil, nr
		}
	}
	es := make([]hub.Envelope, 0, len(entries))
	for _, x := range entries {
		e, err := decodeEntry(x)
		if err != nil {
			return nil, fmt.Errorf("redisbroker: the log of %q: %w", topic, err)
		}
		e.Pos.Epoch = epoch
		es = append(es, e)
	}
	return es, nil
}

// replyUint reads a number a script returned as a string.
func replyUint(v any) (uint64, error) {
	s, _ := v.(string)
	return strconv.ParseUint(s, 10, 64)
}

// errEntry is the cause of a log entry that cannot be read.
var errEntry = errors.New("malformed entry")

// decodeEntry decodes one stream entry, [id, [field, value, ...]], with its offset.
func decodeEntry(x any) (hub.Envelope, error) {
	entry, _ := x.([]any)
	if len(entry) != 2 {
		return hub.Envelope{}, errEntry
	}
	id, _ := entry[0].(string)
	fields, _ := entry[1].([]any)
	off, err := strconv.ParseUint(strings.TrimSuffix(id, "-0"), 10, 64)
	if err != nil {
		return hub.Envelope{}, errEntry
	}
	for i := 0; i+1 < len(fields); i += 2 {
		if f, _ := fields[i].(string); f == "d" {
			d, _ := fields[i+1].(string)
			e, err := hub.DecodeEnvelope([]byte(d)) // a copy: the Payload is the caller's
			if err != nil {
				return hub.Envelope{}, err
			}
			e.Pos.Offset = off
			return e, nil
		}
	}
	return hub.Envelope{}, errEntry
}

// decodeLogMessage decodes what appendScript publishes: logMark, epoch, ':', offset, ':',
// envelope.
func decodeLogMessage(s string) (hub.Envelope, error) {
	epoch, rest, ok1 := strings.Cut(s[1:], ":")
	off, env, ok2 := strings.Cut(rest, ":")
	n, err := strconv.ParseUint(off, 10, 64)
	if !ok1 || !ok2 || err != nil || epoch == "" || n == 0 {
		return hub.Envelope{}, hub.ErrEnvelope
	}
	e, err := hub.DecodeEnvelope([]byte(env))
	e.Pos = hub.Position{Epoch: epoch, Offset: n}
	return e, err
}

// deliverLog passes e, an envelope of a log, to the Receiver unless its topic is not
// wanted or e is not after the last position delivered for it, and records its position.
// Only the session goroutine calls it, so a topic's envelopes are delivered one at a time.
func (b *Broker) deliverLog(e hub.Envelope) {
	b.mu.Lock()
	p, known := b.pos[e.Topic]
	if !b.want[e.Topic] || known && p.Epoch == e.Pos.Epoch && e.Pos.Offset <= p.Offset {
		b.mu.Unlock()
		return
	}
	b.pos[e.Topic] = e.Pos
	b.mu.Unlock()
	b.r.Receive(e)
}

// mark records, for each topic wanted whose delivery has no position yet, the end of its
// log (the zero Position for no log), for a reconnection to resume after: what is appended
// once its subscription is confirmed is delivered by the channel.
func (b *Broker) mark(ctx context.Context, topics []string) error {
	b.mu.Lock()
	var todo []string
	for _, t := range topics {
		if _, known := b.pos[t]; !known && b.want[t] {
			todo = append(todo, t)
		}
	}
	b.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	pipe := b.client.Pipeline()
	cmds := make([]*redis.SliceCmd, len(todo))
	for i, t := range todo {
		cmds[i] = pipe.HMGet(ctx, b.metaKey(t), "e", "n")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, t := range todo {
		if _, known := b.pos[t]; known || !b.want[t] {
			continue
		}
		var p hub.Position
		v := cmds[i].Val()
		if epoch, ok := v[0].(string); ok {
			if n, err := replyUint(v[1]); err == nil {
				p = hub.Position{Epoch: epoch, Offset: n}
			}
		}
		b.pos[t] = p
	}
	return nil
}

// catchUpBatch is how many envelopes a catch-up reads at once.
const catchUpBatch = 256

// catchUp delivers, for each of topics, what its log holds after the last position
// delivered: what the channel may have lost while the link was down. A log that no longer
// reaches back there (trimmed, or started again) is delivered from its oldest envelope.
func (b *Broker) catchUp(ctx context.Context, topics []string) error {
	for _, t := range topics {
		b.mu.Lock()
		p, known := b.pos[t]
		b.mu.Unlock()
		for known {
			es, err := b.Read(ctx, t, p, catchUpBatch)
			if errors.Is(err, hub.ErrNotRecoverable) {
				b.mu.Lock()
				if _, ok := b.pos[t]; ok {
					b.pos[t] = hub.Position{}
				}
				b.mu.Unlock()
				p = hub.Position{}
				continue
			}
			if err != nil {
				return err
			}
			for _, e := range es {
				b.deliverLog(e)
			}
			if len(es) < catchUpBatch {
				break
			}
			p = es[len(es)-1].Pos
		}
	}
	return nil
}
