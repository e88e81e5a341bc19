package hub

import (
	"errors"
	"strconv"
	"strings"
)

// Position is where a message stands in its room's history. Offset counts the room's
// messages from 1, one more for each, in one order that every node sees; Epoch names the
// history's lifetime and changes when the history starts again from nothing (its engine lost
// it), so that an offset of an earlier history is never taken for one of the new. The zero
// Position is before the first message of any history.
type Position struct {
	Epoch  string
	Offset uint64
}

// ErrPosition is returned by ParsePosition and UnmarshalText for text that is not a Position.
var ErrPosition = errors.New("hub: malformed position")

// IsZero reports whether p is the zero Position.
func (p Position) IsZero() bool { return p == Position{} }

// String returns p as "epoch:offset", the form ParsePosition reads; "" for the zero Position.
func (p Position) String() string {
	if p.IsZero() {
		return ""
	}
	return p.Epoch + ":" + strconv.FormatUint(p.Offset, 10)
}

// ParsePosition parses what String returns; "" is the zero Position.
func ParsePosition(s string) (Position, error) {
	if s == "" {
		return Position{}, nil
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Position{}, ErrPosition
	}
	off, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil || s[i+1] == '+' {
		return Position{}, ErrPosition
	}
	return Position{Epoch: s[:i], Offset: off}, nil
}

// MarshalText implements encoding.TextMarshaler, as String.
func (p Position) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler, as ParsePosition.
func (p *Position) UnmarshalText(b []byte) error {
	q, err := ParsePosition(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}
