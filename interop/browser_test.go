package interop

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
)

// chromiumExpectations: Chromium fails a text message that is not UTF-8 with 1002 on the wire
// (and reports 1006 to the page), and its answer to a close repeats the reason; a page can neither send pings, fragments nor bad UTF-8, and
// has no limit on what it receives.
var chromiumExpectations = expectations{
	utf8Code:      frame.CloseProtocolError,
	echoesReason:  true,
	offersDeflate: true,
}

// browserScenarios are the peer-client scenarios that peers/browser.html runs, in its order.
var browserScenarios = []string{
	"echo", "fragments", "ping", "close-by-peer", "close-by-ecows", "close-by-ecows-frames", "subprotocol",
	"invalid-utf8-from-ecows", "too-big-for-ecows", "wss",
}

// TestChromium loads peers/browser.html in headless Chromium from an ecows server; the page
// runs the scenarios against that server (text, binary ArrayBuffers, fragments, ping, close
// codes both ways, subprotocols, bad UTF-8, an oversized message, wss://) and posts what it saw.
func TestChromium(t *testing.T) {
	chromium := requireChromium(t)
	page, err := os.ReadFile("peers/browser.html")
	if err != nil {
		t.Fatal(err)
	}
	posted := make(chan map[string]peerReport, 1)
	es := startEcowsServer(t, map[string]http.Handler{
		"GET /{$}": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write(page)
		}),
		"GET /favicon.ico": http.NotFoundHandler(),
		"POST /results": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var results map[string]peerReport
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&results); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			select {
			case posted <- results:
			default:
			}
		}),
	})

	profile, err := os.MkdirTemp("", "ecows-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(profile) }) // after the process cleanup below has killed it
	pageURL := es.httpURL() + "/?wss=" + url.QueryEscape(es.tlsURL)
	compressServers := map[string]*compressServer{}
	for _, m := range compressModes {
		compressServers[m.name] = startCompressServer(t, m.opts)
		pageURL += "&compress." + m.name + "=" + url.QueryEscape(compressServers[m.name].url)
	}
	p := startProc(t, nil, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--disable-extensions", "--no-default-browser-check",
		"--ignore-certificate-errors", // the wss:// scenario's certificate is self-signed
		"--user-data-dir="+profile, pageURL)

	var results map[string]peerReport
	select {
	case results = <-posted:
	case <-p.done:
		t.Fatalf("chromium exited before the page posted its results: %v\n%s", p.err, p.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("the page did not post its results within 60 s; chromium said:\n%s", p.stderr.String())
	}
	killProcessGroup(p.cmd)

	for _, name := range browserScenarios {
		t.Run("PeerClientToEcowsServer/"+name, func(t *testing.T) {
			res := es.await(t, "/"+name)
			for _, sc := range peerClientScenarios {
				if sc.name == name {
					sc.check(t, results[name], res, chromiumExpectations)
				}
			}
			if t.Failed() {
				t.Logf("page saw: %v", results[name])
			}
		})
	}
	for _, m := range compressModes {
		t.Run("PeerClientToEcowsServer/compress/"+m.name, func(t *testing.T) {
			r := results["compress/"+m.name]
			r.verify(t, "compress-negotiated", "compress-echo", "compress-echo-binary")
			checkCompressEcho(t, compressServers[m.name].await(t), 2)
			if t.Failed() {
				t.Logf("page saw: %v", r)
			}
		})
	}
}

// requireChromium returns the Chromium command, or skips (fails with CI=true) without one.
func requireChromium(t *testing.T) string {
	require(t, "chromium", "apt-get install -y chromium (or run interop/ci.sh)", func() string {
		if chromiumPath() == "" {
			return "no chromium or chromium-browser on PATH"
		}
		return ""
	})
	return chromiumPath()
}

func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}
