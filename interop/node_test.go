package interop

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestNodeWS runs every scenario between ecows and the Node.js ws package (peers/ws_peer.js),
// both ways.
func TestNodeWS(t *testing.T) {
	testPeer(t, peer{
		name:    "ws",
		require: requireNodeWS,
		server: func(t *testing.T) *peerServer {
			setupCert(t)
			return startServerProc(t, nil, "node", "peers/ws_peer.js", "server", certFile, keyFile)
		},
		client: func(t *testing.T, url, scenario string) peerReport {
			setupCert(t)
			return runClientProc(t, nil, "node", "peers/ws_peer.js", "client", url, scenario, certFile)
		},
		exp: expectations{
			serverPick:          proto1, // no server list: the client's first offer
			acceptsUnknownProto: true,   // ... whatever it is, without a handleProtocols hook
			utf8Code:            1007,
			echoesReason:        true,
			seesEchoReason:      true,
			tooBigCode:          1009,
			customPing:          true,
			pingsMidMessage:     true,
			offersDeflate:       true,
			clientPings:         true,
			clientFragments:     true, // send(data, {fin: false})
			clientInvalidUTF8:   true, // send(buffer, {binary: false}) does not check UTF-8
			clientHasReadLimit:  true, // maxPayload
		},
	})
}

// requireNodeWS checks for node and for the ws version package.json pins, installed by npm ci.
func requireNodeWS(t *testing.T) {
	require(t, "Node.js with the ws package", "apt-get install -y nodejs npm, then npm ci in interop/ (or run interop/ci.sh)", func() string {
		if _, err := exec.LookPath("node"); err != nil {
			return "no node on PATH"
		}
		raw, err := os.ReadFile("package.json")
		if err != nil {
			return err.Error()
		}
		var pkg struct {
			Dependencies map[string]string `json:"dependencies"`
		}
		if err := json.Unmarshal(raw, &pkg); err != nil {
			return "package.json: " + err.Error()
		}
		out, err := exec.Command("node", "-p", "require('ws/package.json').version").CombinedOutput()
		if err != nil {
			return fmt.Sprintf("require('ws') failed (run npm ci): %s", strings.TrimSpace(string(out)))
		}
		if got, want := strings.TrimSpace(string(out)), pkg.Dependencies["ws"]; got != want {
			return fmt.Sprintf("node_modules has ws %s, package.json pins %s (run npm ci)", got, want)
		}
		return ""
	})
}
