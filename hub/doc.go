// Package hub broadcasts WebSocket messages to rooms of connections, on one node or across
// many through a Broker.
//
// A Hub keeps rooms (topics) that connections join and leave; a connection leaves every room
// when it closes. Broadcast encodes the frame once and hands the same bytes to every member
// of a room (BroadcastExcept skips the sender, Send reaches one connection); BroadcastJSON
// and BroadcastText do the same for a value encoded as JSON and for a string. Each
// connection has a bounded send queue drained by a writer goroutine of its own, so that one
// stuck client never delays the others; what happens when a queue is full is the hub's
// SlowPolicy: SlowBlock (the connection's messages wait for it, up to a timeout, then it is
// closed with 1008), SlowDrop (count and go on) or SlowEvict (1008 at once). No policy makes
// a broadcast wait. Every write runs under the connection's write deadline
// (transport.Options.WriteTimeout). An idle connection's queue holds no message and no array
// grown by a burst.
//
// The hub knows connections, not routes: package router's Rooms middleware puts the
// connections of a route in rooms, and its Router.CloseOnShutdown makes the router's Shutdown
// close the hub too.
//
// # Scale-out
//
// A Hub on each node, all on one Broker engine (an in-process Bus by default; NATS and Redis
// adapters live in their own modules, github.com/ecows/ecows/broker/nats and .../redis),
// share rooms: the hub subscribes its node to a topic when the first local member joins and
// unsubscribes, after Options.UnsubscribeDelay, when the last one leaves. Broadcast delivers
// to the local members first, which never depends on the broker, then publishes an Envelope
// for the other nodes; a node drops its own envelopes when they come back. The guarantees:
//
//   - Per topic, the messages of one publishing node reach every member in the order they were
//     published (each carries a sequence number per origin and topic).
//   - Delivery is at most once: a lost, duplicate or late envelope is never delivered twice.
//   - There is no total order across nodes: two nodes' messages may interleave differently at
//     different receivers.
//   - While the engine is down, Broadcast delivers locally and fails fast with ErrLinkDown
//     for the remote part. When the engine is back, the broker restores the subscriptions and
//     the hub reports the gap on every subscribed topic to Options.OnGap. A skipped sequence
//     number (an envelope lost on the way) is reported the same way, with the numbers.
//
// # Rooms that remember
//
// With Options.History, every room has a history: the broker's engine keeps each room's
// messages in a log (a Broker that is a Log: the Bus, NATS JetStream, Redis Streams), bounded
// by count and by age, and gives each a Position, an epoch and an offset that grows by one per
// message, the same on every node. Publish returns it, HistoryOptions.Stamp (StampJSON) puts
// it in what members receive, Since reads the history, and JoinSince resumes a client that
// comes back with its last position. The guarantees change with it:
//
//   - Every node delivers a room's messages in the log's order, its own included: local
//     members get a message once the engine has it, and all members of a room, on every node,
//     get one order (a total order across nodes, the engine's).
//   - Delivery to a node is at least once from the engine and exactly once to its members:
//     what a node's subscription missed (a lost link, a slow node, an envelope lost on the
//     way) it reads from the log, and what it got twice it drops, by offset and by the
//     origin's numbering. When the log cannot be read for a while, the node holds back the
//     room's later messages and reads again, with waits growing to 2 s, rather than skip
//     what the log still has. A message whose Append failed after it reached the engine (a
//     lost answer) is in doubt: it is appended again (by the next Publish to the room, at
//     LinkUp, or by the hub itself after waits growing to 2 s), and the node's later messages
//     wait behind it, so that its order holds whichever copy the log has.
//   - A client that resumes with JoinSince from the last position it saw gets every message
//     after it, then the live ones, nothing twice, as long as the history reaches back;
//     otherwise it joins all the same and JoinSince returns a *NotRecoverableError, for the
//     application to resynchronise it.
//   - While a node's link is down, what it broadcasts goes to its local members at once (or,
//     behind a message in doubt, once that one is back from the log), in its order, with no
//     position, and waits in its outbox (HistoryOptions.Outbox) to be appended when the link
//     is back; the other nodes then get it. Only what the log no longer holds when a node
//     comes to read it (or an outbox that overflowed) is lost, and OnGap names it: the
//     positions First..Last of Epoch, or the origin's numbers.
//
// The package hubtest holds the conformance suite that every Broker must pass (Run), and the
// one of rooms with history that every Log must pass (RunLog).
//
// Stats reports the counts and the queues; with Options.Metrics set, a metrics.Recorder
// samples them whenever it is read (ecows_hub_* in Prometheus), so a broadcast pays nothing
// for it.
//
// The examples are the best way to understand how to use the package.
package hub
