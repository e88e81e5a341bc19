package load

import (
	"testing"
	"time"
)

// The request and reply layouts are shared by the client and every library's handlers.
func TestLatencyWireFormat(t *testing.T) {
	var req [LatencyRequestLen]byte
	req[7] = 42               // seq
	req[10], req[11] = 7, 208 // 2,000 µs
	seq, work, ok := ParseLatencyRequest(req[:])
	if !ok || seq != 42 || work != 2*time.Millisecond {
		t.Fatalf("ParseLatencyRequest = %d, %v, %v", seq, work, ok)
	}
	if _, _, ok := ParseLatencyRequest(req[:15]); ok {
		t.Fatal("a short request parsed")
	}
	if n := len(AppendLatencyReply(nil, 1, -1, 2)); n != LatencyReplyLen {
		t.Fatalf("reply of %d bytes, want %d", n, LatencyReplyLen)
	}
}
