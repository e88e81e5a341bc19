package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecows/ecows/examples/chat/app"
	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/hub"
	"github.com/ecows/ecows/transport"
)

// TestChromiumChat runs the page of examples/chat in headless Chromium, on node a of two
// chat nodes sharing an engine (each of chatEngines: hubtest.Fake, NATS JetStream, Redis
// Streams), while Go clients on both nodes talk. The page's connection is cut (and new ones
// refused for a while), then the engine is killed and restarted: the page reconnects by
// itself with the position of its last line and shows every line once, in order per
// sender, and no gap.
func TestChromiumChat(t *testing.T) {
	chromium := requireChromium(t)
	for _, e := range chatEngines {
		t.Run(e.name, func(t *testing.T) { chromiumChat(t, chromium, e.start(t)) })
	}
}

func chromiumChat(t *testing.T, chromium string, f chatEngine) {
	a, b := startChatNode(t, f.Link(t), "a"), startChatNode(t, f.Link(t), "b")
	px := startCutProxy(t, strings.TrimPrefix(a.URL, "http://"))
	ann, bob := dialChat(t, a.URL, "ann"), dialChat(t, b.URL, "bob")

	page := startChromiumPage(t, chromium, "http://"+px.l.Addr().String()+"/")
	page.until(t, "the page has loaded", `document.readyState === "complete" && typeof join === "function"`)
	page.eval(t, `$("name").value = "pat"; $("room").value = "lobby"; join(); true`, nil)
	page.until(t, "pat has joined", `document.querySelector("#log").textContent.includes("pat joined")`)

	said := make(map[string][]string)
	talk := func(phase string) {
		for i := range 3 {
			for _, c := range []*chatClient{ann, bob} {
				text := fmt.Sprintf("%s %s %d", c.name, phase, i)
				c.say(t, text)
				said[c.name] = append(said[c.name], text)
			}
		}
	}
	shown := func() map[string][]string {
		var lines [][2]string
		page.eval(t, `[...document.querySelectorAll("#log li.message")].map(li => [li.dataset.user, li.querySelector(".text").textContent])`, &lines)
		got := make(map[string][]string)
		for _, l := range lines {
			got[l[0]] = append(got[l[0]], l[1])
		}
		return got
	}
	// caughtUp waits for the page to show as many lines as were said, then checks them.
	caughtUp := func(when string) {
		t.Helper()
		n := 0
		for _, lines := range said {
			n += len(lines)
		}
		page.until(t, when+": every line shown", `document.querySelectorAll("#log li.message").length >= `+strconv.Itoa(n))
		if got := shown(); !maps.EqualFunc(got, said, slices.Equal) {
			t.Fatalf("%s: the page shows\n%q\nwant\n%q", when, got, said)
		}
	}

	talk("before")
	caughtUp("before")

	px.cut(true) // the page's connection is lost, and so are its next attempts
	talk("while pat is away")
	time.Sleep(time.Second) // a few of the page's attempts fail
	px.cut(false)
	caughtUp("after pat came back")

	f.Kill(t)
	talk("while the engine is down")
	f.Restart(t)
	talk("after the engine came back")
	caughtUp("after the engine came back")

	var gaps int
	page.eval(t, `document.querySelectorAll("#log li.gap").length`, &gaps)
	if gaps != 0 {
		t.Errorf("the page shows %d gap lines", gaps)
	}
	page.eval(t, `$("text").value = "hello from pat"; $("say").requestSubmit(); true`, nil)
	if o := bob.next(t, func(o app.Out) bool { return o.Type == "message" && o.User == "pat" }); o.Text != "hello from pat" {
		t.Fatalf("bob got %+v", o)
	}
}

// startChatNode serves the chat as node on broker.
func startChatNode(t *testing.T, broker hub.Broker, node string) *httptest.Server {
	t.Helper()
	a, err := app.New(broker, node)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Shutdown(ctx)
		srv.Close()
	})
	return srv
}

// chatClient is a Go client of the chat, in the room "lobby".
type chatClient struct {
	name string
	c    *transport.Conn
}

// dialChat connects name to the room "lobby" of the chat at base and waits for its own
// arrival, so that it is in the room.
func dialChat(t *testing.T, base, name string) *chatClient {
	t.Helper()
	c, _, err := handshake.Dial(context.Background(), "ws"+strings.TrimPrefix(base, "http")+"/rooms/lobby?name="+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	cc := &chatClient{name: name, c: c}
	cc.next(t, func(o app.Out) bool { return o.Type == "join" && o.User == name })
	return cc
}

func (cc *chatClient) say(t *testing.T, text string) {
	t.Helper()
	b, _ := json.Marshal(app.In{Text: text})
	if _, err := cc.c.WriteMessage(context.Background(), frame.OpText, b); err != nil {
		t.Fatal(err)
	}
}

// next returns the first line that ok accepts, skipping the others.
func (cc *chatClient) next(t *testing.T, ok func(app.Out) bool) app.Out {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		_, msg, err := cc.c.ReadMessage(ctx, nil)
		if err != nil {
			t.Fatalf("%s: %v", cc.name, err)
		}
		var o app.Out
		if err := json.Unmarshal(msg, &o); err != nil {
			t.Fatal(err)
		}
		if ok(o) {
			return o
		}
	}
}

// cutProxy forwards TCP connections to a target; cut(true) closes them all and refuses new
// ones, as a lost network would, until cut(false).
type cutProxy struct {
	l      net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	p := &cutProxy{l: listen(t), target: target, conns: make(map[net.Conn]bool)}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		p.l.Close()
		p.cut(true)
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		if !p.track(in, out) {
			in.Close()
			out.Close()
			continue
		}
		p.wg.Add(2)
		go p.pipe(out, in)
		go p.pipe(in, out)
	}
}

// track registers a pair of connections unless the proxy is down.
func (p *cutProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	for _, c := range conns {
		p.conns[c] = true
	}
	return true
}

// pipe copies from src to dst, then closes both: either side ending ends the pair.
func (p *cutProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
	dst.Close()
	src.Close()
}

func (p *cutProxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// chromiumPage is a page in headless Chromium, driven through the DevTools protocol over a
// WebSocket of ecows' own.
type chromiumPage struct {
	c  *transport.Conn
	id int
}

// startChromiumPage starts Chromium on url with its DevTools on a free port of 127.0.0.1,
// and connects to the page's target.
func startChromiumPage(t *testing.T, chromium, url string) *chromiumPage {
	t.Helper()
	profile, err := os.MkdirTemp("", "ecows-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(profile) }) // after the process cleanup below has killed it
	startProc(t, nil, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--disable-extensions", "--no-default-browser-check",
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--user-data-dir="+profile, url)
	// Chromium writes the port it chose, on the file's first line.
	var port string
	for deadline := time.Now().Add(30 * time.Second); port == ""; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("chromium did not open its DevTools port within 30 s")
		}
		if b, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort")); err == nil {
			if first, _, ok := strings.Cut(string(b), "\n"); ok {
				port = first
			}
		}
	}
	var targets []struct {
		Type, URL            string
		WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
	}
	res, err := http.Get("http://127.0.0.1:" + port + "/json/list")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(res.Body).Decode(&targets)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if tg.Type == "page" {
			c, _, err := handshake.Dial(context.Background(), tg.WebSocketDebuggerURL, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.CloseNow() })
			return &chromiumPage{c: c}
		}
	}
	t.Fatalf("chromium has no page: %+v", targets)
	return nil
}

// eval evaluates expr in the page and decodes its value into out (nil: ignored).
func (p *chromiumPage) eval(t *testing.T, expr string, out any) {
	t.Helper()
	p.id++
	req, _ := json.Marshal(map[string]any{"id": p.id, "method": "Runtime.evaluate",
		"params": map[string]any{"expression": expr, "returnByValue": true}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.c.WriteMessage(ctx, frame.OpText, req); err != nil {
		t.Fatal(err)
	}
	for {
		_, msg, err := p.c.ReadMessage(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var res struct {
			ID     int
			Error  *struct{ Message string }
			Result struct {
				Result           struct{ Value json.RawMessage }
				ExceptionDetails json.RawMessage
			}
		}
		if err := json.Unmarshal(msg, &res); err != nil {
			t.Fatal(err)
		}
		if res.ID != p.id {
			continue // an event
		}
		switch {
		case res.Error != nil:
			t.Fatalf("%s: %s", expr, res.Error.Message)
		case res.Result.ExceptionDetails != nil:
			t.Fatalf("%s: %s", expr, res.Result.ExceptionDetails)
		case out != nil:
			if err := json.Unmarshal(res.Result.Result.Value, out); err != nil {
				t.Fatalf("%s: %v", expr, err)
			}
		}
		return
	}
}

// until waits up to 30 s for expr to be true in the page.
func (p *chromiumPage) until(t *testing.T, what, expr string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var ok bool
		p.eval(t, expr, &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var log string
			p.eval(t, `document.querySelector("#log").innerText + "\n" + document.querySelector("#status").textContent`, &log)
			t.Fatalf("%s: not within 30 s; the page shows:\n%s", what, log)
		}
	}
}
