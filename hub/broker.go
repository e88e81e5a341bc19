package hub

import (
	"context"
	"encoding/binary"
	"errors"

	"github.com/ecows/ecows/frame"
)

// Broker links a node's Hub to a message engine shared by every node. A Hub calls Open once,
// then Subscribe, Unsubscribe and Publish from any goroutine, and Close once at the end.
//
// A Broker must keep the subscriptions it was given across losses of its link to the engine:
// Subscribe and Unsubscribe succeed while the link is down (they take effect when it is
// back), and after a loss the Broker restores every subscription before it calls
// Receiver.LinkUp. It delivers the envelopes of one topic to Receive one at a time, in the
// order the engine delivered them; the node's own may come back too (the hub drops them).
// hubtest.Run checks all this against a real engine.
type Broker interface {
	// Open starts delivering to r. It is called once, before any other method.
	Open(r Receiver) error
	// Subscribe makes the engine deliver the envelopes published on topic to this node. It
	// returns once the engine has the subscription (or, while the link is down, once it is
	// recorded), so that envelopes published after it returns are delivered.
	Subscribe(ctx context.Context, topic string) error
	// Unsubscribe stops what Subscribe started.
	Unsubscribe(ctx context.Context, topic string) error
	// Publish sends e to the nodes subscribed to e.Topic. It must fail fast, with an error
	// matching ErrLinkDown, while the link is down, and must not keep e.Payload after it
	// returns.
	Publish(ctx context.Context, e Envelope) error
	// Close unsubscribes from everything and releases what Open acquired; no Receiver call
	// starts after it returns.
	Close() error
}

// Receiver is what a Broker delivers to; the Hub gives one to Open.
type Receiver interface {
	// Receive delivers one envelope. e.Payload is valid only until Receive returns.
	Receive(e Envelope)
	// LinkDown reports that the link to the engine is lost, with the cause.
	LinkDown(err error)
	// LinkUp reports that the link is back and every subscription restored.
	LinkUp()
}

// Envelope is one broadcast on its way between nodes.
type Envelope struct {
	// Topic is the room.
	Topic string
	// Origin is the node id of the publishing Hub (Options.NodeID).
	Origin string
	// Epoch and Seq number the envelopes of one origin on one topic: Seq counts from 1 within
	// an epoch, and a node starts a new, random epoch when it starts numbering a topic afresh
	// (after it forgot an idle topic), so that receivers never take new numbers for old ones.
	Epoch, Seq uint64
	// Op is frame.OpText or frame.OpBinary.
	Op frame.Opcode
	// Except is the id of a connection not to deliver to, or "".
	Except string
	// Payload is the message.
	Payload []byte
	// Pos is the envelope's position in its topic's log, set by a Log on the envelopes it
	// delivers and reads; zero otherwise. It is not part of the wire form: a Log keeps it
	// beside the envelope.
	Pos Position
}

// envelopeVersion is the first byte of an encoded Envelope.
const envelopeVersion = 1

// AppendBinary appends the wire form of e to b, for brokers that carry bytes. It implements
// encoding.BinaryAppender.
func (e Envelope) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, envelopeVersion, byte(e.Op))
	b = binary.AppendUvarint(b, e.Epoch)
	b = binary.AppendUvarint(b, e.Seq)
	for _, s := range [...]string{e.Topic, e.Origin, e.Except} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return append(b, e.Payload...), nil
}

// ErrEnvelope is returned by DecodeEnvelope for bytes that are not an encoded Envelope.
var ErrEnvelope = errors.New("hub: malformed envelope")

// DecodeEnvelope parses what AppendBinary wrote. The Payload of the result aliases b; the
// strings are copies.
func DecodeEnvelope(b []byte) (Envelope, error) {
	var e Envelope
	if len(b) < 2 || b[0] != envelopeVersion {
		return e, ErrEnvelope
	}
	e.Op = frame.Opcode(b[1])
	if e.Op != frame.OpText && e.Op != frame.OpBinary {
		return e, ErrEnvelope
	}
	b = b[2:]
	var n int
	if e.Epoch, n = binary.Uvarint(b); n <= 0 {
		return e, ErrEnvelope
	}
	b = b[n:]
	if e.Seq, n = binary.Uvarint(b); n <= 0 {
		return e, ErrEnvelope
	}
	b = b[n:]
	for _, s := range [...]*string{&e.Topic, &e.Origin, &e.Except} {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return Envelope{}, ErrEnvelope
		}
		*s = string(b[n : n+int(l)])
		b = b[n+int(l):]
	}
	e.Payload = b
	return e, nil
}

// Gap reports envelopes of a topic that this node may not have delivered.
type Gap struct {
	// Topic is the room concerned.
	Topic string
	// Origin, First and Last describe a skipped sequence: the envelopes First..Last of
	// Origin never arrived. Origin is "" for a lost link.
	Origin      string
	First, Last uint64
	// Epoch is set for a gap in a room's history (Options.History): the positions First..Last
	// of that epoch were lost, no longer in the log when this node went to read them. When
	// the history started again, Last is 0 and Err a *NotRecoverableError.
	Epoch string
	// Err is nil for a skipped sequence; for a lost link, reported once it is back, it
	// matches ErrLinkLost and wraps the cause the broker gave.
	Err error
}

// Errors of the hub and its brokers.
var (
	// ErrClosed is returned by calls on a Hub (or Broker) that has been closed.
	ErrClosed = errors.New("hub: closed")
	// ErrLinkDown is returned by Publish, and so by Broadcast, while the broker's link to its
	// engine is down. Local delivery is done all the same.
	ErrLinkDown = errors.New("hub: broker link down")
	// ErrLinkLost is what Gap.Err matches after the link was lost and came back.
	ErrLinkLost = errors.New("hub: broker link was lost")
)
