// Package wstest holds the test helpers that the tests of several ecows packages share: a
// check that a test leaves no goroutine behind (CheckGoroutines, WaitGoroutines), readings of
// the heap (LiveHeap, SampleHeap), a TCP connection over 127.0.0.1 (TCPPair), a buffer that a
// logger writes to while the test reads it (Buffer), and the handshake's accept key computed
// apart from handshake (AcceptKey).
//
// It imports only the standard library, so that every package's tests can use it, transport's
// and handshake's own in-package tests included: a helper that needs an ecows package would
// make that package's tests an import cycle. Such helpers live in subpackages that say what
// they import: dialtest (handshake, transport) dials test servers, echotest (transport) echoes
// a Conn's messages.
//
// Helpers that take a testing.TB call t.Helper, release what they make with t.Cleanup, and
// wait a bounded time (generous, for a busy machine) before they fail the test.
package wstest
