package hub

// SlowPolicy is what a broadcast does for a connection whose send queue is full: the
// connection is not keeping up, and the choice is between waiting for it, skipping it, or
// letting it go. Whatever the policy, the broadcast goes on to the other members at once.
type SlowPolicy uint8

// The policies.
const (
	// SlowBlock lets a member fall behind for a while: a message that finds the member's
	// queue full waits for room behind it, up to Options.BlockTimeout, and the member is
	// evicted as under SlowEvict if that message still has no room then, so that SlowBlock
	// never loses a message without a word. The wait is the member's own, so that one
	// member's stall is never another's delay: the messages waiting join that member's queue
	// past QueueLen, stamped with the time they arrived, and a timer of the member's evicts it
	// at the oldest one's deadline; the caller of Broadcast, the broker's delivery and the
	// other members never wait. The price is that SlowBlock slows no publisher down: a member
	// that stays more than QueueLen messages behind for BlockTimeout is closed, and meanwhile
	// it holds the messages it is behind by (QueueLen plus those broadcast in BlockTimeout,
	// at most; their bytes are shared with the other members).
	SlowBlock SlowPolicy = iota
	// SlowDrop discards the message for that connection and counts it in Stats.Dropped.
	SlowDrop
	// SlowEvict closes the connection at once with 1008 Policy Violation, reason "slow
	// consumer", and counts it in Stats.Evicted.
	SlowEvict
)

// String returns "block", "drop" or "evict".
func (p SlowPolicy) String() string {
	switch p {
	case SlowDrop:
		return "drop"
	case SlowEvict:
		return "evict"
	}
	return "block"
}
