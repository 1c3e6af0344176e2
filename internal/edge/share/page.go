package share

import (
	"bytes"
	"fmt"
	"html"
	"strconv"
	"strings"

	"github.com/tgate-web/tgate/pnginfo"
)

// Summary is what a share page and its card say about an image.
type Summary struct {
	// Prompt and Negative are the prompts ("" when the PNG carried no
	// settings).
	Prompt, Negative string
	// Sampling is the sampling settings in one line: steps, sampler,
	// guidance, seed.
	Sampling string
	// Image is the size and the model.
	Image string
	// TGate is the T-GATE settings ("T-GATE off" when off or unknown).
	TGate string
}

// Summarize reads the settings of a share's Meta into a Summary. Settings
// that do not parse leave only the size.
func Summarize(m Meta) Summary {
	s := Summary{Image: fmt.Sprintf("%d×%d", m.Width, m.Height), TGate: "T-GATE off"}
	if strings.TrimSpace(m.Parameters) == "" {
		return s
	}
	p, err := pnginfo.Parse(m.Parameters)
	if err != nil {
		s.Prompt = strings.TrimSpace(m.Parameters)
		return s
	}
	s.Prompt, s.Negative = p.Prompt, p.NegativePrompt

	var sampling []string
	if p.Steps > 0 {
		sampling = append(sampling, plural(p.Steps, "step"))
	}
	if p.Sampler != "" {
		sampling = append(sampling, pnginfo.SamplerLabel(p.Sampler))
	} else if v, ok := p.Get("Sampler"); ok {
		sampling = append(sampling, v)
	}
	sampling = append(sampling, "CFG "+pnginfo.FormatFloat(p.Guidance), "seed "+strconv.FormatUint(p.Seed, 10))
	s.Sampling = strings.Join(sampling, " · ")

	if p.Model != "" {
		s.Image += " · " + p.Model
	}

	if mode, ok := p.Get("T-GATE"); ok && mode != "" && mode != "off" {
		parts := []string{"T-GATE " + mode}
		for _, k := range []struct{ key, label string }{
			{"Gate step", "gate step"}, {"SP interval", "SP interval"}, {"FI interval", "FI interval"}, {"Warm up", "warm-up"},
		} {
			if v, ok := p.Get(k.key); ok && v != "" {
				parts = append(parts, k.label+" "+v)
			}
		}
		s.TGate = strings.Join(parts, " · ")
	}
	return s
}

// plural writes n with its noun, plural unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// Title is a share page's title: the prompt, shortened, or a generic one.
func (s Summary) Title() string {
	if s.Prompt == "" {
		return "An image made with tgate-web"
	}
	return ellipsis(strings.Join(strings.Fields(s.Prompt), " "), 90)
}

// Description is a share page's description: its settings in one line.
func (s Summary) Description() string {
	parts := []string{}
	for _, p := range []string{s.Sampling, s.Image, s.TGate} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return "Made in the browser with tgate-web (WebGPU): " + strings.Join(parts, " · ")
}

// ellipsis shortens s to at most n characters, ending in "…" when cut.
func ellipsis(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return strings.TrimSpace(string(r[:n-1])) + "…"
}

// Page renders the share page of m: Open Graph and Twitter card tags for
// link previews, then the image with its prompt and settings. base is the
// Worker's origin as the visitor reached it (https://host), from which the
// absolute URLs that link previews need are made. Every text is HTML
// escaped. (The page is written with package html rather than
// html/template, whose reflection would keep every method of every type
// in the Worker's binary and triple its size.)
func Page(base string, m Meta) ([]byte, error) {
	base = strings.TrimSuffix(base, "/")
	s := Summarize(m)
	e := html.EscapeString
	title, desc := e(s.Title()), e(s.Description())
	pageURL, imageURL, cardURL := e(base+PagePath(m.ID)), e(base+ImagePath(m.ID)), e(base+CardPath(m.ID))

	var b bytes.Buffer
	b.WriteString("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
	b.WriteString("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
	fmt.Fprintf(&b, "<title>%s · tgate-web</title>\n", title)
	meta := func(attr, key, value string) {
		fmt.Fprintf(&b, "<meta %s=\"%s\" content=\"%s\">\n", attr, key, value)
	}
	meta("name", "description", desc)
	fmt.Fprintf(&b, "<link rel=\"canonical\" href=\"%s\">\n", pageURL)
	for _, kv := range [][2]string{
		{"og:type", "website"}, {"og:site_name", "tgate-web"}, {"og:title", title}, {"og:description", desc},
		{"og:url", pageURL}, {"og:image", cardURL}, {"og:image:type", "image/png"},
		{"og:image:width", "1200"}, {"og:image:height", "630"}, {"og:image:alt", title},
	} {
		meta("property", kv[0], kv[1])
	}
	for _, kv := range [][2]string{
		{"twitter:card", "summary_large_image"}, {"twitter:title", title}, {"twitter:description", desc},
		{"twitter:image", cardURL}, {"twitter:image:alt", title},
	} {
		meta("name", kv[0], kv[1])
	}
	b.WriteString(pageStyle)
	b.WriteString("</head>\n<body>\n<main>\n")
	fmt.Fprintf(&b, "<img src=\"%s\" width=\"%d\" height=\"%d\" alt=\"%s\">\n", imageURL, m.Width, m.Height, title)
	if s.Prompt != "" {
		fmt.Fprintf(&b, "<h1>%s</h1>\n", e(s.Prompt))
	}
	if s.Negative != "" {
		fmt.Fprintf(&b, "<p>Negative prompt: %s</p>\n", e(s.Negative))
	}
	for _, line := range []string{s.Sampling, s.Image, s.TGate} {
		if line != "" {
			fmt.Fprintf(&b, "<p>%s</p>\n", e(line))
		}
	}
	fmt.Fprintf(&b, "<p><a href=\"%s\" download=\"tgate-%s.png\">Download the PNG</a> (it keeps its settings: drop it on the page to reuse them) · <a href=\"%s/\">Make your own</a></p>\n",
		imageURL, e(m.ID), e(base))
	b.WriteString("</main>\n</body>\n</html>\n")
	return b.Bytes(), nil
}

// pageStyle is the share page's inline style sheet.
const pageStyle = `<style>
body{font:16px/1.5 system-ui,sans-serif;margin:0;padding:2rem 1rem;background:#111318;color:#e8e8ec}
main{max-width:48rem;margin:0 auto}
img{max-width:100%;height:auto;border-radius:8px;display:block;margin:0 auto 1rem}
h1{font-size:1.25rem;font-weight:600;margin:0 0 .5rem;white-space:pre-wrap}
p{margin:.25rem 0;color:#b8bcc8}
a{color:#8ab4ff}
</style>
`

// PagePath, ImagePath and CardPath are the Worker's paths of a share.
func PagePath(id string) string { return "/s/" + id }

// ImagePath is the path of a share's PNG as uploaded.
func ImagePath(id string) string { return "/s/" + id + "/image.png" }

// CardPath is the path of a share's 1200×630 card.
func CardPath(id string) string { return "/s/" + id + "/card.png" }
