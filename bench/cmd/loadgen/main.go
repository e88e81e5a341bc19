// Command loadgen is the load client for cmd/echoserver: a raw TCP client with a hand-written
// handshake and prebuilt masked frames (package internal/load), the same for every server.
// It prints one JSON line, with the labels given by -lib, -shape and -round copied into it.
//
//	loadgen -addr 127.0.0.1:9000 -scenario 64x16B -warmup 1s -duration 3s
//	loadgen -addr 127.0.0.1:9000 -conns 64 -size 16 -window 16
//	loadgen -addr 127.0.0.1:9000 -idle 10000     # server memory per idle connection
//	loadgen -addr 127.0.0.1:9000 -latency work4  # reply latency, one connection
//
// Scenarios: 64x16B, 64x1KiB, 1000x2000B, 4x64KiB, 1x1MiB (see load.Scenarios); latency
// scenarios: push, work1, work4, rr (see load.LatencyScenarios), against the latency endpoints
// cmd/echoserver serves beside /ws.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"syscall"
	"time"

	"github.com/ecows/ecows/bench/internal/load"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "server address")
	path := flag.String("path", "/ws", "WebSocket path")
	scenario := flag.String("scenario", "", "named scenario; overrides -conns, -size and -window")
	conns := flag.Int("conns", 64, "connections")
	size := flag.Int("size", 16, "message payload bytes")
	window := flag.Int("window", 16, "messages in flight per connection")
	warmup := flag.Duration("warmup", time.Second, "unmeasured run before measuring")
	duration := flag.Duration("duration", 3*time.Second, "measured run")
	check := flag.Bool("check", false, "check every echoed byte")
	latency := flag.String("latency", "", "run this latency scenario (push, work1, work4, rr) for -warmup + -duration instead of a load scenario")
	idle := flag.Int("idle", 0, "open this many idle connections and report the server's memory per connection")
	settle := flag.Duration("settle", time.Second, "with -idle: wait after the last handshake")
	hold := flag.Duration("hold", 0, "with -idle: keep the connections open this long after measuring (to profile the server)")
	lib := flag.String("lib", "", "label: library")
	shape := flag.String("shape", "", "label: API shape")
	round := flag.Int("round", 0, "label: round number")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("loadgen: ")

	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}

	out := map[string]any{"lib": *lib, "shape": *shape, "round": *round}
	// A failed run still prints its line, with the error, so that the report can list it.
	fail := func(err error) {
		out["error"] = err.Error()
		b, _ := json.Marshal(out)
		os.Stdout.Write(append(b, '\n'))
		log.Fatalf("%s/%s %v: %v", *lib, *shape, out["scenario"], err)
	}
	if *latency != "" {
		s, ok := load.LookupLatencyScenario(*latency)
		if !ok {
			log.Fatalf("unknown latency scenario %q", *latency)
		}
		out["kind"] = "latency"
		out["scenario"] = s.Name
		r, err := load.Latency(load.LatencyConfig{Addr: *addr, Scenario: s, Warmup: *warmup, Duration: *duration})
		if err != nil {
			fail(err)
		}
		out["latency"] = r
	} else if *idle > 0 {
		out["kind"] = "idle"
		out["scenario"] = fmt.Sprintf("idle-%d", *idle)
		r, err := load.Idle(*addr, *path, *idle, *settle, *hold)
		if err != nil {
			fail(err)
		}
		out["idle"] = r
	} else {
		cfg := load.Config{Addr: *addr, Path: *path, Conns: *conns, Size: *size, Window: *window,
			Warmup: *warmup, Duration: *duration, Check: *check}
		name := fmt.Sprintf("%dx%dB-w%d", *conns, *size, *window)
		if *scenario != "" {
			s, ok := load.LookupScenario(*scenario)
			if !ok {
				log.Fatalf("unknown scenario %q", *scenario)
			}
			cfg.Conns, cfg.Size, cfg.Window, name = s.Conns, s.Size, s.Window, s.Name
		}
		out["kind"] = "load"
		out["scenario"] = name
		r, err := load.Run(cfg)
		if err != nil {
			fail(err)
		}
		out["result"] = r
	}
	b, _ := json.Marshal(out)
	os.Stdout.Write(append(b, '\n'))
}
