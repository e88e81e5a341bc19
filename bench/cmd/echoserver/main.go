// Command echoserver runs one library's echo server from package bench, for the load client
// (cmd/loadgen) to measure in a process of its own:
//
//	echoserver -lib ecows -shape message -addr 127.0.0.1:9000
//
// The WebSocket endpoint is /ws; /stats reports memory and goroutines (see bench.StatsHandler).
// It prints "listening on ADDR" once it accepts connections and runs until SIGINT or SIGTERM.
// -cpuprofile and -memprofile write pprof profiles covering the whole run (the allocation
// profile at exit), for `go tool pprof -top`; -pprof serves net/http/pprof, for a heap profile
// taken while connections are open (loadgen -idle N -hold 30s, then
// `go tool pprof -sample_index=inuse_space -top http://ADDR/debug/pprof/heap`).
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/ecows/ecows/bench"
)

func main() {
	lib := flag.String("lib", "ecows", "library: ecows, gorilla, coder, gobwas, gws")
	shape := flag.String("shape", "message", "API shape: message or stream")
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	list := flag.Bool("list", false, "list the servers (lib shape) and exit")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	memprofile := flag.String("memprofile", "", "write an allocation profile at exit to this file")
	memrate := flag.Int("memprofilerate", 0, "runtime.MemProfileRate when -memprofile or -pprof is set (0: the default)")
	withPprof := flag.Bool("pprof", false, "serve net/http/pprof at /debug/pprof/ (a heap profile with idle connections open, say)")
	flag.Parse()
	if *list {
		for _, s := range bench.Servers() {
			fmt.Println(s.Lib, s.Shape)
		}
		return
	}
	s, err := bench.Lookup(*lib, *shape)
	if err != nil {
		log.Fatal(err)
	}
	raiseFileLimit()
	if (*memprofile != "" || *withPprof) && *memrate > 0 {
		runtime.MemProfileRate = *memrate
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
	}
	mux := bench.Mux(s)
	if *withPprof {
		mux.HandleFunc("/debug/pprof/", httppprof.Index)
		mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	fmt.Printf("listening on %s (%s)\n", ln.Addr(), s.Name())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	if *cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	if *memprofile != "" {
		f, err := os.Create(*memprofile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.Lookup("allocs").WriteTo(f, 0)
		f.Close()
	}
}

// raiseFileLimit lifts the soft limit on open files to the hard one, for the 10,000-connection
// idle run (Go does this itself since 1.19; done here too so that it is explicit).
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
