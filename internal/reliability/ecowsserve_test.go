package reliability

import (
	"bufio"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The real "ecows serve", built once and shared by the tests that check the configuration of
// its http.Server: they must see what users run, not a copy of its settings.
var serveBin struct {
	once sync.Once
	dir  string
	cmd  *exec.Cmd
	addr string // host:port
	err  error
}

// setPdeathsig asks the kernel to kill a child when the test process dies, where it can.
var setPdeathsig = func(*syscall.SysProcAttr) {}

// ecowsServe returns the address of a running "ecows serve" with its default flags.
func ecowsServe(t testing.TB) string {
	t.Helper()
	serveBin.once.Do(func() { serveBin.addr, serveBin.err = startEcowsServe() })
	if serveBin.err != nil {
		t.Fatalf("ecows serve: %v", serveBin.err)
	}
	return serveBin.addr
}

var servingLine = regexp.MustCompile(`WebSocket at (ws://\S+)\)`)

func startEcowsServe() (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("no go command to build cmd/ecows: %w", err)
	}
	serveBin.dir, err = os.MkdirTemp("", "ecows-reliability-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(serveBin.dir, "ecows")
	build := exec.Command(goTool, "build", "-o", bin, "../../cmd/ecows")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ../../cmd/ecows: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "serve", "-addr", "127.0.0.1:0", "-log-level", "disabled")
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setPdeathsig(cmd.SysProcAttr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	serveBin.cmd = cmd
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		m := servingLine.FindStringSubmatch(s)
		if m == nil {
			return "", fmt.Errorf("unexpected first line %q", s)
		}
		u, err := url.Parse(m[1])
		if err != nil {
			return "", err
		}
		return u.Host, nil
	case <-time.After(20 * time.Second):
		return "", fmt.Errorf("no address printed within 20 s")
	}
}

// stopEcowsServe stops the server as a user would (SIGINT) and removes the binary.
func stopEcowsServe() {
	if cmd := serveBin.cmd; cmd != nil {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	if serveBin.dir != "" {
		os.RemoveAll(serveBin.dir)
	}
}
