// Package httpenc holds the HTTP content negotiation the project's servers
// share (the development server and the Cloudflare Worker).
package httpenc

import (
	"strconv"
	"strings"
)

// AcceptsGzip reports whether an Accept-Encoding header value accepts gzip
// (named, or through "*", without q=0), as RFC 9110 §12.5.3 defines it.
func AcceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "*" {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		if q > 0 {
			return true
		}
	}
	return false
}
