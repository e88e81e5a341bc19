// Package reconnect keeps a WebSocket client connected: Run dials with handshake.Dial, runs
// the application's Session on each connection, and dials again when a connection ends or an
// attempt fails for a reason that may pass (a reset, a timeout, a 5xx answer, close codes
// such as 1001 Going Away or 1012 Service Restart), waiting a randomised, growing delay
// between attempts. It stops at a reason that another attempt would meet again (a 401 or 404
// answer, close codes such as 1008 Policy Violation), at a Session that returns nil, and when
// its context ends.
//
// The examples are the best way to understand how to use the package.
//
// Delays follow RFC 6455 section 7.2.3: the first retry waits a random time, so that clients
// dropped together by one server do not all come back at once, and later retries back off
// exponentially. Each delay is drawn uniformly from [0, min(MaxDelay, BaseDelay·2ⁿ⁻¹)) for
// the nth retry ("full jitter"), and a connection that stayed up for ResetAfter starts the
// count again.
package reconnect
