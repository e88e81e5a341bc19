package hub

import (
	"context"
	"errors"
	"time"

	"github.com/ecows/ecows/frame"
)

// Log is a Broker whose engine also keeps, for each topic, a log of the envelopes appended
// to it, bounded by count and by age, in one order that every node sees: each envelope's
// Position. A Hub with Options.History appends its broadcasts to the log rather than
// publishing them, delivers every room's messages in the log's order, and reads the log to
// fill what its subscription missed. The Bus is a Log, and so are the NATS JetStream and
// Redis Streams adapters.
//
// Every node on one engine must agree on whether rooms have history: a node that publishes
// is not heard by the nodes that read logs.
type Log interface {
	Broker
	// Append adds e to the end of the log of e.Topic, with the next offset of the log's
	// epoch, and trims the log to lim. Every node subscribed to the topic, this one
	// included, then receives e with e.Pos set, in the order of the log. It returns e's
	// position. It must fail fast, with an error matching ErrLinkDown, while the link is
	// down, and return ErrLinkDown only when e did not reach the engine: an error after e
	// was sent (a lost answer, a timeout) must not match it. After any other error e may or
	// may not be in the log (a Hub drops what it receives twice). Append must not keep
	// e.Payload after it returns.
	Append(ctx context.Context, e Envelope, lim Limits) (Position, error)
	// Read returns the envelopes of topic's log after the position after, oldest first and
	// at most max of them, with Pos set; with the zero Position it reads from the oldest.
	// When the log's epoch is not after.Epoch, or the log no longer holds the envelope at
	// after.Offset+1, it returns a *NotRecoverableError with the oldest position it holds.
	// The Payloads returned are the caller's.
	Read(ctx context.Context, topic string, after Position, max int) ([]Envelope, error)
}

// Limits bound a topic's log: at most Len envelopes (0: no bound), none older than Age (0:
// no bound).
type Limits struct {
	Len int
	Age time.Duration
}

// Message is a message of a room's history.
type Message struct {
	Pos     Position
	Op      frame.Opcode
	Payload []byte
}

// ErrNotRecoverable is what a *NotRecoverableError matches.
var ErrNotRecoverable = errors.New("hub: history does not reach back to the position")

// NotRecoverableError says that a room's history no longer holds the messages after a
// position: they are older than its bounds, or the history started again (Oldest.Epoch is
// not After.Epoch). Oldest is the first position it holds, zero when it holds none. A client
// that gets it must resynchronise from the application's own state.
type NotRecoverableError struct {
	Room          string
	After, Oldest Position
}

// Error implements error.
func (e *NotRecoverableError) Error() string {
	return "hub: the history of room " + e.Room + " does not reach back to " + e.After.String() + " (oldest " + e.Oldest.String() + ")"
}

// Is matches ErrNotRecoverable.
func (e *NotRecoverableError) Is(target error) bool { return target == ErrNotRecoverable }
