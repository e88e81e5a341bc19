package main

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
)

// baseLib labels the baseline's ecows servers (run.sh BASE=<rev>): ecows@base/message and
// ecows@base/stream. The baseline is neither ecows nor a rival: the main table leaves it out,
// and renderBase sets it against the same best rival as the new ecows.
const baseLib = "ecows@base"

// baseTolerance is the least the new ecows's ratio to the best rival may be, as a fraction of
// the baseline's ratio to that rival in the same run, for the change column's ✓.
const baseTolerance = 0.95

// ecowsShapes lists the current ecows servers' shapes, in column order.
func (r *report) ecowsShapes() []string {
	var shapes []string
	for _, s := range r.servers {
		if s.Lib == "ecows" {
			shapes = append(shapes, s.Shape)
		}
	}
	return shapes
}

// best returns the best median in row rw among the servers named, and which one it was.
func best(rw row, m map[string][]float64, names []string) (float64, string, bool) {
	v, name, ok := math.NaN(), "", false
	for _, n := range names {
		x := median(m[n])
		if math.IsNaN(x) || (rw.only != nil && !rw.only[n]) {
			continue
		}
		if !ok || better(x, v, rw.higher) {
			v, name, ok = x, n, true
		}
	}
	return v, name, ok
}

// renderBase writes the baseline section when run.sh measured one (meta base=REV): for each
// row the baseline has, the current and baseline ecows servers shape by shape, current ÷
// baseline, ecows's and the baseline's ratios to the best rival (the same rival, the main
// table's), and the change: the current ratio as a percentage of the baseline's.
func (r *report) renderBase(b *bytes.Buffer) {
	if r.meta["base"] == "" {
		return
	}
	shapes := r.ecowsShapes()
	var news, bases, rivals []string
	for _, sh := range shapes {
		news = append(news, "ecows/"+sh)
		bases = append(bases, baseLib+"/"+sh)
	}
	for _, s := range r.servers {
		if s.Lib != "ecows" {
			rivals = append(rivals, s.Name())
		}
	}
	b.WriteString("\n## Against the baseline\n\n")
	fmt.Fprintf(b, "The baseline is ecows at %s (`BASE=%s`): run.sh built that commit's `bench/cmd/echoserver` (its own bench module, so its own ecows) and ran its ecows servers as `%s/SHAPE` in the same rounds as every other server, each right after the current ecows server of its shape, the order rotated each round. ",
		or(r.meta["base_rev"], "?"), r.meta["base"], baseLib)
	b.WriteString("Per shape, *new vs base* is the current server against the baseline's (above 1 the current one is better; for msg/s and MB/s it is new ÷ base). ")
	b.WriteString("*ecows vs best rival* is the main table's column (ecows's best shape against the best rival); *base vs best rival* is the baseline's best shape against that same rival's median; ")
	fmt.Fprintf(b, "*change* is the first as a percentage of the second (the same rival in both, so it is also the best shapes' new vs base), ✓ when at least %.0f%%.\n", baseTolerance*100)
	if notes := r.meta["base_notes"]; notes != "" {
		fmt.Fprintf(b, "\nLeft out for the baseline: %s\n", notes)
	}
	rows := r.rows()
	have := false
	for _, rw := range rows {
		if _, _, ok := best(rw, r.samples[rw.key], bases); ok {
			have = true
			break
		}
	}
	if !have {
		b.WriteString("\nNo run measured the baseline.\n")
		return
	}
	b.WriteString("\n| metric |")
	for _, sh := range shapes {
		fmt.Fprintf(b, " ecows/%s | %s/%s | new vs base |", sh, baseLib, sh)
	}
	b.WriteString(" ecows vs best rival | base vs best rival | change |\n|---|")
	for range shapes {
		b.WriteString("---:|---:|---:|")
	}
	b.WriteString("---|---|---|\n")
	for _, rw := range rows {
		m := r.samples[rw.key]
		baseV, _, ok := best(rw, m, bases)
		if !ok {
			continue
		}
		fmt.Fprintf(b, "| %s |", rw.label)
		for _, sh := range shapes {
			nv, bv := median(m["ecows/"+sh]), median(m[baseLib+"/"+sh])
			for _, v := range []float64{nv, bv} {
				if math.IsNaN(v) {
					b.WriteString(" – |")
				} else {
					fmt.Fprintf(b, " %s |", rw.format(v))
				}
			}
			if math.IsNaN(nv) || math.IsNaN(bv) {
				b.WriteString(" – |")
			} else {
				fmt.Fprintf(b, " %s |", ratioText(nv, bv, rw.higher))
			}
		}
		newV, _, newOK := best(rw, m, news)
		rivalV, rival, rivalOK := best(rw, m, rivals)
		if !rivalOK {
			b.WriteString(" – | – | – |\n")
			continue
		}
		if newOK {
			fmt.Fprintf(b, " %s (%s) |", ratioText(newV, rivalV, rw.higher), rival)
		} else {
			b.WriteString(" – |")
		}
		fmt.Fprintf(b, " %s |", ratioText(baseV, rivalV, rw.higher))
		if !newOK {
			b.WriteString(" – |\n")
			continue
		}
		fmt.Fprintf(b, " %s |\n", changeText(advantage(newV, rivalV, rw.higher), advantage(baseV, rivalV, rw.higher)))
	}
}

// changeText is the new ratio as a percentage of the baseline's, marked against baseTolerance.
func changeText(now, before float64) string {
	c := now / before
	if math.IsNaN(c) || math.IsInf(c, 0) {
		return "–"
	}
	mark := "✓"
	if c < baseTolerance {
		mark = "✗"
	}
	return strconv.FormatFloat(100*c, 'f', 1, 64) + "% " + mark
}
