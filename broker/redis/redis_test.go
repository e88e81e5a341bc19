package redisbroker

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/hub/hubtest"
)

// engine is a redis-server from the system, started by the test on a free port of
// 127.0.0.1 with a temporary directory, and killed at the end. Without persist it keeps
// nothing on disk; with it, it logs every write (AOF, fsync always) and loads the log when
// restarted.
type engine struct {
	bin, dir string
	port     int
	persist  bool
	cmd      *exec.Cmd
	admin    *redis.Client
}

func startEngine(t *testing.T) *engine { return startEngineWith(t, false) }

func startEngineWith(t *testing.T, persist bool) *engine {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed (apt-get install -y redis-server)")
		}
		t.Skip("redis-server is not installed (apt-get install -y redis-server)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{bin: bin, dir: t.TempDir(), port: ln.Addr().(*net.TCPAddr).Port, persist: persist}
	ln.Close()
	e.start(t)
	e.admin = redis.NewClient(&redis.Options{Addr: e.addr(), MaxRetries: -1})
	t.Cleanup(func() {
		e.admin.Close()
		e.kill()
	})
	return e
}

func (e *engine) addr() string { return "127.0.0.1:" + strconv.Itoa(e.port) }

func (e *engine) start(t testing.TB) {
	t.Helper()
	aof := []string{"--appendonly", "no"}
	if e.persist {
		aof = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	e.cmd = exec.Command(e.bin, append([]string{"--port", strconv.Itoa(e.port), "--bind", "127.0.0.1",
		"--dir", e.dir, "--save", "", "--logfile", ""}, aof...)...)
	e.cmd.Stdout, e.cmd.Stderr = nil, nil
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: e.addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *engine) kill() {
	if e.cmd != nil {
		e.cmd.Process.Kill()
		e.cmd.Wait()
		e.cmd = nil
	}
}

func (e *engine) Link(t testing.TB) hub.Broker {
	c := redis.NewClient(&redis.Options{Addr: e.addr(), MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return New(c, &Options{HealthCheck: 200 * time.Millisecond})
}

func (e *engine) Subscriptions(t testing.TB, topic string) int {
	channel := New(nil, nil).Channel(topic)
	n, err := e.admin.PubSubNumSub(context.Background(), channel).Result()
	if err != nil {
		t.Fatal(err)
	}
	return int(n[channel])
}

func (e *engine) Kill(testing.TB) { e.kill() }

func (e *engine) Restart(t testing.TB) { e.start(t) }

func TestConformance(t *testing.T) { hubtest.Run(t, startEngine(t)) }

// Forget restarts the engine in a directory of its own, empty, as a server without its
// append-only file would come back (hubtest.Forgetter).
func (e *engine) Forget(t testing.TB) {
	e.kill()
	e.dir = t.TempDir()
	e.start(t)
}

// TestLogConformance runs hubtest's suite of rooms with history on Redis Streams, persisted
// (AOF, fsync always) so that a kill and restart loses nothing, and restarted without it.
func TestLogConformance(t *testing.T) { hubtest.RunLog(t, startEngineWith(t, true)) }
