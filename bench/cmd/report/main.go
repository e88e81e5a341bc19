// Command report turns the raw results of bench/run.sh into bench/RESULTS.md: one markdown
// table with every library's median in each row and ecows's ratio to the best rival, then one
// for the latency scenarios (p50 and p99 per library, ecows ÷ gorilla) when latency.jsonl has
// them, and for the compressed benchmarks (BenchmarkCompressedEcho, and
// BenchmarkCompressedIdleConn per agreement, with the reasons of the libraries it skipped)
// when inproc.txt has them. When run.sh measured a baseline
// (BASE=<rev>; meta.txt base=, runs labelled ecows@base), the baseline stays out of the main
// table and its ratios, and a section of its own (base.go) sets it against the same best rival.
//
//	report -dir RAW -mode quick -out RESULTS.md
//
// RAW holds what run.sh collected: load.jsonl, idle.jsonl and latency.jsonl (one cmd/loadgen
// JSON line per run), inproc.txt (the in-process benchmarks' output, one pass per round) and meta.txt
// (key=value lines: rounds, warmup, duration, loadavg_start, loadavg_end, ...).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ecows/ecows/bench"
	"github.com/ecows/ecows/bench/internal/load"
)

func main() {
	dir := flag.String("dir", "", "directory of raw results")
	mode := flag.String("mode", "quick", "run.sh mode, for the title")
	out := flag.String("out", "", "write the report here as well as to stdout")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("report: ")
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	r := &report{servers: bench.Servers(), samples: map[string]map[string][]float64{}}
	r.readMeta(filepath.Join(*dir, "meta.txt"))
	r.readJSONL(filepath.Join(*dir, "load.jsonl"))
	r.readJSONL(filepath.Join(*dir, "idle.jsonl"))
	r.readJSONL(filepath.Join(*dir, "latency.jsonl"))
	r.readBench(filepath.Join(*dir, "inproc.txt"))
	md := r.render(*mode)
	os.Stdout.WriteString(md)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// A row of the table: a metric, where higher or lower is better, and how to show it.
type row struct {
	key    string // samples key
	label  string
	higher bool // higher is better
	format func(float64) string
	only   map[string]bool // servers that have this row (nil: all)
	ref    string          // extra note, e.g. the copy() reference
}

type report struct {
	servers []bench.Server
	meta    map[string]string
	// samples[metric][server name] = values, one per round
	samples map[string]map[string][]float64
	fails   []string
	// zlibs are the compressed variants of BenchmarkCompressedEcho in the order the benchmark
	// ran them; their samples are under "z/..." keys.
	zlibs []string
	// zmodes are BenchmarkCompressedIdleConn's agreements in the order it ran them; samples
	// under "zi/MODE/..." keys, by library; zskips[MODE+"/"+library] says why a library was
	// not measured in a mode.
	zmodes, zilibs []string
	zskips         map[string]string
}

func (r *report) add(metric, server string, v float64) {
	m := r.samples[metric]
	if m == nil {
		m = map[string][]float64{}
		r.samples[metric] = m
	}
	m[server] = append(m[server], v)
}

func (r *report) readMeta(path string) {
	r.meta = map[string]string{}
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			r.meta[k] = strings.TrimSpace(v)
		}
	}
}

type line struct {
	Kind     string             `json:"kind"`
	Lib      string             `json:"lib"`
	Shape    string             `json:"shape"`
	Scenario string             `json:"scenario"`
	Error    string             `json:"error"`
	Result   load.Result        `json:"result"`
	Idle     load.IdleResult    `json:"idle"`
	Latency  load.LatencyResult `json:"latency"`
}

func (r *report) readJSONL(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			continue
		}
		name := l.Lib + "/" + l.Shape
		switch {
		case l.Error != "":
			r.fails = append(r.fails, fmt.Sprintf("%s %s: %s", name, l.Scenario, l.Error))
		case l.Kind == "load":
			res := l.Result
			r.add(l.Scenario+"/msgs", name, res.MsgPerSec)
			r.add(l.Scenario+"/mbs", name, res.MBPerSec)
			r.add(l.Scenario+"/p50", name, res.P50us)
			r.add(l.Scenario+"/p99", name, res.P99us)
		case l.Kind == "latency":
			// One latency server per library: keyed by library alone.
			r.add("lat/"+l.Scenario+"/p50", l.Lib, l.Latency.P50us)
			r.add("lat/"+l.Scenario+"/p99", l.Lib, l.Latency.P99us)
			r.add("lat/"+l.Scenario+"/samples", l.Lib, float64(l.Latency.Samples))
		case l.Kind == "idle":
			id := l.Idle
			r.add("idle/conns", name, float64(id.Conns))
			r.add("idle/heap", name, id.HeapPerConn)
			r.add("idle/stack", name, id.StackPerConn)
			r.add("idle/total", name, id.HeapPerConn+id.StackPerConn)
			r.add("idle/rss", name, id.RSSPerConn)
			r.add("idle/goroutines", name, id.GoroutinesPerConn)
		}
	}
}

// benchLine matches `BenchmarkName-N  iters  v unit  v unit ...`.
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// idleSkipLine matches the reason BenchmarkCompressedIdleConn prints for a library it does
// not measure in a mode: `--- SKIP: BenchmarkCompressedIdleConn/MODE/LIB: REASON`.
var idleSkipLine = regexp.MustCompile(`^--- SKIP: BenchmarkCompressedIdleConn/([^/\s]+)/([^/\s:]+): (.*)$`)

func (r *report) readBench(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := idleSkipLine.FindStringSubmatch(sc.Text()); m != nil {
			r.zmode(m[1], m[2])
			if r.zskips == nil {
				r.zskips = map[string]string{}
			}
			r.zskips[m[1]+"/"+m[2]] = m[3]
			continue
		}
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		vals := map[string]float64{}
		fields := strings.Fields(m[2])
		for i := 0; i+1 < len(fields); i += 2 {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
				vals[fields[i+1]] = v
			}
		}
		parts := strings.Split(m[1], "/")
		switch {
		case parts[0] == "BenchmarkEcho128" && len(parts) == 3:
			name := parts[1] + "/" + parts[2]
			r.add("echo/ns", name, vals["ns/op"])
			r.add("echo/bytes", name, vals["B/op"])
			r.add("echo/allocs", name, vals["allocs/op"])
		case parts[0] == "BenchmarkMask" && len(parts) == 3:
			// Masking has no shape: ecows and gobwas go in their message columns.
			r.add("mask/"+parts[1], parts[2]+"/message", vals["MB/s"]/1e3)
		case parts[0] == "BenchmarkCompressedEcho" && len(parts) == 3:
			r.zlib(parts[2])
			for unit, key := range map[string]string{"ns/op": "ns", "B/op": "bytes", "allocs/op": "allocs", "wireB/msg": "wire"} {
				if v, ok := vals[unit]; ok {
					r.add("z/"+parts[1]+"/"+key, parts[2], v)
				}
			}
		case parts[0] == "BenchmarkCompressedIdleConn" && len(parts) == 3:
			r.zmode(parts[1], parts[2])
			for unit, key := range map[string]string{"heapB/conn": "heap", "stackB/conn": "stack", "goroutines/conn": "goroutines", "conns": "conns"} {
				if v, ok := vals[unit]; ok {
					r.add("zi/"+parts[1]+"/"+key, parts[2], v)
				}
			}
		}
	}
}

func (r *report) zlib(name string) {
	if !slices.Contains(r.zlibs, name) {
		r.zlibs = append(r.zlibs, name)
	}
}

func (r *report) zmode(mode, lib string) {
	if !slices.Contains(r.zmodes, mode) {
		r.zmodes = append(r.zmodes, mode)
	}
	if !slices.Contains(r.zilibs, lib) {
		r.zilibs = append(r.zilibs, lib)
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *report) rows() []row {
	var rows []row
	f0 := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	thousands := func(v float64) string { return group(int64(math.Round(v))) }
	sig := func(v float64) string {
		switch {
		case v >= 100:
			return strconv.FormatFloat(v, 'f', 0, 64)
		case v >= 10:
			return strconv.FormatFloat(v, 'f', 1, 64)
		default:
			return strconv.FormatFloat(v, 'f', 2, 64)
		}
	}
	for _, s := range load.Scenarios {
		rows = append(rows,
			row{key: s.Name + "/msgs", label: s.Label + ": msg/s ↑", higher: true, format: thousands},
			row{key: s.Name + "/mbs", label: s.Label + ": MB/s ↑", higher: true, format: sig},
			row{key: s.Name + "/p50", label: s.Label + ": p50 µs ↓", format: f0},
			row{key: s.Name + "/p99", label: s.Label + ": p99 µs ↓", format: f0},
		)
	}
	rows = append(rows,
		row{key: "echo/ns", label: "in memory, echo one 128 B frame: ns/op ↓", format: sig},
		row{key: "echo/bytes", label: "in memory, echo one 128 B frame: B/op ↓", format: f0},
		row{key: "echo/allocs", label: "in memory, echo one 128 B frame: allocs/op ↓", format: f0},
	)
	conns := median(r.samples["idle/conns"]["ecows/message"])
	idle := "idle conn"
	if !math.IsNaN(conns) {
		idle = fmt.Sprintf("%s idle conns", group(int64(conns)))
	}
	kib := func(v float64) string { return strconv.FormatFloat(v/1024, 'f', 1, 64) }
	rows = append(rows,
		row{key: "idle/heap", label: idle + ": heap B/conn ↓", format: f0},
		row{key: "idle/stack", label: idle + ": stack KiB/conn ↓", format: kib},
		row{key: "idle/total", label: idle + ": heap+stack KiB/conn ↓", format: kib},
		row{key: "idle/rss", label: idle + ": RSS KiB/conn ↓", format: kib},
		row{key: "idle/goroutines", label: idle + ": goroutines/conn ↓", format: func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }},
	)
	maskOnly := map[string]bool{"ecows/message": true, "gobwas/message": true}
	for _, size := range []string{"4KiB", "1MiB"} {
		label := "mask " + strings.Replace(size, "Ki", " Ki", 1) + " in place: GB/s ↑"
		label = strings.Replace(label, "1MiB", "1 MiB", 1)
		ref := ""
		if v := median(r.samples["mask/"+size]["copy/message"]); !math.IsNaN(v) {
			ref = fmt.Sprintf("copy(): %s GB/s", sig(v))
		}
		rows = append(rows, row{key: "mask/" + size, label: label, higher: true, format: sig, only: maskOnly, ref: ref})
	}
	return rows
}

func (r *report) render(mode string) string {
	var b bytes.Buffer
	date := time.Now().UTC().Format("2006-01-02 15:04 UTC")
	fmt.Fprintf(&b, "# ecows against its rivals (`bench/run.sh %s`)\n\n", mode)
	fmt.Fprintf(&b, "- Date: %s\n", date)
	fmt.Fprintf(&b, "- Machine: %s, %d cores (`lscpu`: %s)\n", cpuModel(), runtime.NumCPU(), lscpuCores())
	fmt.Fprintf(&b, "- Go: %s; ecows at %s; rivals: %s\n", runtime.Version(), or(r.meta["ecows"], "?"), versions())
	fmt.Fprintf(&b, "- Runs: %s rounds, libraries interleaved (each round runs every server once per scenario, in a rotated order); each load run %s warm-up + %s measured; every cell is the median over rounds.\n",
		r.meta["rounds"], r.meta["warmup"], r.meta["duration"])
	if la := r.meta["loadavg_start"]; la != "" {
		fmt.Fprintf(&b, "- Load average before / after: %s / %s. ", la, r.meta["loadavg_end"])
	}
	if r.meta["noisy"] != "" {
		fmt.Fprintf(&b, "**%s**", r.meta["noisy"])
	}
	b.WriteString("\n")
	if base := r.meta["base"]; base != "" {
		fmt.Fprintf(&b, "- Baseline: ecows at %s (`BASE=%s`), run in the same rounds as `%s` and left out of the table below; see [Against the baseline](#against-the-baseline).\n",
			or(r.meta["base_rev"], "?"), base, baseLib)
	}
	b.WriteString("\n")
	b.WriteString("Client and server are separate processes on the same cores; the client is `cmd/loadgen` (raw TCP, prebuilt masked frames) for every server. ")
	b.WriteString("msg/s and MB/s count echoed messages and their payload (one direction, 10^6 B); latency is the round trip per message, send to echo, with the window's queueing included. ")
	b.WriteString("The last column is ecows's best shape against the best rival in that row: above 1 ecows is better, below 1 it is behind by that factor.\n\n")

	cols := r.servers
	b.WriteString("| metric |")
	for _, s := range cols {
		fmt.Fprintf(&b, " %s |", s.Name())
	}
	b.WriteString(" ecows vs best rival |\n|---|")
	for range cols {
		b.WriteString("---:|")
	}
	b.WriteString("---|\n")
	for _, rw := range r.rows() {
		m := r.samples[rw.key]
		if m == nil {
			continue
		}
		fmt.Fprintf(&b, "| %s |", rw.label)
		best := map[bool]float64{} // ecows?, best value
		bestName := ""
		have := map[bool]bool{}
		for _, s := range cols {
			v := median(m[s.Name()])
			if (rw.only != nil && !rw.only[s.Name()]) || math.IsNaN(v) {
				b.WriteString(" – |")
				continue
			}
			fmt.Fprintf(&b, " %s |", rw.format(v))
			isEcows := s.Lib == "ecows"
			if !have[isEcows] || better(v, best[isEcows], rw.higher) {
				best[isEcows], have[isEcows] = v, true
				if !isEcows {
					bestName = s.Name()
				}
			}
		}
		ratio := "–"
		if have[true] && have[false] {
			ratio = ratioText(best[true], best[false], rw.higher) + " (" + bestName + ")"
		}
		if rw.ref != "" {
			ratio += "; " + rw.ref
		}
		fmt.Fprintf(&b, " %s |\n", ratio)
	}
	b.WriteString("\nServers (`bench/servers_*.go`), each as its library's documentation shows it, compression off, message limit 2 MiB:\n\n")
	for _, s := range cols {
		fmt.Fprintf(&b, "- `%s`: %s\n", s.Name(), s.Doc)
	}
	r.renderBase(&b)
	r.renderLatency(&b)
	r.renderCompression(&b)
	if len(r.fails) > 0 {
		b.WriteString("\nFailed runs (left out of the medians):\n\n")
		for _, f := range r.fails {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	return b.String()
}

// latencyTarget is the most ecows's p50 may be, as a multiple of gorilla's, in every latency
// scenario.
const latencyTarget = 1.10

// renderLatency writes the latency section, when the run has it: per scenario, each
// library's median p50 and p99 over rounds, and ecows's as a multiple of gorilla's (below 1
// ecows is faster), checked against latencyTarget on the p50 rows.
func (r *report) renderLatency(b *bytes.Buffer) {
	var libs []string
	for _, l := range bench.Libs {
		for _, sc := range load.LatencyScenarios {
			if len(r.samples["lat/"+sc.Name+"/p50"][l]) > 0 {
				libs = append(libs, l)
				break
			}
		}
	}
	if len(libs) == 0 {
		return
	}
	// The baseline (BASE) gets a column after ecows's, and two of its own at the end.
	withBase := false
	for _, sc := range load.LatencyScenarios {
		if len(r.samples["lat/"+sc.Name+"/p50"][baseLib]) > 0 && slices.Contains(libs, "ecows") {
			withBase = true
			libs = slices.Insert(libs, slices.Index(libs, "ecows")+1, baseLib)
			break
		}
	}
	f0 := func(v float64) string { return group(int64(math.Round(v))) }
	b.WriteString("\n## Latency\n\n")
	fmt.Fprintf(b, "One connection at a time (`cmd/loadgen -latency`), each library's latency handlers (`LatencyServers`, `servers_*.go`, default options: ecows with its write coalescing, FlushDelay 100 µs) in a server process of its own, one per library for all the rounds; %s rounds, each runs every scenario against every library, the libraries' order rotated each round; each run %s warm-up + %s measured; every cell is the median over rounds of that run's p50 or p99, in µs.",
		or(r.meta["lat_rounds"], "?"), or(r.meta["lat_warmup"], "?"), or(r.meta["lat_duration"], "?"))
	if sec := r.meta["lat_seconds"]; sec != "" {
		fmt.Fprintf(b, " The latency rounds took %s s.", sec)
	}
	b.WriteString("\n\n")
	b.WriteString("- push: the server writes a 24-byte message every 1 ms, unasked; latency is its receipt minus the send time stamped in it just before the write call (client and server read the same host clock).\n")
	b.WriteString("- work: the handler reads a request, writes a 24-byte reply, then computes (busy, on the CPU) for 2 ms before it reads again; the client writes a burst of 1 or 4 requests in one write and waits 2.5 ms after the burst's last reply. ")
	b.WriteString("Latency is the reply's receipt minus the later of the request's send and the moment the handler was ready for it (stamped in the reply): the first request of a burst counts its whole round trip, the others their time from the end of the work before them, so a reply a library holds back while the handler computes shows in full and the queueing behind that work, the same for everyone, does not.\n")
	b.WriteString("- rr: request/response with no work, the next request written as the reply arrives.\n\n")
	b.WriteString("The ecows ÷ gorilla column is ecows's latency as a multiple of gorilla's (below 1 ecows is faster); on the p50 rows ✓ marks a scenario within the target of ")
	fmt.Fprintf(b, "%.2f×.", latencyTarget)
	if withBase {
		fmt.Fprintf(b, " `%s` is the baseline ecows (see [Against the baseline](#against-the-baseline)), in the same rounds; its ÷ gorilla column is the same ratio for it, and ecows ÷ %s is the change (below 1 the current ecows is faster).", baseLib, baseLib)
	}
	b.WriteString("\n\n| scenario |")
	for _, l := range libs {
		fmt.Fprintf(b, " %s |", l)
	}
	b.WriteString(" ecows ÷ gorilla |")
	if withBase {
		fmt.Fprintf(b, " %s ÷ gorilla | ecows ÷ %s |", baseLib, baseLib)
	}
	b.WriteString("\n|---|")
	for range libs {
		b.WriteString("---:|")
	}
	b.WriteString("---|")
	if withBase {
		b.WriteString("---|---|")
	}
	b.WriteString("\n")
	for _, sc := range load.LatencyScenarios {
		for _, q := range []string{"p50", "p99"} {
			m := r.samples["lat/"+sc.Name+"/"+q]
			if m == nil {
				continue
			}
			fmt.Fprintf(b, "| %s: %s µs ↓ |", sc.Label, q)
			for _, l := range libs {
				if v := median(m[l]); !math.IsNaN(v) {
					fmt.Fprintf(b, " %s |", f0(v))
				} else {
					b.WriteString(" – |")
				}
			}
			e, g := median(m["ecows"]), median(m["gorilla"])
			switch {
			case math.IsNaN(e) || math.IsNaN(g) || g == 0:
				b.WriteString(" – |")
			case q == "p50" && e/g <= latencyTarget:
				fmt.Fprintf(b, " %.2f× ✓ |", e/g)
			case q == "p50":
				fmt.Fprintf(b, " %.2f× ✗ |", e/g)
			default:
				fmt.Fprintf(b, " %.2f× |", e/g)
			}
			if withBase {
				eb := median(m[baseLib])
				for _, p := range [][2]float64{{eb, g}, {e, eb}} {
					if math.IsNaN(p[0]) || math.IsNaN(p[1]) || p[1] == 0 {
						b.WriteString(" – |")
					} else {
						fmt.Fprintf(b, " %.2f× |", p[0]/p[1])
					}
				}
			}
			b.WriteString("\n")
		}
	}
	if m := r.samples["lat/work4/samples"]; m != nil {
		fmt.Fprintf(b, "\nSamples per run (median): ")
		var parts []string
		for _, sc := range load.LatencyScenarios {
			if v := median(r.samples["lat/"+sc.Name+"/samples"]["ecows"]); !math.IsNaN(v) {
				parts = append(parts, fmt.Sprintf("%s %s", sc.Name, f0(v)))
			}
		}
		b.WriteString(strings.Join(parts, ", ") + " (ecows's runs).\n")
	}
}

// renderCompression writes the permessage-deflate section, when the run has its benchmarks.
func (r *report) renderCompression(b *bytes.Buffer) {
	if len(r.zlibs) == 0 && len(r.zmodes) == 0 {
		return
	}
	b.WriteString("\n## Compression (permessage-deflate)\n")
	if len(r.zlibs) > 0 {
		r.renderCompressedEcho(b)
	}
	if len(r.zmodes) > 0 {
		r.renderCompressedIdle(b)
	}
}

// renderCompressedEcho writes BenchmarkCompressedEcho's table: one column per compressed
// variant, and ecows's ratio to the best rival of the same kind (ecows against gorilla, coder
// and gws without context takeover; ecows-takeover against coder-takeover and gws-takeover).
func (r *report) renderCompressedEcho(b *bytes.Buffer) {
	f0 := func(v float64) string { return group(int64(math.Round(v))) }
	var rows []row
	for _, p := range []struct{ key, label string }{{"json-1KiB", "echo 1 KiB JSON"}, {"text-64KiB", "echo 64 KiB text"}} {
		rows = append(rows,
			row{key: "z/" + p.key + "/ns", label: p.label + ": ns/op ↓", format: f0},
			row{key: "z/" + p.key + "/bytes", label: p.label + ": B/op ↓", format: f0},
			row{key: "z/" + p.key + "/allocs", label: p.label + ": allocs/op ↓", format: f0},
			row{key: "z/" + p.key + "/wire", label: p.label + ": wire B/msg ↓", format: f0},
		)
	}
	b.WriteString("\nIn-process benchmarks (`compress_test.go`): each library's own client and server, compression on as its documentation shows, default level (BestSpeed) and threshold; `-takeover` keeps the LZ77 window between messages in both directions (gorilla has no such mode). ")
	b.WriteString("An echo op is one round trip over loopback TCP (client compresses and writes, server inflates, compresses and writes back, client inflates and checks), so ns, B and allocs per op cover both ends; wire B/msg is what crossed the wire per message per direction, frame headers included. ")
	b.WriteString("Ratios: ecows against the best of gorilla, coder and gws; ecows-takeover against the best of coder-takeover and gws-takeover.\n\n")
	b.WriteString("| metric |")
	for _, l := range r.zlibs {
		fmt.Fprintf(b, " %s |", l)
	}
	b.WriteString(" ecows vs best rival | ecows-takeover vs best rival |\n|---|")
	for range r.zlibs {
		b.WriteString("---:|")
	}
	b.WriteString("---|---|\n")
	takeover := func(l string) bool { return strings.HasSuffix(l, "-takeover") }
	for _, rw := range rows {
		m := r.samples[rw.key]
		if m == nil {
			continue
		}
		fmt.Fprintf(b, "| %s |", rw.label)
		for _, l := range r.zlibs {
			if v := median(m[l]); !math.IsNaN(v) {
				fmt.Fprintf(b, " %s |", rw.format(v))
			} else {
				b.WriteString(" – |")
			}
		}
		for _, mine := range []string{"ecows", "ecows-takeover"} {
			own := median(m[mine])
			best, bestName := math.NaN(), ""
			for _, l := range r.zlibs {
				v := median(m[l])
				if strings.HasPrefix(l, "ecows") || takeover(l) != takeover(mine) || math.IsNaN(v) {
					continue
				}
				if bestName == "" || better(v, best, rw.higher) {
					best, bestName = v, l
				}
			}
			if math.IsNaN(own) || bestName == "" {
				b.WriteString(" – |")
				continue
			}
			fmt.Fprintf(b, " %s (%s) |", ratioText(own, best, rw.higher), bestName)
		}
		b.WriteString("\n")
	}
}

// idleTargets are issue 20's bounds on ecows's heap per idle compressed connection, in bytes,
// by agreement; without takeover the bound is the best rival's.
var idleTargets = map[string]float64{"takeover-w15": 72 << 10, "takeover-w10": 12 << 10}

// renderCompressedIdle writes BenchmarkCompressedIdleConn's table: a group of rows per
// agreement, a column per library, ecows's ratio to the best rival, and for the heap whether
// ecows is within issue 20's target; then why libraries were not measured.
func (r *report) renderCompressedIdle(b *bytes.Buffer) {
	kib := func(v float64) string { return strconv.FormatFloat(v/1024, 'f', 1, 64) }
	f2 := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	f0 := func(v float64) string { return group(int64(math.Round(v))) }
	conns := ""
	if v := median(r.samples["zi/no-takeover/conns"]["ecows"]); !math.IsNaN(v) {
		conns = f0(v) + " "
	}
	b.WriteString("\nIdle compressed connections (`compress_idle_test.go`; server in the test binary, raw clients in a child process): " + conns + "connections per library and agreement, fewer where the heap passed the benchmark's budget (the conns row), ")
	b.WriteString("each after 33 distinct 1 KiB JSON messages each way, one at a time, so that a window of up to 32 KiB is full in both directions; server heap, goroutine stacks and goroutines per connection. ")
	b.WriteString("Agreements: `no-takeover` (both no_context_takeover parameters offered), `takeover-w15` (plain permessage-deflate offered; context kept both ways, 2^15 windows), `takeover-w10` (server_max_window_bits=10 and client_max_window_bits=10 offered and both answered). ")
	b.WriteString("n/a: the library's answer does not agree to the mode (quoted below). Targets (issue 20): ecows's heap with takeover at most 72 KiB at 2^15 and 12 KiB at 2^10, without takeover at most the best rival's.\n\n")
	b.WriteString("| agreement: metric |")
	for _, l := range r.zilibs {
		fmt.Fprintf(b, " %s |", l)
	}
	b.WriteString(" ecows vs best rival | target |\n|---|")
	for range r.zilibs {
		b.WriteString("---:|")
	}
	b.WriteString("---|---|\n")
	for _, mode := range r.zmodes {
		for _, rw := range []row{
			{key: "heap", label: "heap KiB/conn ↓", format: kib},
			{key: "stack", label: "stack KiB/conn ↓", format: kib},
			{key: "goroutines", label: "goroutines/conn ↓", format: f2},
			{key: "conns", label: "conns measured", format: f0},
		} {
			m := r.samples["zi/"+mode+"/"+rw.key]
			fmt.Fprintf(b, "| %s: %s |", mode, rw.label)
			best, bestName := math.NaN(), ""
			for _, l := range r.zilibs {
				v := median(m[l])
				switch {
				case !math.IsNaN(v):
					fmt.Fprintf(b, " %s |", rw.format(v))
				case r.zskips[mode+"/"+l] != "":
					b.WriteString(" n/a |")
				default:
					b.WriteString(" – |")
				}
				if l != "ecows" && !math.IsNaN(v) && (bestName == "" || better(v, best, rw.higher)) {
					best, bestName = v, l
				}
			}
			own := median(m["ecows"])
			if rw.key == "conns" || math.IsNaN(own) || bestName == "" {
				b.WriteString(" – |")
			} else {
				fmt.Fprintf(b, " %s (%s) |", ratioText(own, best, rw.higher), bestName)
			}
			target, ok := idleTargets[mode]
			if !ok && mode == "no-takeover" {
				target, ok = best, bestName != ""
			}
			switch {
			case rw.key != "heap" || !ok:
				b.WriteString(" |\n")
			case math.IsNaN(own):
				fmt.Fprintf(b, " ≤ %s: ecows not measured |\n", kib(target))
			case own <= target:
				fmt.Fprintf(b, " ≤ %s: ✓ |\n", kib(target))
			default:
				fmt.Fprintf(b, " ≤ %s: ✗ |\n", kib(target))
			}
		}
	}
	if len(r.zskips) > 0 {
		b.WriteString("\nNot measured:\n\n")
		for _, mode := range r.zmodes {
			for _, l := range r.zilibs {
				if why := r.zskips[mode+"/"+l]; why != "" {
					fmt.Fprintf(b, "- %s, %s: %s\n", mode, l, why)
				}
			}
		}
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func better(v, than float64, higher bool) bool {
	if higher {
		return v > than
	}
	return v < than
}

// advantage is ecows's advantage over rival: above 1 ecows is better.
func advantage(ecows, rival float64, higher bool) float64 {
	num, den := ecows, rival
	if !higher {
		num, den = rival, ecows
	}
	switch {
	case num == 0 && den == 0:
		return 1
	case den == 0:
		return math.Inf(1)
	}
	return num / den
}

// ratioText is ecows's advantage as text: above 1 ecows is better.
func ratioText(ecows, rival float64, higher bool) string {
	a := advantage(ecows, rival, higher)
	if math.IsInf(a, 1) {
		return "∞"
	}
	return strconv.FormatFloat(a, 'f', 2, 64) + "×"
}

// group writes n with thousands separators.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func lscpu() string {
	out, err := exec.Command("lscpu").Output()
	if err != nil {
		return ""
	}
	return string(out)
}

func lscpuField(name string) string {
	for _, l := range strings.Split(lscpu(), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func cpuModel() string {
	m := lscpuField("Model name")
	if m == "" {
		m = runtime.GOARCH
	}
	if h := lscpuField("Hypervisor vendor"); h != "" {
		m += " (" + h + " guest)"
	}
	return m
}

func lscpuCores() string {
	return fmt.Sprintf("CPU(s) %s, core(s) per socket %s, thread(s) per core %s",
		lscpuField("CPU(s)"), lscpuField("Core(s) per socket"), lscpuField("Thread(s) per core"))
}

// versions lists the rival modules compiled into this binary (through package bench).
func versions() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "?"
	}
	var v []string
	for _, d := range bi.Deps {
		switch d.Path {
		case "github.com/gorilla/websocket", "github.com/coder/websocket", "github.com/gobwas/ws", "github.com/lxzan/gws":
			v = append(v, d.Path+" "+d.Version)
		}
	}
	return strings.Join(v, ", ")
}
