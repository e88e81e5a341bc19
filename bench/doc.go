// Package bench holds side-by-side benchmarks of ecows against rival WebSocket libraries,
// each measuring the same operation the same way so that the numbers compare. It is a
// separate module, kept out of the main module's go.mod, so that a user who imports ecows
// never downloads the rivals.
//
// The package holds one echo server per library and API shape (servers_*.go, listed by
// Servers), each written as that library's documentation shows it, with compression off:
// ecows, gorilla/websocket, coder/websocket, gobwas/ws and lxzan/gws. Around them:
//
//   - cmd/echoserver runs one of them in a process of its own (-lib, -shape, -addr), with
//     /stats for memory and goroutine counts and optional CPU, allocation and live pprof
//     profiles.
//   - cmd/loadgen is the one load client for all of them (package internal/load): raw TCP, a
//     hand-written handshake and prebuilt masked frames, so it costs every server the same.
//     It runs the named scenarios (64 conns × 16 B, 64 × 1 KiB, 1,000 × 2,000 B, 4 × 64 KiB,
//     1 × 1 MiB) and reports messages/s, MB/s and latency percentiles, or opens N idle
//     connections and reports the server's heap, stack, RSS and goroutines per connection, or
//     (-latency) runs one latency scenario on one connection against the latency endpoints
//     every echoserver also serves (LatencyServers: /lat/work and /lat/push, see
//     internal/load's latency notes) and reports p50/p90/p99 reply latency.
//   - cmd/report turns the raw results into RESULTS.md.
//   - run.sh (quick: about 3-4 minutes; full: about 40) builds all that, runs every scenario
//     against every server in separate processes with the libraries interleaved round by
//     round, runs the in-process benchmarks once per round, the latency rounds (every latency
//     scenario against every library, rotated each round) and the 10,000-connection idle
//     runs, and writes RESULTS.md with the medians, ecows's ratio to the best rival and, for
//     latency, ecows's p50 and p99 as a multiple of gorilla's.
//   - BASE=<git rev> bench/run.sh quick measures a baseline ecows in the same run, to judge a
//     change against the commit before it on the same machine at the same time: run.sh checks
//     the commit out into a temporary git worktree (removed at exit), builds that tree's
//     cmd/echoserver (the baseline's own bench module, so the baseline's ecows) and runs its
//     ecows servers, labelled ecows@base/SHAPE, in every echo round beside the others, rotated
//     with them, and in the idle and latency rounds when a one-run probe shows the baseline's
//     echoserver serves what they need (an older one without the latency endpoints is left
//     out of those rounds, with a note). The main table is as without BASE; a section "Against
//     the baseline" gives, row by row, the baseline's ratio to the same best rival and the
//     change (ecows's ratio as a percentage of the baseline's, ✓ at 95% or more), and per
//     shape new vs base.
//
// The in-process benchmarks are light enough for CI, which runs each once
// (cd bench && go test -run '^$' -bench . -benchtime=1x ./...):
//
//   - BenchmarkEcho128: each server's own handler echoing masked 128-byte frames from memory
//     (ns, B and allocs per message, upgrade excluded).
//   - BenchmarkMask: ecows frame.Mask against gobwas ws.Cipher and copy(), 4 KiB and 1 MiB.
//   - BenchmarkUpgrade: the server handshake.
//   - BenchmarkCompressedEcho (compress_test.go): permessage-deflate on, each library's own
//     client and server over loopback TCP, one round trip of a 1 KiB JSON document or 64 KiB
//     of English-like text, with and without context takeover; it reports wireB/msg, the bytes
//     on the wire per message, and fails if a library did not compress.
//   - BenchmarkFlateDeflate and BenchmarkFlateInflate (flate_test.go): compress/flate against
//     github.com/klauspost/compress/flate on the same messages, per message on its own,
//     primed with the 32 KiB sent before (context takeover kept as a window only) and with a
//     1 KiB window; they report the compressed size as a fraction ("ratio").
//     TestFlateWriterSize logs the heap of one compressor and decompressor of each.
//   - BenchmarkH2Echo and BenchmarkH2IdleConn (h2_test.go): WebSockets over HTTP/2 (RFC 8441)
//     beside HTTP/1.1, ecows at both ends over TLS: msgs/s and p50 of one socket echoing 1 KiB,
//     and heap, stacks and goroutines per idle socket (both ends; 1,000 sockets, 50 under
//     -short).
//   - BenchmarkLatency (latency_test.go): reply latency, p50/p90/p99 in µs, in the four
//     latency scenarios of internal/load (server push every 1 ms; reply then 2 ms of busy work,
//     1 or 4 requests per burst; request/response with no work), each library's latency
//     handlers (LatencyServers, servers_*.go) in a child process, one connection.
//   - BenchmarkBroadcast (broadcast_test.go; 10,000 clients not under -short): one message to
//     1,000 or 10,000 raw clients in a child process, with each library's broadcast (ecows's
//     hub, gorilla's PreparedMessage, gws's Broadcaster, melody), and with permessage-deflate
//     negotiated, without and with context takeover, for ecows's hub and gws's Broadcaster
//     (-deflate, -deflate-takeover): those clients inflate and check every message. It
//     reports msgs/s, wireB/msg (bytes each member received per message) and compressed/msg
//     (the share that came compressed).
//   - BenchmarkHistoryBroadcast (history_test.go): broadcasts to one room with the room's
//     history (hub.Options.History) off and on, on one node (the hub's own Bus) and on two
//     nodes through NATS JetStream (a server in the process) and Redis Streams (redis-server
//     from the system on a free port; skipped without it unless CI is set), 16 members per
//     node over net.Pipe reading everything. It reports broadcasts/s, deliveries/s and the
//     latency from Publish to a member, p50-µs and p99-µs; allocs/op is the whole process's
//     per broadcast, the NATS server's included.
//   - BenchmarkCompressedIdleConn (compress_idle_test.go; skipped under -short; run.sh runs
//     it): server heap, stack and goroutines per idle compressed connection, 1,000
//     connections (ECOWS_BENCH_IDLECONNS) per library and agreement: no context takeover,
//     takeover with 2^15 windows, takeover with 2^10 windows; each connection has sent and
//     received 33 compressed 1 KiB messages, so that both windows are full. The raw clients
//     run in a child process (TestIdleClients), so that the heap is the server's alone and
//     10,000 connections fit an open-file limit of 20,000. A library whose answer does not
//     agree to a mode is not measured: a "--- SKIP: NAME: REASON" line quotes its answer. Run
//     it alone with go test -run '^$' -bench CompressedIdleConn -benchtime 1x.
//
// Nothing heavy (thousands of connections, multi-second load runs) runs under go test: those
// live in run.sh only. TestEchoServers (`go test ./...`, a few seconds) drives every server
// over loopback with the load client checking every echoed byte.
package bench
