package interop

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/transport"
)

// wasmPage loads Go's wasm_exec.js and runs client.wasm; a failure to load is posted too.
const wasmPage = `<!doctype html><meta charset="utf-8"><title>ecows wasm client</title>
<script src="/wasm_exec.js"></script>
<script>
const go = new Go();
WebAssembly.instantiateStreaming(fetch("/client.wasm"), go.importObject)
  .then((r) => go.run(r.instance))
  .catch((e) => fetch("/result", {method: "POST", body: JSON.stringify([{name: "load", ok: false, detail: String(e)}])}));
</script>`

// TestWASMClient builds testdata/wasmclient with GOOS=js GOARCH=wasm, serves it with Go's
// wasm_exec.js from an ecows server on 127.0.0.1, and runs it in headless Chromium: there
// handshake.Dial uses the browser's WebSocket, and the program echoes text and binary
// messages (up to 1 MiB, and one written with NextWriter in pieces) with the server, closes
// both ways, and checks that what a browser cannot do fails with handshake.ErrBrowser.
func TestWASMClient(t *testing.T) {
	chromium := requireChromium(t)
	dir := t.TempDir()
	wasmFile := filepath.Join(dir, "client.wasm")
	build := exec.Command("go", "build", "-o", wasmFile, "./testdata/wasmclient")
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the wasm client: %v\n%s", err, out)
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	root := strings.TrimSpace(string(goroot))
	wasmExec := filepath.Join(root, "lib", "wasm", "wasm_exec.js")
	if _, err := os.Stat(wasmExec); err != nil {
		wasmExec = filepath.Join(root, "misc", "wasm", "wasm_exec.js") // before Go 1.24
	}

	var mu sync.Mutex
	var received []string // what the echo handler saw: opcode and length of each message
	var wg sync.WaitGroup
	results := make(chan []event, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(wasmPage))
	})
	mux.HandleFunc("GET /favicon.ico", http.NotFound)
	mux.HandleFunc("GET /wasm_exec.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		http.ServeFile(w, r, wasmExec)
	})
	mux.HandleFunc("GET /client.wasm", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/wasm")
		http.ServeFile(w, r, wasmFile)
	})
	mux.HandleFunc("POST /result", func(w http.ResponseWriter, r *http.Request) {
		var checks []event
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&checks); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case results <- checks:
		default:
		}
	})
	opts := &handshake.ServerOptions{
		Options:      transport.Options{MaxPayloadLen: largeLimit, MaxMessageLen: largeLimit, CloseTimeout: closeTimeout},
		Subprotocols: []string{"ecows.wasm"},
	}
	mux.HandleFunc("GET /ws/{what}", func(w http.ResponseWriter, r *http.Request) {
		c, err := handshake.Upgrade(w, r, opts)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer c.CloseNow()
		if r.PathValue("what") == "close" {
			c.Close(4000, "bye")
			return
		}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
			op, msg, err := c.ReadMessage(ctx, nil)
			cancel()
			if err != nil {
				return
			}
			mu.Lock()
			received = append(received, op.String())
			mu.Unlock()
			if _, err := c.WriteMessage(context.Background(), op, msg); err != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(mux)
	defer func() {
		srv.Close()
		wg.Wait()
	}()

	profile := t.TempDir()
	p := startProc(t, nil, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--disable-extensions", "--no-default-browser-check",
		"--user-data-dir="+profile, srv.URL+"/")
	var checks []event
	select {
	case checks = <-results:
	case <-p.done:
		t.Fatalf("chromium exited before the wasm client posted its results: %v\n%s", p.err, p.stderr.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("the wasm client did not post its results within 90 s; chromium said:\n%s", p.stderr.String())
	}
	killProcessGroup(p.cmd)

	want := []string{"dial", "text", "text-empty", "binary-0", "binary-125", "binary-65536", "binary-1048576",
		"next-writer", "close-by-client", "close-by-server", "header-refused", "ping-refused", "unreachable"}
	seen := map[string]bool{}
	for _, c := range checks {
		seen[c.Name] = true
		if !c.OK {
			t.Errorf("wasm client check %s failed: %s", c.Name, c.Detail)
		}
	}
	for _, name := range want {
		if !seen[name] {
			t.Errorf("wasm client did not report %s; it reported %v", name, checks)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if n := len(received); n != 7 {
		t.Errorf("the server echoed %d messages (%v), want 7", n, received)
	}
	if len(received) > 0 && received[0] != frame.OpText.String() {
		t.Errorf("first message %s, want text", received[0])
	}
}
