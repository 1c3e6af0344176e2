package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// writeTable prints the rows as a Markdown table. The median columns come
// first; "best s" and "best speedup" use each variant's fastest round,
// which other load on the machine disturbs least.
func writeTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "| variant\t| total s\t| text encoder s\t| denoise s\t| decode s\t| speedup\t| best s\t| best speedup\t| MAC ratio\t| measured/MAC\t| best/MAC\t| GMACs\t| peak bytes\t|")
	fmt.Fprintln(tw, "|---\t|---:\t|---:\t|---:\t|---:\t|---:\t|---:\t|---:\t|---:\t|---:\t|---:\t|---:\t|---:\t|")
	for _, r := range rows {
		fmt.Fprintf(tw, "| %s\t| %.2f\t| %.3f\t| %.2f\t| %.3f\t| %.2f×\t| %.2f\t| %.2f×\t| %.2f×\t| %.3f\t| %.3f\t| %.1f\t| %d\t|\n",
			r.name, r.tot.Seconds(), r.text.Seconds(), r.denoise.Seconds(), r.decode.Seconds(),
			r.speedup, r.best.Seconds(), r.bestSpeedup, r.macRatio, r.speedup/r.macRatio, r.bestSpeedup/r.macRatio, float64(r.macs)/1e9, r.peak)
	}
	tw.Flush()
}
