package natsbroker

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/hub/hubtest"
)

// engine is a NATS server in the test process, on a random port of 127.0.0.1 that it keeps
// across restarts. With a store directory it runs JetStream there, and its Brokers are
// Logs (Options.History).
type engine struct {
	srv   *server.Server
	port  int
	store string
}

func startEngine(t testing.TB) *engine {
	e := &engine{port: -1}
	e.start(t)
	t.Cleanup(func() { e.srv.Shutdown(); e.srv.WaitForShutdown() })
	return e
}

// startJetStream starts an engine with JetStream, its store in a directory of the test.
func startJetStream(t testing.TB) *engine {
	e := &engine{port: -1, store: t.TempDir()}
	e.start(t)
	t.Cleanup(func() { e.srv.Shutdown(); e.srv.WaitForShutdown() })
	return e
}

func (e *engine) start(t testing.TB) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: e.port, NoLog: true, NoSigs: true,
		JetStream: e.store != "", StoreDir: e.store,
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	e.srv = srv
	e.port = srv.Addr().(*net.TCPAddr).Port
}

func (e *engine) Link(t testing.TB) hub.Broker {
	b, err := Connect(e.srv.ClientURL(), &Options{History: e.store != ""})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *engine) Subscriptions(t testing.TB, topic string) int {
	subject := (&Broker{prefix: DefaultPrefix}).Subject(topic)
	sz, err := e.srv.Subsz(&server.SubszOptions{Subscriptions: true, Test: subject, Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range sz.Subs {
		if s.Subject == subject {
			n++
		}
	}
	return n
}

func (e *engine) Kill(testing.TB) {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

func (e *engine) Restart(t testing.TB) { e.start(t) }

func TestConformance(t *testing.T) { hubtest.Run(t, startEngine(t)) }

// TestConformanceHistory runs the suite with Brokers that also follow their topics' logs,
// which changes how they come back after the engine restarts.
func TestConformanceHistory(t *testing.T) {
	e := startJetStream(t)
	warm(t, e)
	hubtest.Run(t, e)
}

// warm makes the engine create the log streams, whose goroutines in the test process
// outlive the Brokers, before a test counts goroutines.
func warm(t testing.TB, e *engine) {
	t.Helper()
	b := e.Link(t).(*Broker)
	if err := b.Open(nopReceiver{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Subscribe(ctx, "warm"); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

type nopReceiver struct{}

func (nopReceiver) Receive(hub.Envelope) {}
func (nopReceiver) LinkDown(error)       {}
func (nopReceiver) LinkUp()              {}

func TestSubject(t *testing.T) {
	b := New(nil, &Options{Prefix: "p"})
	for topic, want := range map[string]string{
		"lobby":    "p.lobby",
		"Room_1-a": "p.Room_1-a",
		"a.b":      "p.~YS5i",
		"":         "p.~",
		"~":        "p.~fg",
		"a b*>":    "p.~YSBiKj4",
	} {
		if got := b.Subject(topic); got != want {
			t.Errorf("Subject(%q) = %q, want %q", topic, got, want)
		}
	}
}

// Forget restarts the engine on a store of its own, empty, as a server that lost its disk
// would come back (hubtest.Forgetter).
func (e *engine) Forget(t testing.TB) {
	e.Kill(t)
	e.store = t.TempDir()
	e.start(t)
}

// TestLogConformance runs hubtest's suite of rooms with history on JetStream, killed and
// restarted on its store, and restarted without it.
func TestLogConformance(t *testing.T) {
	e := startJetStream(t)
	warm(t, e)
	hubtest.RunLog(t, e)
}
