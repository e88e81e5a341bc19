package app

import (
	"context"
	"errors"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// ListenAndServe serves the chat on addr until SIGINT or SIGTERM, then shuts it down within
// 5 s: the HTTP server, the browsers (1001 Going Away) and the hub.
func (a *App) ListenAndServe(addr string) error {
	srv := &http.Server{Addr: addr, Handler: a, ReadHeaderTimeout: 10 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(stop)
	done := make(chan error, 1)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- errors.Join(srv.Shutdown(ctx), a.Shutdown(ctx))
	}()
	log.Printf("chat: node %s on http://%s", a.Node(), addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return <-done
}
