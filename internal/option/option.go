// Package option holds the rule every ecows Options struct follows, so that a value means the
// same in every package: zero asks for the default, a negative value for none (no limit, no
// timeout, off), and a positive value is taken as it is.
package option

import "time"

// Or returns def for a zero v, -1 ("none") for a negative v, and v otherwise.
func Or[T int | int64 | time.Duration](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return -1
	}
	return v
}
