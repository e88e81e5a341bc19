package interop

import (
	"context"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
)

// pingPeers are the peer servers Ping is run against; each answers pings on /echo/*.
var pingPeers = []struct {
	name    string
	require func(t *testing.T)
	server  func(t *testing.T) *peerServer
}{
	{"gorilla", func(*testing.T) {}, gorillaServer},
	{"coder", func(*testing.T) {}, coderServer},
	{"ws", requireNodeWS, func(t *testing.T) *peerServer {
		setupCert(t)
		return startServerProc(t, nil, "node", "peers/ws_peer.js", "server", certFile, keyFile)
	}},
	{"websockets", requirePythonWebsockets, func(t *testing.T) *peerServer {
		setupCert(t)
		env := []string{"PYTHONHASHSEED=0", "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8"}
		return startServerProc(t, env, python, "peers/websockets_peer.py", "server", certFile, keyFile)
	}},
}

// TestPingRTT checks that Ping's ping is answered by each peer server with the pong that
// echoes it, while the ecows client reads messages in another goroutine, and that a message
// exchange on the same connection goes on around the pings.
func TestPingRTT(t *testing.T) {
	for _, p := range pingPeers {
		t.Run(p.name, func(t *testing.T) {
			p.require(t)
			srv := p.server(t)
			c := dial(t, srv.url+"/echo/ping-rtt", nil)
			msgs := make(chan []byte, 4)
			readDone := make(chan error, 1)
			go func() {
				for {
					_, m, err := c.ReadMessage(context.Background(), nil)
					if err != nil {
						readDone <- err
						return
					}
					msgs <- m
				}
			}()
			for i := 0; i < 3; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
				rtt, err := c.Ping(ctx)
				cancel()
				if err != nil {
					t.Fatalf("ping %d: %v", i, err)
				}
				if rtt <= 0 || rtt > scenarioTimeout {
					t.Fatalf("ping %d: rtt %v", i, rtt)
				}
				t.Logf("ping %d: %v", i, rtt)
				if _, err := c.WriteMessage(context.Background(), frame.OpText, []byte(textMsg)); err != nil {
					t.Fatal(err)
				}
				select {
				case m := <-msgs:
					if string(m) != textMsg {
						t.Fatalf("echo %q", m)
					}
				case err := <-readDone:
					t.Fatalf("read: %v", err)
				case <-time.After(scenarioTimeout):
					t.Fatal("no echo")
				}
			}
			if err := c.Close(frame.CloseNormal, ""); err != nil {
				t.Errorf("close: %v", err)
			}
			<-readDone
		})
	}
}
