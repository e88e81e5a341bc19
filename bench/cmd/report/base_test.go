package main

import (
	"strings"
	"testing"

	"github.com/ecows/ecows/bench"
	"github.com/ecows/ecows/bench/internal/load"
)

// testReport has one load scenario's msg/s: ecows 110 (message) and 90 (stream), the best
// rival gorilla/message at 100, and with base the baseline at 200 (message) and 80 (stream).
func testReport(base bool) *report {
	r := &report{servers: bench.Servers(), samples: map[string]map[string][]float64{}, meta: map[string]string{}}
	key := load.Scenarios[0].Name + "/msgs"
	for name, v := range map[string]float64{"ecows/message": 110, "ecows/stream": 90, "gorilla/message": 100, "coder/message": 50} {
		r.add(key, name, v)
	}
	if base {
		r.meta["base"], r.meta["base_rev"] = "HEAD~1", "abc1234"
		r.add(key, baseLib+"/message", 200)
		r.add(key, baseLib+"/stream", 80)
	}
	return r
}

func findLine(t *testing.T, md, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	t.Fatalf("no line %q in:\n%s", prefix, md)
	return ""
}

func TestBaseLeavesMainTableAlone(t *testing.T) {
	without, with := testReport(false).render("quick"), testReport(true).render("quick")
	if strings.Contains(without, baseLib) || strings.Contains(without, "baseline") {
		t.Errorf("report without BASE mentions the baseline:\n%s", without)
	}
	row := "| " + load.Scenarios[0].Label + ": msg/s"
	if a, b := findLine(t, without, row), findLine(t, with, row); a != b || !strings.HasSuffix(a, " 1.10× (gorilla/message) |") {
		t.Errorf("main table row\nwithout BASE: %s\nwith BASE:    %s\nwant both ending in 1.10× (gorilla/message)", a, b)
	}
}

func TestBaseSection(t *testing.T) {
	md := testReport(true).render("quick")
	_, sec, ok := strings.Cut(md, "## Against the baseline")
	if !ok {
		t.Fatalf("no baseline section:\n%s", md)
	}
	// message: 110 ÷ 200; stream: 90 ÷ 80; ecows 1.10× and base 2.00× the rival; change 55%.
	want := "| " + load.Scenarios[0].Label + ": msg/s ↑ | 110 | 200 | 0.55× | 90 | 80 | 1.12× | 1.10× (gorilla/message) | 2.00× | 55.0% ✗ |"
	if got := findLine(t, sec, "| "+load.Scenarios[0].Label+": msg/s"); got != want {
		t.Errorf("baseline row\n got %s\nwant %s", got, want)
	}
}

func TestChangeText(t *testing.T) {
	for _, c := range []struct {
		now, before float64
		want        string
	}{
		{1, 1, "100.0% ✓"},
		{0.95, 1, "95.0% ✓"},
		{0.94, 1, "94.0% ✗"},
		{2, 1, "200.0% ✓"},
		{1, 0, "–"},
	} {
		if got := changeText(c.now, c.before); got != c.want {
			t.Errorf("changeText(%v, %v) = %q, want %q", c.now, c.before, got, c.want)
		}
	}
}
