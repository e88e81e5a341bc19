// Package conformance holds a protocol conformance suite for ecows that does what the
// Autobahn|Testsuite does: it runs every case group's checks against the ecows server and the
// ecows client, without Python, Docker or another WebSocket library. The bar it sets is the one
// users set for a library: every Autobahn case passing as "OK", none "FAILED" and none
// "NON-STRICT". The package has no API; it is all tests.
//
// # Roles
//
// TestServer runs the cases against an echo server built as examples/autobahn/server is:
// handshake.Upgrade with MaxPayloadLen and MaxMessageLen raised to 16 MiB, then ReadMessage and
// WriteMessage with the message's opcode. The suite is a raw TCP client: it writes the upgrade
// request by hand, checks the 101 and its Sec-WebSocket-Accept, and sends masked frames built
// with package frame.
//
// TestClient runs the same cases against an echo client made with handshake.Dial and the same
// limits. The suite is a raw TCP server on 127.0.0.1: it reads the request, answers the 101 by
// hand, sends unmasked frames, and requires every frame from the client to be masked.
//
// # Cases
//
// A case is a list of steps, each a burst of frames written whole, one write per frame
// ("frame-wise chops") or in chops of n bytes, optionally followed by a pause; plus what the
// testee must send back, in order and byte-exact (reassembled messages with their opcode,
// pongs), and how the connection must end. The close must come from the suite (after the
// expected events, with 1000, as Autobahn's "closedByMe") or from the testee (a failed
// connection, with one of the case's close codes). Then the TCP connection must end cleanly:
// the server closes first; in the server role the suite reads to EOF within 2 s; in the
// client role the client must not close before the suite's FIN and must close within 2 s of
// it. An EOF is required: a reset fails the case. Last, the testee's goroutine must return.
//
// TestServerH2 and TestClientH2 run every case over HTTP/2 (RFC 8441, h2c, one connection per
// case): the suite sends or answers an extended CONNECT and speaks the same frames on the
// stream, whose end (END_STREAM) stands for the FIN. net/http's handlers cannot half-close a
// stream, so a server ends its whole stream where it would half-close TCP: the suite drops
// what it writes after that, and in the client role it checks that the client returns once
// the suite has ended the stream rather than that it closes on a FIN.
//
// Autobahn gives a testee 1 s (killAfter(1)) after the offending bytes; so does the suite.
// Fail-fast steps (the 6.4.x cases and the "-bytewise" UTF-8 variants) send the bytes up to
// the offending one and withhold the rest: the testee's close must arrive within 1 s. Where
// Autobahn pauses 1 s to see that the connection stays open, the suite pauses 100 ms.
//
// Each case is held to Autobahn's "OK" outcome; a "NON-STRICT" outcome (failing late, a missing
// echo before a failure) fails here. The close codes accepted are Autobahn's for the case, but
// an absent close frame, which Autobahn tolerates where it does not require a clean close, is
// never accepted.
//
// # Groups
//
// Subtests are named group then case: go test -run 'Server/6' runs group 6 against the server,
// -run 'Client/7-close/7.9.1' one case against the client (use 'Server/^1-' to leave out 10).
// Case ids are Autobahn's; ids starting with "x-", and "-bytewise" or "-slow-answer" variants,
// are checks beyond Autobahn.
//
//	1-framing         1.1.1-1.2.8   text and binary of 0, 125, 126, 127, 128, 65535, 65536 bytes, and in chops
//	2-pings           2.1-2.11      ping payloads echoed in pongs, 126 bytes -> 1002, unsolicited pongs, 10 pings; x-: every length 0-125
//	3-reserved-bits   3.1-3.7       RSV bits without an extension -> 1002, alone and after an echo; x-: ping, pong, continuation
//	4-opcodes         4.1.1-4.2.5   reserved opcodes 3-7 and 11-15 -> 1002, alone and after an echo
//	5-fragments       5.1-5.20      control frames between fragments, fragmented control frames, continuations without a message; x-: split at every byte
//	6-utf8            6.1.1-6.23.7  empty and fragmented text, fail fast (6.4.x), Markus Kuhn's table (6.5-6.23, whole and 1-byte fragments)
//	7-close           7.1.1-7.13.2  close handshake, data after close, payload and reason rules, valid and invalid codes
//	9-limits          9.1.1-9.8.6   messages up to 16 MiB in one frame, in fragments of 64 B-4 MiB, in chops, 1000 round trips
//	10-autofragment   10.1.1        a 64 KiB message in fragments of 1300 bytes (x-: other sizes) is echoed whole
//
// Informational cases are held to their "OK" outcome: 7.1.6 must echo both messages, and 7.13.1
// and 7.13.2 (codes 5000 and 65535) must be refused with 1002, as ecows documents.
//
// Group 9 runs Autobahn's largest sizes once, to keep the suite fast: 16 MiB of text in one
// frame (9.1.6), 4 MiB of text in 64-byte fragments (9.3.1) and 1000 round trips (9.7.1,
// 9.8.6); its other cases cap messages at 1 MiB and make 100 round trips. Pass -full
// (go test ./internal/conformance -run '/9-' -args -full) to run every case at full size.
//
// # Compression: groups 12 and 13
//
// TestServerDeflate and TestClientDeflate run Autobahn's permessage-deflate groups (RFC
// 7692) against testees made as examples/autobahn makes them with -compress on and with
// -compress takeover; the subtests are named group-mode, then case:
// go test -run 'ServerDeflate/13-deflate-params-takeover/13.3.8'. Each case is one
// connection: the suite negotiates by hand (as a client it offers, as a server it answers,
// and it checks the testee's side of the negotiation against RFC 7692 and the mode), then
// sends compressed messages one at a time, each the next slice of a data set, and checks
// each echo byte for byte, then the close handshake and the TCP end as above.
//
//	12-deflate         12.1.1-12.2.10  JSON text at Autobahn's 18 sizes (16 B-128 KiB, 8 with the suite's payloads in fragments), binary at its 10 unfragmented ones; x-: 256 KiB text, 512 KiB binary
//	13-deflate-params  13.1.1-13.7.8   Autobahn's 7 parameter sets (default, no context takeover, window bits 8 and 15, both, a list of offers) at 16 B, 256 B, 4 KiB and 32 KiB; x-: the suite's side without takeover or with small windows, window bits 8-14 on both sides, mixes
//
// The suite's deflate is its own, independent of the testee's: compress/flate inflates, with
// the testee's window (the last 2^bits bytes of its earlier messages) as the dictionary only
// where the agreement lets the testee keep its context; compress/flate compresses for a
// 15-bit window, and a fixed-Huffman encoder of the suite's own for smaller ones, whose
// messages refer exactly as far back as the window allows (the data is seeded to repeat at
// that distance) and never further. Every compressed message from the testee is also walked
// token by token (a DEFLATE walker with tests of its own against compress/flate), and fails
// the case if a back-reference reaches further than the agreed window, or, without context
// takeover, into an earlier message. Echoes of 1 KiB or more must come back compressed.
// Cases send up to 16 messages, about 16 KiB in all (at least 2 up to 64 KiB, one beyond).
//
// TestMain checks that no goroutine outlives the suite.
package conformance
