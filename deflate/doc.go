// Package deflate compresses and inflates WebSocket messages as permessage-deflate (RFC 7692)
// has them, apart from any connection: package transport drives it for a Conn, and it can be
// used on its own, as a codec beside package frame.
//
// A Compressor compresses the messages one side sends and an Inflater inflates the messages it
// receives, one message at a time. Neither holds a DEFLATE engine between messages: each
// message borrows one from a pool, so that an idle connection holds none. With context
// takeover (RFC 7692 section 7.1.1) the only state kept between messages is the window: the
// last 2^bits bytes of the messages received (at most 32 KiB), and of those sent at most 4 KiB,
// with which the next message's engine is primed as a dictionary (priming with more costs far
// more time than it gains in ratio; references that reach less far are always allowed). A window smaller than 32 KiB (the
// max_window_bits parameters, 8 to 15 bits) is a real LZ77 window: back-references never reach
// further than it allows, and the memory kept follows it.
//
// An Inflater is fed the compressed bytes as they arrive, in pieces of any size, and inflates
// them in place: its memory follows the bytes received, never a length a header declares. The
// caller bounds the inflated size as it reads, which is how a deflate bomb is refused.
//
// The DEFLATE engine is github.com/klauspost/compress/flate, chosen by measurement
// (bench/flate_test.go): it is faster than compress/flate at the levels WebSockets use, its
// compressors are a third of the size, and only it can prime a pooled compressor with a new
// dictionary (ResetDict) and bound its window below 32 KiB.
package deflate
