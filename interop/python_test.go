package interop

import (
	"os"
	"testing"
)

// python is Debian's interpreter, which has python3-websockets; a python3 earlier on PATH (a
// pyenv one, say) would not.
const python = "/usr/bin/python3"

// TestPythonWebsockets runs every scenario between ecows and Python's websockets
// (peers/websockets_peer.py), both ways.
func TestPythonWebsockets(t *testing.T) {
	// Hash randomization decides websockets' subprotocol choice on a tie; fix it so that a
	// failure can be replayed (the test accepts either choice).
	env := []string{"PYTHONHASHSEED=0", "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8"}
	testPeer(t, peer{
		name:    "websockets",
		require: requirePythonWebsockets,
		server: func(t *testing.T) *peerServer {
			setupCert(t)
			return startServerProc(t, env, python, "peers/websockets_peer.py", "server", certFile, keyFile)
		},
		client: func(t *testing.T, url, scenario string) peerReport {
			setupCert(t)
			return runClientProc(t, env, python, "peers/websockets_peer.py", "client", url, scenario, certFile)
		},
		exp: expectations{
			serverPick:         "", // lowest sum of both sides' indices; a tie goes by set order
			utf8Code:           1007,
			echoesReason:       true,
			seesEchoReason:     true,
			tooBigCode:         1009,
			customPing:         true,
			pingsMidMessage:    true,
			offersDeflate:      true,
			clientPings:        true,
			clientFragments:    true, // send(iterable)
			clientInvalidUTF8:  true, // write_frame(True, OP_TEXT, bytes)
			clientHasReadLimit: true, // max_size
		},
	})
}

// requirePythonWebsockets checks for /usr/bin/python3 with websockets and its legacy asyncio API
// (the default up to websockets 13; Debian bookworm ships 10.4).
func requirePythonWebsockets(t *testing.T) {
	require(t, python+" with websockets", "apt-get install -y python3-websockets (or run interop/ci.sh)", func() string {
		if _, err := os.Stat(python); err != nil {
			return err.Error()
		}
		return probeCommand(python, "-c", "import websockets; websockets.WebSocketServerProtocol")
	})
}
