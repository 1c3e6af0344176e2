package main

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"testing"
)

// TestQuick runs the benchmark's smoke mode on the tiny fixture model and
// checks the table's structure: one row per variant with finite, positive
// times and ratios. It never checks timing.
func TestQuick(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run([]string{"-quick"}, &out, &errs); code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, errs.String())
	}
	want := []string{"off", "v1-g2", "v2-g2", "v1-g1", "v2-g1"}
	var got []string
	for _, line := range strings.Split(out.String(), "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| variant") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), "|")
		if len(cells) != 13 {
			t.Fatalf("row %q has %d cells, want 13", line, len(cells))
		}
		for i := range cells {
			cells[i] = strings.TrimSuffix(strings.TrimSpace(cells[i]), "×")
		}
		got = append(got, cells[0])
		for i, c := range cells[1:] {
			v, err := strconv.ParseFloat(c, 64)
			if err != nil {
				t.Fatalf("row %s, column %d: %q is not a number", cells[0], i+2, c)
			}
			// Text-encoder time may round to zero on the tiny model.
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || (v == 0 && i != 1) {
				t.Errorf("row %s, column %d: %v is not finite and positive", cells[0], i+2, v)
			}
		}
		if cells[0] == "off" && (cells[5] != "1.00" || cells[7] != "1.00" || cells[8] != "1.00") {
			t.Errorf("off row: speedup %s, best speedup %s, MAC ratio %s, want 1.00", cells[5], cells[7], cells[8])
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("rows %v, want %v\n%s", got, want, out.String())
	}
}
