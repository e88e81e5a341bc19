package natsbroker

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/hub/hubtest"
)

// engine is a NATS server in the test process, on a random port of 127.0.0.1 that it keeps
// across restarts.
type engine struct {
	srv  *server.Server
	port int
}

func startEngine(t testing.TB) *engine {
	e := &engine{port: -1}
	e.start(t)
	t.Cleanup(func() { e.srv.Shutdown(); e.srv.WaitForShutdown() })
	return e
}

func (e *engine) start(t testing.TB) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: e.port, NoLog: true, NoSigs: true})
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
	b, err := Connect(e.srv.ClientURL(), nil)
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
