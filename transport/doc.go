// Package transport is the protocol engine of ecows: a Conn that speaks RFC 6455 over any
// byte stream, in the client or the server role, once a handshake (package handshake) has
// produced the stream.
//
// It offers three levels, which can be mixed on one connection, message by message:
//
//   - Frames, as the seed eco.websocket has them: RecvFrame(timeout) and SendFrame, SendText,
//     SendBinary, SendPing, SendPong, SendClose. Fragments and control frames reach the caller.
//   - Messages: ReadMessage reassembles fragments into a reused buffer and handles control
//     frames on the way; WriteMessage fragments at MaxPayloadLen. ReadJSON and WriteJSON
//     carry JSON values in text messages.
//   - Streams: NextReader and NextWriter for messages too large to hold.
//
// The message and stream calls take a context first, as blocking calls do in Go: a context
// done before the call reads or writes nothing; one that ends during a read leaves the Conn
// usable (the next call resumes), while one that ends during a write cuts it and closes the
// Conn, since a half-sent frame cannot be finished. The frame calls keep the seed's shape:
// RecvFrame takes a timeout, and the Send methods are bounded by Options.WriteTimeout.
//
// For users of other packages: SetReadLimit changes the limit on received messages during the
// connection (gorilla's SetReadLimit); CloseRead reads for a Conn that only writes, answering
// pings and the close handshake (coder's CloseRead); ErrClosed also matches net.ErrClosed.
//
// A message is read to its end by the level that began it: a read call that would take over
// a message another level is in the middle of (RecvFrame returned its first fragment, or a
// ReadMessage timed out inside it) returns ErrReadMixed and reads nothing, so no byte is
// dropped. A message left unread by the reader NextReader returned is skipped by the next
// ReadMessage or NextReader, as that reader's doc says.
//
// Contracts: a read timeout never breaks the connection, the next call resumes where the
// byte stream stopped; any protocol violation by the peer sends the right close code and
// returns a typed error (*frame.ProtocolError, or *CloseError when the peer closed), and a
// read call's timeout bounds it even when it ends the connection (the close handshake
// finishes without the caller, within CloseTimeout), while a
// send that the caller got wrong (text that is not UTF-8, a fragmented control frame, a close
// code that may not be sent, a frame or message over a limit) is refused with a *UsageError,
// which blames nobody on the wire: it carries no close code and nothing is sent; the limits
// (MaxPayloadLen, MaxMessageLen) apply to what is sent as to what is received, and a peer's
// frame is checked from its header before its payload is read; WriteTimeout bounds a stall,
// not a write, so a large message to a slow reader goes through as long as bytes keep moving;
// a send returns the bytes it handed to the stream (some may wait up to Options.FlushDelay to
// go out with the frames after them), and 0 with its error when none reached the stream;
// steady-state reads and writes allocate nothing. Close runs the close handshake with a
// bounded wait; CloseNow does not.
//
// Memory and writes: a Conn borrows its read and write buffers from pools while data moves
// and gives them back when it waits, so an idle connection holds no buffer (on Unix, over
// net's TCP and Unix connections, it waits for input with syscall.RawConn.Read and borrows a
// buffer only once bytes have arrived). Between messages it gives back its reader state too,
// and Conns made from equal Options share their settings: an idle Conn weighs at most 160
// bytes on 64-bit platforms, besides the net.Conn under it. When a peer sends many messages
// at once, the frames written while more of its input waits are gathered and sent in one
// write as soon as the reader has caught up, or after Options.FlushDelay at the latest.
//
// Compression (permessage-deflate, RFC 7692) is on when the handshake agreed on it
// (Setup.Deflate; Options.Compression configures it): every read API returns inflated
// messages, MaxMessageLen bounds the inflated size as it inflates, and the message writes
// compress unless SetCompression turns it off. Without context takeover an idle connection
// holds no compression state; with it, see CompressionOptions.ContextTakeover for the cost.
//
// Measurements: Stats counts a Conn's frames and bytes; an Observer given in Setup (package
// metrics gives one through handshake.ServerOptions.Metrics) is told of every data message
// read or sent to its end, at every level, with its size before and after compression, of
// each Ping's round trip and of the close: the first close frame's code and side. It costs
// a Conn 112 bytes and a message nothing but the calls.
package transport

// Complexity budget, for those who change this package: a trick that trades simple code for
// memory or speed stays only while a benchmark of this package shows it gains at least 2%, memory on the heap of an idle
// connection (BenchmarkIdleConn: about 1 KiB with its socket), speed on the benchmark of the
// path it serves. The tricks kept, each with its benchmark and the cost of doing without it
// when last measured (medians; speed over several passes on a shared 2-core machine, where
// it varied by 15% or more from pass to pass):
//
//   - waiting idle in syscall.RawConn.Read, with no read buffer (rawread_unix.go):
//     BenchmarkIdleConn, 4.3 KiB per connection
//   - the reader state pooled between messages (reader.go): BenchmarkIdleConn, 200 B
//   - one config for the Conns of equal Options (config.go): BenchmarkIdleConn, 90 B
//   - what few Conns need, and the handshake's results, behind pointers (rare, extras):
//     BenchmarkIdleConn, 69 B and 54 B
//   - batches pooled rather than kept by their Conns (flush.go): BenchmarkIdleConn, 50 B
//   - the flags in one atomic word (Conn.state): BenchmarkIdleConn, 45 B
//   - times as integers on the monotonic clock (clockStart), cheaper to read than time.Now:
//     BenchmarkSendBinary/server/16B, 17-60% (and 16 B of Conn)
//   - the clock looked at on one read call in four while a batch waits (turnBegins):
//     BenchmarkEcho/16B, 6-26%
//   - pooled message writers (message_write.go): BenchmarkNextWriter/16B, 50% or more
//   - pooled vector writers (write.go): BenchmarkSendBinary/server/64KiB, 6x, and an
//     allocation per frame, which TestSteadyStateAllocs forbids
//
// The TryLocks are rules, not tricks: a reader never waits for a writer, which may itself wait
// for the peer to read what it sends (flushWaiting, turnBegins), and Close leaves the reading
// to a reader already blocked in it (tryLockRead).
//
// Package deflate keeps the same budget for compression: engines pooled per message rather
// than kept per connection (BenchmarkCompressedIdleConn in bench/: 2.7 KiB per idle
// connection without context takeover, against 1.2 MiB per connection for a kept engine),
// and at most 4 KiB of sent context to prime them with (BenchmarkCompressTakeover).
