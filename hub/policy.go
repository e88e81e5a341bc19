package hub

// Policy is what a broadcast does for a connection whose send queue is full: the connection
// is not keeping up, and the choice is between waiting for it, skipping it, or letting it go.
// Whatever the policy, the other members have had the message already.
type Policy uint8

// The policies.
const (
	// Block waits up to Options.BlockTimeout for room in the queue, holding up the caller of
	// Broadcast (or the broker's delivery), not the other members. A connection still full
	// then is closed as under Close, so that Block never loses a message without a word.
	Block Policy = iota
	// Drop discards the message for that connection and counts it in Stats.Dropped.
	Drop
	// Close closes the connection at once with 1008 Policy Violation, reason "slow
	// consumer", and counts it in Stats.Evicted.
	Close
)

// String returns "block", "drop" or "close".
func (p Policy) String() string {
	switch p {
	case Drop:
		return "drop"
	case Close:
		return "close"
	}
	return "block"
}
