package main

import (
	"bytes"
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	stdlog "log"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/handshake"
	"github.com/ecows/ecows/internal/compressflag"
	"github.com/ecows/ecows/metrics"
	"github.com/ecows/ecows/middleware"
	"github.com/ecows/ecows/router"
	"github.com/ecows/ecows/transport"
)

// shutdownTimeout bounds a graceful shutdown: the close handshakes with the clients, then the
// HTTP requests in progress.
const shutdownTimeout = 5 * time.Second

//go:embed index.html
var indexHTML string

var indexTemplate = template.Must(template.New("index").Parse(indexHTML))

// serveConfig is what "ecows serve" was asked to do.
type serveConfig struct {
	addr       string
	path       string        // of the WebSocket endpoint
	rate       float64       // data frames per second per connection; 0 for no limit
	maxPayload int64         // largest message and frame accepted
	keepalive  time.Duration // ping interval; 0 for none
	compress   *transport.CompressionOptions
	log        zerolog.Logger
	tls        *tls.Config // nil for plain HTTP; else HTTP/1.1 and HTTP/2 over TLS
	metrics    string      // host:port of the Prometheus listener; "" for none
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", "[flags]", stderr)
	cfg := serveConfig{}
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "listen on `host:port` (port 0 picks a free one)")
	fs.StringVar(&cfg.path, "path", "/ws", "serve the WebSocket echo at `path`")
	fs.Float64Var(&cfg.rate, "rate", 0, "limit each connection to `N` data frames per second, closing it with 1008 beyond (0: no limit)")
	fs.Int64Var(&cfg.maxPayload, "max-payload", 1<<20, "largest message or frame accepted, in `bytes`; larger ones close with 1009")
	fs.DurationVar(&cfg.keepalive, "keepalive", 30*time.Second, "ping each client this often and drop it after two silent intervals (0: off)")
	compress := compressflag.Flag(fs)
	certFile := fs.String("tls-cert", "", "serve HTTPS and WSS, HTTP/1.1 and HTTP/2 on one port, with the certificate in `file` (PEM; with -tls-key)")
	keyFile := fs.String("tls-key", "", "the private key of -tls-cert, in `file` (PEM)")
	selfSigned := fs.Bool("tls-self-signed", false, "serve HTTPS and WSS with a certificate made at start for 127.0.0.1, ::1 and localhost; its SHA-256 fingerprint is printed")
	fs.StringVar(&cfg.metrics, "metrics", "", "serve Prometheus metrics at http://`host:port`/metrics, a listener of their own (port 0 picks a free one)")
	logLevel := fs.String("log-level", "info", "log `level` on stderr: debug (every frame), info (connections), warn, error or disabled")
	_, err := parse(fs, args)
	if err == nil {
		var lvl zerolog.Level
		lvl, err = zerolog.ParseLevel(*logLevel)
		var okCompress bool
		cfg.compress, okCompress = compressflag.Options(*compress)
		switch {
		case !okCompress:
			err = usagef(fs, "-compress must be %s, not %q", compressflag.Values, *compress)
		case err != nil || *logLevel == "":
			err = usagef(fs, "-log-level must be trace, debug, info, warn, error or disabled, not %q", *logLevel)
		case !strings.HasPrefix(cfg.path, "/") || cfg.path == "/":
			err = usagef(fs, "-path must start with / and differ from / (the page), not %q", cfg.path)
		case cfg.rate < 0 || math.IsNaN(cfg.rate) || math.IsInf(cfg.rate, 0):
			err = usagef(fs, "-rate must be 0 or more")
		case cfg.maxPayload < 1:
			err = usagef(fs, "-max-payload must be at least 1")
		case cfg.keepalive < 0:
			err = usagef(fs, "-keepalive must be 0 or more")
		case *selfSigned && (*certFile != "" || *keyFile != ""):
			err = usagef(fs, "-tls-self-signed excludes -tls-cert and -tls-key")
		case (*certFile == "") != (*keyFile == ""):
			err = usagef(fs, "-tls-cert and -tls-key go together")
		}
		cw := zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05", NoColor: !isTerminal(stderr)}
		cfg.log = zerolog.New(cw).Level(lvl).With().Timestamp().Logger()
	}
	if err == nil {
		switch {
		case *certFile != "":
			cfg.tls, err = loadTLS(*certFile, *keyFile)
		case *selfSigned:
			var fingerprint string
			cfg.tls, fingerprint, err = selfSignedTLS()
			if err == nil {
				fmt.Fprintf(stdout, "ecows: self-signed certificate for 127.0.0.1, ::1 and localhost, SHA-256 fingerprint %s\n", fingerprint)
			}
		}
	}
	if err != nil {
		return exitCode("serve", err, stderr)
	}
	s, err := listen(cfg)
	if err != nil {
		return exitCode("serve", err, stderr)
	}
	fmt.Fprintf(stdout, "ecows: serving on %s (WebSocket at %s)\n", s.pageURL(), s.wsURL())
	if s.mln != nil {
		fmt.Fprintf(stdout, "ecows: metrics at %s\n", s.metricsURL())
	}
	return exitCode("serve", s.run(ctx), stderr)
}

// server is a listening "ecows serve".
type server struct {
	cfg  serveConfig
	ln   net.Listener
	http *http.Server
	ws   *router.Router

	mln   net.Listener // the metrics listener, nil without -metrics
	mhttp *http.Server
}

// listen starts listening on cfg.addr and builds the server; run serves.
func listen(cfg serveConfig) (*server, error) {
	page, err := renderIndex(cfg.path)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, ln: ln, ws: router.New()}
	var reg *metrics.Registry
	if cfg.metrics != "" {
		if s.mln, err = net.Listen("tcp", cfg.metrics); err != nil {
			ln.Close()
			return nil, fmt.Errorf("metrics: %w", err)
		}
		reg = &metrics.Registry{}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", reg)
		s.mhttp = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: stdlog.New(cfg.log, "", 0)}
	}
	mux := chi.NewRouter()
	servePage := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(page)
	}
	mux.Get("/", servePage)
	mux.Head("/", servePage)
	limit := max(cfg.maxPayload, transport.DefaultMaxPayloadLen)
	opts := &handshake.ServerOptions{
		// The Conn's limits bound memory; MaxPayload in echoHandler applies -max-payload
		// when it is below them.
		Options: transport.Options{
			MaxPayloadLen: limit, MaxMessageLen: max(limit, transport.DefaultMaxMessageLen),
			Compression: cfg.compress,
		},
	}
	if reg != nil {
		opts.Metrics = reg
	}
	s.ws.Handle(mux, cfg.path, echoHandler(cfg), opts) // GET, and CONNECT for WebSockets over HTTP/2
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second, // a client that trickles its headers (slowloris) is dropped
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          stdlog.New(cfg.log, "", 0),
		TLSConfig:         cfg.tls,
		// net/http gives a connection's receive window back only as handlers read, so a
		// WebSocket that stops reading keeps up to a stream's buffer of it: with room for
		// 64 such streams, one stalled client does not stall the others on its connection.
		// Clients on x/net/http2 (ecows dial -http2) keep a write buffer as large as the
		// server's frame size (up to 512 KiB) for each open WebSocket: 16 KiB frames keep an
		// idle one small.
		HTTP2: &http.HTTP2Config{
			MaxReceiveBufferPerStream: 256 << 10, MaxReceiveBufferPerConnection: 16 << 20,
			MaxReadFrameSize: 16 << 10,
		},
	}
	return s, nil
}

// echoHandler echoes every data frame as it comes, with its opcode and fin bit, so messages
// go back whole, fragmented as they came. SendFrame never compresses: when permessage-deflate
// was negotiated, a message that came in one frame goes back through WriteMessage, which
// compresses it, and only fragments go back through SendFrame. Pings are answered by AutoPong
// and a close frame by the Conn.
func echoHandler(cfg serveConfig) middleware.ConnHandler {
	echo := middleware.HandlerFunc(func(_ context.Context, c *transport.Conn, f frame.Frame) error {
		if !f.Opcode.IsData() {
			return nil
		}
		var err error
		if f.Fin && f.Opcode != frame.OpContinuation && deflateNegotiated(c.Extensions()) {
			_, err = c.WriteMessage(context.Background(), f.Opcode, f.Payload)
		} else {
			_, err = c.SendFrame(f.Fin, f.Opcode, f.Payload)
		}
		if err != nil && !errors.Is(err, transport.ErrClosed) {
			return err
		}
		return nil // after our close frame (shutdown), reading goes on to the client's answer
	})
	mw := []middleware.Layer{
		middleware.Recover(&cfg.log),
		middleware.Logger(&cfg.log),
		middleware.MaxPayload(cfg.maxPayload, cfg.maxPayload),
	}
	if cfg.rate > 0 {
		mw = append(mw, middleware.RateLimit(middleware.RateLimitOptions{
			Rate:     rate.Limit(cfg.rate),
			Burst:    max(1, int(math.Ceil(cfg.rate))),
			OnExceed: middleware.ExceedClose,
		}))
	}
	mw = append(mw, middleware.AutoPong(&middleware.AutoPongOptions{Interval: cfg.keepalive}))
	return middleware.Frames(echo, mw...)
}

// run serves until ctx ends, then shuts down: 1001 Going Away to every WebSocket client,
// then the HTTP server, within shutdownTimeout.
func (s *server) run(ctx context.Context) error {
	if s.mhttp != nil {
		go s.mhttp.Serve(s.mln) // closed below, after the WebSocket server
		defer s.mhttp.Close()
	}
	served := make(chan error, 1)
	go func() {
		if s.cfg.tls != nil {
			served <- s.http.ServeTLS(s.ln, "", "")
		} else {
			served <- s.http.Serve(s.ln)
		}
	}()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	wsErr := s.ws.Shutdown(sctx)
	httpErr := s.http.Shutdown(sctx)
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if err := errors.Join(wsErr, httpErr); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// metricsURL returns the address of the metrics.
func (s *server) metricsURL() string {
	return "http://" + localHostPort(s.mln) + "/metrics"
}

// pageURL returns the address of the browser page.
func (s *server) pageURL() string {
	if s.cfg.tls != nil {
		return "https://" + s.hostPort()
	}
	return "http://" + s.hostPort()
}

// wsURL returns the address of the WebSocket endpoint.
func (s *server) wsURL() string {
	if s.cfg.tls != nil {
		return "wss://" + s.hostPort() + s.cfg.path
	}
	return "ws://" + s.hostPort() + s.cfg.path
}

// hostPort returns the address listened on for WebSockets (localHostPort).
func (s *server) hostPort() string { return localHostPort(s.ln) }

// localHostPort returns the address ln listens on, with the real port, and localhost in place
// of an unspecified IP so that the URLs work when pasted.
func localHostPort(ln net.Listener) string {
	a, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return ln.Addr().String()
	}
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, fmt.Sprint(a.Port))
}

// renderIndex fills the page's template with the WebSocket path.
func renderIndex(path string) ([]byte, error) {
	var b bytes.Buffer
	if err := indexTemplate.Execute(&b, struct{ Path string }{path}); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// isTerminal reports whether w is a terminal, where the log may use colours.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
