// Package reliability holds ecows' tests of load, faults and hostile input, end to end over
// TCP on 127.0.0.1: an ecows server (router, middleware, handshake, transport) and clients
// dialled with handshake.Dial or written byte by byte. It has no code of its own beyond this
// comment; everything is in the tests.
//
// What the tests check:
//
//   - Load: many concurrent connections echo sequence-numbered, checksummed messages for a
//     bounded time; every message must come back once, intact and in order, and afterwards the
//     goroutine count returns to its baseline and the heap close to it.
//   - Faults: a peer reset in the middle of a frame, a half-open peer found by keepalive, a
//     reader that stops reading (write timeout, bounded memory), a handshake sent one byte per
//     second (the header timeout of "ecows serve"), a close while 16 goroutines send, and
//     router.Shutdown under load, which must lose no message a write had accepted.
//   - Hostile input: oversized request headers, hundreds of subprotocol and extension tokens,
//     a frame declaring 2^63-1 bytes, a ping flood from a peer that never reads, a message in
//     1-byte fragments, and cross-origin upgrades.
//   - Memory per connection: a frame header declaring 64 KiB, 1 MiB or 16 MiB with the payload
//     never sent (plain and compressed, RecvFrame and ReadMessage), and what an idle
//     connection keeps after a compressed message, after a 1 MB message on router.Text and
//     router.JSON, and with 13.5 KiB of upgrade headers; live heap and RSS per connection,
//     held to 64 KiB beyond the bytes received and to 16 KiB over a plain idle connection.
//   - Fuzzing: the server handshake and the client handshake over real TCP connections.
//
// The load test runs at the CI size by default (1,000 connections for 10 s) and is skipped
// under -short. ECOWS_LOAD_CONNS and ECOWS_LOAD_DURATION change its size; the full size is
//
//	ECOWS_LOAD_CONNS=10000 ECOWS_LOAD_DURATION=30s go test -run TestLoad -v -timeout 10m ./internal/reliability
//
// The clients run in a child process (the test binary again), so that each process needs one
// file descriptor per connection and the server's memory is measured alone; the test raises
// RLIMIT_NOFILE itself and fails with the numbers when the hard limit forbids it. Run the full
// size without -race: the race detector's overhead, not ecows, is then the limit.
// ECOWS_LOAD_HEAPPROFILE=file writes the server's heap profile with every connection open.
//
// The memory tests (TestMemoryDeclaredFrame, TestMemoryIdle) also run their 1,000 clients in a
// child process; each case logs one "memory per connection:" line and each test a Markdown
// table. memory_test.go explains the measurement, its safety ceiling and what -race changes:
//
//	go test -run 'TestMemory(DeclaredFrame|Idle)$' -v -timeout 30m ./internal/reliability
//
// The tests of the header timeout, the header size limit and the default origin check run
// against the real "ecows serve" command, which they build once into a temporary directory, so
// that they test the http.Server configuration users get.
package reliability
