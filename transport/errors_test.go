package transport

import (
	"errors"
	"fmt"
	"net"
	"testing"
)

func TestErrClosedMatchesNetErrClosed(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		ecows     bool // errors.Is(err, ErrClosed)
		netClosed bool // errors.Is(err, net.ErrClosed)
	}{
		{"ErrClosed", ErrClosed, true, true},
		{"wrapped ErrClosed", fmt.Errorf("send: %w", ErrClosed), true, true},
		{"net.ErrClosed", net.ErrClosed, false, true},
		{"other error", errors.New("websocket: connection closed"), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, ErrClosed); got != tt.ecows {
				t.Errorf("errors.Is(err, ErrClosed) = %v, want %v", got, tt.ecows)
			}
			if got := errors.Is(tt.err, net.ErrClosed); got != tt.netClosed {
				t.Errorf("errors.Is(err, net.ErrClosed) = %v, want %v", got, tt.netClosed)
			}
		})
	}
	// A send on a closed Conn returns ErrClosed itself, which both tests recognise.
	c, _ := connPair(t, false, nil)
	c.CloseNow()
	if _, err := c.SendText([]byte("late")); err != ErrClosed || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("SendText after CloseNow: %v, want ErrClosed matching net.ErrClosed", err)
	}
}
