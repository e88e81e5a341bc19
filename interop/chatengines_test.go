package interop

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/redis/go-redis/v9"

	natsbroker "github.com/ecows/ecows/broker/nats"
	redisbroker "github.com/ecows/ecows/broker/redis"
	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/hub/hubtest"
)

// chatEngine is a message engine that the chat's nodes share, and that a test kills and
// restarts. Its Brokers are hub.Logs, as the chat's rooms keep history.
type chatEngine interface {
	Link(t testing.TB) hub.Broker
	hubtest.Restarter
}

// chatEngines are the engines TestChromiumChat runs on, each started for one subtest.
var chatEngines = []struct {
	name  string
	start func(t *testing.T) chatEngine
}{
	{"fake", func(*testing.T) chatEngine { return hubtest.NewFake() }},
	{"nats", startJetStream},
	{"redis", startRedis},
}

// jetStream is a NATS server with JetStream in the test process, on a port of 127.0.0.1 and
// a store directory that it keeps across restarts, so that the logs survive them.
type jetStream struct {
	srv   *server.Server
	port  int
	store string
}

func startJetStream(t *testing.T) chatEngine {
	e := &jetStream{port: -1, store: t.TempDir()}
	e.Restart(t)
	t.Cleanup(func() { e.Kill(t) })
	return e
}

func (e *jetStream) Link(t testing.TB) hub.Broker {
	b, err := natsbroker.Connect(e.srv.ClientURL(), &natsbroker.Options{History: true})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Kill shuts the server down; shutting down an already stopped server does nothing, so the
// cleanup may follow a Kill.
func (e *jetStream) Kill(testing.TB) {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

func (e *jetStream) Restart(t testing.TB) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: e.port, NoLog: true, NoSigs: true, JetStream: true, StoreDir: e.store,
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start within 10 s")
	}
	e.srv = srv
	e.port = srv.Addr().(*net.TCPAddr).Port // the first start chose it; restarts keep it
}

// redisServer is Debian's redis-server, started on a free port of 127.0.0.1 with a directory
// of the test, where it logs every write (AOF, fsync always) and which it loads when
// restarted, so that the logs survive a kill.
type redisServer struct {
	bin, dir string
	port     int
	cmd      *exec.Cmd
}

func startRedis(t *testing.T) chatEngine {
	require(t, "redis-server", "apt-get install -y redis-server (or run interop/ci.sh)", func() string {
		if _, err := exec.LookPath("redis-server"); err != nil {
			return err.Error()
		}
		return ""
	})
	bin, _ := exec.LookPath("redis-server")
	ln := listen(t)
	e := &redisServer{bin: bin, dir: t.TempDir(), port: ln.Addr().(*net.TCPAddr).Port}
	ln.Close()
	e.Restart(t)
	t.Cleanup(func() { e.Kill(t) })
	return e
}

func (e *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(e.port) }

// client returns a client that fails at once while the server is down, rather than retry.
func (e *redisServer) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: e.addr(), MaxRetries: -1})
}

func (e *redisServer) Link(t testing.TB) hub.Broker {
	c := e.client()
	t.Cleanup(func() { c.Close() }) // the Broker leaves its client open
	// A short health check sees the kill soon.
	return redisbroker.New(c, &redisbroker.Options{HealthCheck: 200 * time.Millisecond})
}

// Kill kills the server, as a crash would; killing it again does nothing.
func (e *redisServer) Kill(testing.TB) {
	if e.cmd != nil {
		e.cmd.Process.Kill()
		e.cmd.Wait()
		e.cmd = nil
	}
}

func (e *redisServer) Restart(t testing.TB) {
	t.Helper()
	e.cmd = exec.Command(e.bin, "--port", strconv.Itoa(e.port), "--bind", "127.0.0.1",
		"--dir", e.dir, "--save", "", "--logfile", "", "--appendonly", "yes", "--appendfsync", "always")
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); c.Ping(context.Background()).Err() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not answer within 10 s")
		}
	}
}
