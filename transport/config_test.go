package transport

import (
	"testing"
	"time"
)

func TestConfigShared(t *testing.T) {
	a := configFor(&Options{MaxPayloadLen: 1 << 20, WriteTimeout: time.Second})
	if b := configFor(&Options{MaxPayloadLen: 1 << 20, WriteTimeout: time.Second}); a != b {
		t.Error("equal Options give different configs")
	}
	if b := configFor(&Options{MaxPayloadLen: 1 << 20, WriteTimeout: 2 * time.Second}); a == b {
		t.Error("different Options share a config")
	}
	// The defaults are filled in before comparing: zero and the default value are equal.
	if configFor(&Options{}) != configFor(&Options{MaxPayloadLen: DefaultMaxPayloadLen}) {
		t.Error("the zero Options and the explicit defaults give different configs")
	}
	ping := func(*Conn, []byte) error { return nil }
	p1 := configFor(&Options{PingHandler: ping})
	p2 := configFor(&Options{PingHandler: ping})
	if p1 == p2 || p1.onPing == nil {
		t.Error("Options with handlers share a config, or lose the handler")
	}
	got := configFor(&Options{MaxPayloadLen: 7, PongHandler: ping})
	if got.maxPayload != 7 || got.onPong == nil || got.maxMessage != DefaultMaxMessageLen {
		t.Errorf("config with handlers: %+v", got.limits)
	}
}

func TestConfigSharedBounded(t *testing.T) {
	for i := range 3 * maxShared {
		cf := configFor(&Options{MaxPayloadLen: int64(1000 + i)})
		if cf.maxPayload != int64(1000+i) {
			t.Fatalf("config %d has MaxPayloadLen %d", i, cf.maxPayload)
		}
	}
	if n := nShared.Load(); n > maxShared {
		t.Errorf("%d shared configs, more than %d", n, maxShared)
	}
}
