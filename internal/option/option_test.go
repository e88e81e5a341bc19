package option

import (
	"testing"
	"time"
)

func TestOr(t *testing.T) {
	for _, tc := range []struct{ v, def, want time.Duration }{
		{0, 5, 5},
		{-1, 5, -1},
		{-7, 5, -1},
		{3, 5, 3},
	} {
		if got := Or(tc.v, tc.def); got != tc.want {
			t.Errorf("Or(%v, %v) = %v, want %v", tc.v, tc.def, got, tc.want)
		}
	}
	if got := Or(int64(0), 1<<20); got != 1<<20 {
		t.Errorf("Or(int64 0) = %v", got)
	}
}
