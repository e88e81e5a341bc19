package load

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// ServerStats is what an echo server reports at /stats, after a full garbage collection and
// returning freed memory to the OS, so that two snapshots differ by live memory only.
type ServerStats struct {
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"`
	RSS        uint64 `json:"rss"`
	Goroutines int    `json:"goroutines"`
}

// IdleResult is the server's cost per idle connection: the difference between a snapshot with
// Conns upgraded connections open and one before they were opened, divided by Conns.
type IdleResult struct {
	Conns               int     `json:"conns"`
	HeapPerConn         float64 `json:"heap_per_conn"`
	StackPerConn        float64 `json:"stack_per_conn"`
	RSSPerConn          float64 `json:"rss_per_conn"`
	GoroutinesPerConn   float64 `json:"goroutines_per_conn"`
	Before, After       ServerStats
	HandshakesPerSecond float64 `json:"handshakes_per_sec"`
}

// statsClient keeps no idle connection, so that none sits on the server between snapshots.
var statsClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

// FetchStats reads the server's /stats.
func FetchStats(addr string) (ServerStats, error) {
	var s ServerStats
	resp, err := statsClient.Get("http://" + addr + "/stats")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("/stats: %s", resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// Idle opens n connections to the server at addr and leaves them idle, and reports what they
// cost the server. settle is how long to wait after the last handshake before the snapshot,
// hold how long to keep the connections open after it.
func Idle(addr, path string, n int, settle, hold time.Duration) (IdleResult, error) {
	if path == "" {
		path = "/ws"
	}
	if err := WaitReady(addr, 10*time.Second); err != nil {
		return IdleResult{}, err
	}
	before, err := FetchStats(addr)
	if err != nil {
		return IdleResult{}, err
	}
	t0 := time.Now()
	conns, err := DialN(addr, path, n)
	if err != nil {
		return IdleResult{}, err
	}
	hs := float64(n) / time.Since(t0).Seconds()
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	time.Sleep(settle)
	after, err := FetchStats(addr)
	if err != nil {
		return IdleResult{}, err
	}
	time.Sleep(hold)
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	return IdleResult{
		Conns:               n,
		HeapPerConn:         per(after.HeapInuse, before.HeapInuse),
		StackPerConn:        per(after.StackInuse, before.StackInuse),
		RSSPerConn:          per(after.RSS, before.RSS),
		GoroutinesPerConn:   float64(after.Goroutines-before.Goroutines) / float64(n),
		Before:              before,
		After:               after,
		HandshakesPerSecond: hs,
	}, nil
}
