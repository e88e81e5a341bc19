package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecows/ecows/bench"
)

// idleOutput is BenchmarkCompressedIdleConn's output as go test prints it, with the lines it
// prints for the libraries it skips, over two rounds.
const idleOutput = `BenchmarkCompressedIdleConn/no-takeover/ecows-2   	       1	2695715684 ns/op	      1000 conns	         1.000 goroutines/conn	     13312 heapB/conn	      8192 stackB/conn
BenchmarkCompressedIdleConn/no-takeover/gorilla-2 	       1	1216203231 ns/op	      1000 conns	         1.000 goroutines/conn	     12288 heapB/conn	      8192 stackB/conn
BenchmarkCompressedIdleConn/no-takeover/gws-2     	       1	2062202072 ns/op	      1000 conns	         1.000 goroutines/conn	     10240 heapB/conn	      4096 stackB/conn
BenchmarkCompressedIdleConn/takeover-w15/ecows-2  	       1	4741976708 ns/op	      1600 conns	         2.000 goroutines/conn	   1269760 heapB/conn	     12288 stackB/conn
--- SKIP: BenchmarkCompressedIdleConn/takeover-w15/gorilla: no context takeover (answer "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
BenchmarkCompressedIdleConn/takeover-w15/gws-2    	       1	3827962516 ns/op	      1000 conns	         1.000 goroutines/conn	     73728 heapB/conn	      4096 stackB/conn
--- SKIP: BenchmarkCompressedIdleConn/takeover-w10/ecows: no context takeover (answer "permessage-deflate; server_no_context_takeover; server_max_window_bits=10")
--- SKIP: BenchmarkCompressedIdleConn/takeover-w10/gorilla: no context takeover (answer "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
BenchmarkCompressedIdleConn/takeover-w10/gws-2    	       1	2524758613 ns/op	      1000 conns	         1.000 goroutines/conn	     12288 heapB/conn	      4096 stackB/conn
BenchmarkCompressedIdleConn/no-takeover/ecows-2   	       1	2695715684 ns/op	      1000 conns	         1.000 goroutines/conn	     15360 heapB/conn	      8192 stackB/conn
`

func TestCompressedIdleTable(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "inproc.txt"), []byte(idleOutput), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &report{servers: bench.Servers(), samples: map[string]map[string][]float64{}, meta: map[string]string{}}
	r.readBench(filepath.Join(dir, "inproc.txt"))
	md := r.render("quick")
	for _, want := range []string{
		"| agreement: metric | ecows | gorilla | gws | ecows vs best rival | target |",
		// The median of ecows's two rounds, 14 KiB, against gws's 10.
		"| no-takeover: heap KiB/conn ↓ | 14.0 | 12.0 | 10.0 | 0.71× (gws) | ≤ 10.0: ✗ |",
		"| no-takeover: stack KiB/conn ↓ | 8.0 | 8.0 | 4.0 | 0.50× (gws) | |",
		"| takeover-w15: heap KiB/conn ↓ | 1240.0 | n/a | 72.0 | 0.06× (gws) | ≤ 72.0: ✗ |",
		"| takeover-w15: conns measured | 1,600 | n/a | 1,000 | – | |",
		"| takeover-w10: heap KiB/conn ↓ | n/a | n/a | 12.0 | – | ≤ 12.0: ecows not measured |",
		`- takeover-w10, ecows: no context takeover (answer "permessage-deflate; server_no_context_takeover; server_max_window_bits=10")`,
		`- takeover-w15, gorilla: no context takeover (answer "permessage-deflate; server_no_context_takeover; client_no_context_takeover")`,
	} {
		if !strings.Contains(md, want+"\n") {
			t.Errorf("no line %q in:\n%s", want, md)
		}
	}
	if strings.Contains(md, "echo 1 KiB JSON") {
		t.Errorf("an echo table without BenchmarkCompressedEcho in the output:\n%s", md)
	}
}
