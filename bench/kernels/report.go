package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// tolerance is the largest |output − reference| / max|reference| an
// engine's output may have to count as correct. float32 kernels land near
// 1e-6 at these shapes; a wrong kernel (a mis-split head, a missing bias)
// lands near 1.
const tolerance = 1e-3

// result is one engine's outcome on one case.
type result struct {
	engine  string
	times   []float64 // ms per timed rep
	relErr  float64   // max |out − ref| / max |ref|; NaN without output
	vsOurs  float64   // max |out − ours| / max |ref|; NaN without either
	failure string    // the page's error message, if it failed
}

func (r result) median() float64 {
	if len(r.times) == 0 {
		return math.NaN()
	}
	s := slices.Clone(r.times)
	slices.Sort(s)
	return s[len(s)/2]
}

func (r result) correct() bool { return r.failure == "" && r.relErr <= tolerance }

// status is "ok", "WRONG" or "failed: …".
func (r result) status() string {
	switch {
	case r.failure != "":
		return "failed: " + r.failure
	case math.IsNaN(r.relErr):
		return "failed: no output"
	case r.relErr > tolerance:
		return "WRONG"
	}
	return "ok"
}

// maxRelDiff returns max |a − b| / scale, or NaN when a length differs.
func maxRelDiff(a []float32, b []float64, scale float64) float64 {
	if len(a) != len(b) || len(a) == 0 {
		return math.NaN()
	}
	m := 0.0
	for i, v := range a {
		d := math.Abs(float64(v) - b[i])
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		m = max(m, d)
	}
	return m / scale
}

// evaluate checks each engine's output of a case against the float64
// reference and against our output.
func evaluate(c *benchCase, outs map[string][]float32, t timing) []result {
	scale := 0.0
	for _, v := range c.ref {
		scale = max(scale, math.Abs(v))
	}
	var ours []float64
	if o := outs["ours"]; o != nil {
		ours = make([]float64, len(o))
		for i, v := range o {
			ours[i] = float64(v)
		}
	}
	var rs []result
	for _, e := range c.Engines {
		r := result{engine: e, times: t.Times[e], failure: t.Errors[e], relErr: math.NaN(), vsOurs: math.NaN()}
		if o := outs[e]; o != nil {
			r.relErr = maxRelDiff(o, c.ref, scale)
			if ours != nil {
				r.vsOurs = maxRelDiff(o, ours, scale)
			}
		}
		rs = append(rs, r)
	}
	return rs
}

func fmtMs(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func fmtErr(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return strconv.FormatFloat(v, 'e', 1, 64)
}

// summary is one kernel's line: our median, the others' (the fastest
// correct ORT formulation for ort), and ours over the fastest correct
// other engine.
type summary struct {
	kernel            string
	ours, tfjs, ort   string
	ratio             string
	oursMs, bestOther float64
}

// summarize picks the figures of a kernel's line. An engine whose output
// is wrong shows "wrong" instead of a time, one that failed "failed".
func summarize(c *benchCase, rs []result) summary {
	by := map[string]result{}
	for _, r := range rs {
		by[r.engine] = r
	}
	cell := func(r result, ok bool) string {
		switch {
		case !ok:
			return "NA"
		case r.correct():
			return fmtMs(r.median())
		case r.status() == "WRONG":
			return "wrong"
		}
		return "failed"
	}
	s := summary{kernel: c.Name, bestOther: math.Inf(1), oursMs: math.NaN()}
	o, ok := by["ours"]
	s.ours = cell(o, ok)
	if ok && o.correct() {
		s.oursMs = o.median()
	}
	t, ok := by["tfjs"]
	s.tfjs = cell(t, ok)
	if ok && t.correct() {
		s.bestOther = t.median()
	}
	// ORT: the fastest correct formulation; else the first one's state.
	var best *result
	for _, name := range []string{"ort", "ort-mha"} {
		if r, ok := by[name]; ok && r.correct() && (best == nil || r.median() < best.median()) {
			best = &r
		}
	}
	if best != nil {
		s.ort = fmtMs(best.median())
		s.bestOther = min(s.bestOther, best.median())
	} else {
		r, ok := by["ort"]
		s.ort = cell(r, ok)
	}
	s.ratio = "NA"
	if !math.IsNaN(s.oursMs) && !math.IsInf(s.bestOther, 1) {
		s.ratio = strconv.FormatFloat(s.oursMs/s.bestOther, 'f', 2, 64)
	}
	return s
}

// report prints the per-engine table, the per-kernel table and the
// machine-readable lines `kernel=NAME ours_ms=X tfjs_ms=Y ort_ms=Z ratio=R`.
func report(w io.Writer, info pageInfo, cases []*benchCase, results map[string][]result, reps, warmup int) {
	fmt.Fprintf(w, "\nadapter: %s\nbrowser: %s\nours: %s; tfjs: %s; onnxruntime-web: %s\n", info.Adapter, info.UserAgent, info.Ours, info.TFJS, info.ORT)
	fmt.Fprintf(w, "%d warm-up + %d timed reps per engine, interleaved; each rep runs the op and reads the output back; times are medians (ms).\n", warmup, reps)
	fmt.Fprintf(w, "err = max|out − ref| / max|ref| against the float64 reference; vs ours = max|out − ours| / max|ref|; correct when err ≤ %g.\n\n", tolerance)
	fmt.Fprintln(w, "| kernel | engine | median ms | min ms | GFLOP/s | err | vs ours | status |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---|")
	var sums []summary
	for _, c := range cases {
		rs := results[c.Name]
		for _, r := range rs {
			med, lo := r.median(), math.NaN()
			if len(r.times) > 0 {
				lo = slices.Min(r.times)
			}
			gf := "—"
			if !math.IsNaN(med) {
				gf = strconv.FormatFloat(c.FLOPs/med/1e6, 'f', 2, 64)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", c.Name, r.engine, fmtMs(med), fmtMs(lo), gf, fmtErr(r.relErr), fmtErr(r.vsOurs), r.status())
		}
		sums = append(sums, summarize(c, rs))
	}
	fmt.Fprintln(w, "\n| kernel | ours ms | tfjs ms | ort ms (fastest correct graph) | ours / fastest correct other |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, s := range sums {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", s.kernel, s.ours, s.tfjs, s.ort, s.ratio)
	}
	fmt.Fprintln(w)
	for _, s := range sums {
		fmt.Fprintf(w, "kernel=%s ours_ms=%s tfjs_ms=%s ort_ms=%s ratio=%s\n", s.kernel, s.ours, s.tfjs, s.ort, s.ratio)
	}
}

// describe lists the cases (for -list).
func describe(w io.Writer, cases []*benchCase) {
	for _, c := range cases {
		var in []string
		for _, t := range c.Inputs {
			in = append(in, fmt.Sprintf("%s%v", t.Name, t.Shape))
		}
		fmt.Fprintf(w, "%-28s %s; inputs %s; engines %s\n", c.Name, c.Desc, strings.Join(in, " "), strings.Join(c.Engines, ", "))
	}
}
