// Package dialtest dials the WebSocket servers that ecows' tests start, for the tests of
// packages above handshake.
//
// It is apart from wstest because it imports handshake and transport: wstest serves the
// in-package tests of transport and handshake too, which could not import it then.
package dialtest
