package tokenizer

import (
	"html"
	"regexp"
	"strings"
)

// Sequence lengths the PixArt pipelines tokenize to
// (max_sequence_length): 120 for PixArt-α, 300 for PixArt-Σ.
const (
	PixArtAlphaMaxLength = 120
	PixArtSigmaMaxLength = 300
)

// PixArtPreprocess is the prompt preprocessing of diffusers' PixArt
// pipelines (PixArtAlphaPipeline._text_preprocessing): with cleanCaption
// false the text is lower()-ed and strip()-ped exactly as Python does;
// with cleanCaption true it is CleanCaption applied twice, as the pipeline
// calls _clean_caption twice.
func PixArtPreprocess(text string, cleanCaption bool) string {
	if cleanCaption {
		return CleanCaption(CleanCaption(text))
	}
	return strings.TrimFunc(pyLower(text), isPySpace)
}

// captionStep is one re.sub of _clean_caption.
type captionStep struct {
	re   *regexp.Regexp
	repl string
}

func step(pattern, repl string) captionStep {
	return captionStep{regexp.MustCompile(pattern), repl}
}

// urlPatterns are _clean_caption's two URL regexes without their final
// (?!@) lookahead, which RE2 lacks; removeURLs applies it by keeping
// matches that an '@' follows.
var urlPatterns = []*regexp.Regexp{
	regexp.MustCompile(`\b((?:https?:(?:/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.\-]+[.](?:com|co|ru|net|org|edu|gov|it)[\w/-]*\b/?))`),
	regexp.MustCompile(`\b((?:www:(?:/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.\-]+[.](?:com|co|ru|net|org|edu|gov|it)[\w/-]*\b/?))`),
}

// badPunct is the pipeline's bad_punct_regex.
const badPunct = `[#®•©™&@·º½¾¿¡§~\)\(\]\[\}\{\|\\/\*]{1,}`

// captionStepsBeforeFix are the substitutions between the HTML step and
// ftfy.fix_text, in the pipeline's order.
var captionStepsBeforeFix = []captionStep{
	step(`@[\w\d]+\b`, ""), // @<nickname>
	// CJK strokes, katakana extensions, enclosed CJK, CJK compatibility,
	// CJK extension A, Yijing hexagrams, CJK unified ideographs.
	step(`[\x{31c0}-\x{31ef}]+`, ""),
	step(`[\x{31f0}-\x{31ff}]+`, ""),
	step(`[\x{3200}-\x{32ff}]+`, ""),
	step(`[\x{3300}-\x{33ff}]+`, ""),
	step(`[\x{3400}-\x{4dbf}]+`, ""),
	step(`[\x{4dc0}-\x{4dff}]+`, ""),
	step(`[\x{4e00}-\x{9fff}]+`, ""),
	// every kind of dash → "-"
	step(`[\x{002D}\x{058A}\x{05BE}\x{1400}\x{1806}\x{2010}-\x{2015}\x{2E17}\x{2E1A}\x{2E3A}\x{2E3B}\x{2E40}\x{301C}\x{3030}\x{30A0}\x{FE31}\x{FE32}\x{FE58}\x{FE63}\x{FF0D}]+`, "-"),
	step("[`´«»“”¨]", `"`),
	step(`[‘’]`, `'`),
	step(`&quot;?`, ""),
	step(`&amp`, ""),
	step(`\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}`, " "), // ip addresses
	step(`\d:\d\d\s+$`, ""),                         // article ids
	step(`\\n`, " "),                                // a literal backslash-n
	step(`#\d{1,3}\b`, ""),
	step(`#\d{5,}\b`, ""),
	step(`\b\d{6,}\b`, ""),
	step(`[\S]+\.(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)`, ""), // file names
	step(`["']{2,}`, `"`),
	step(`[\.]{2,}`, " "),
	step(badPunct, " "),
	step(`\s+\.\s+`, " "),
}

// dashOrUnderscore is regex2 of _clean_caption: more than 3 matches turn
// every one into a space (this-is-my-cute-cat).
var dashOrUnderscore = regexp.MustCompile(`(?:\-|\_)`)

// captionStepsAfterFix follow ftfy.fix_text and html.unescape.
var captionStepsAfterFix = []captionStep{
	step(`\b[a-zA-Z]{1,3}\d{3,15}\b`, ""), // jc6640
	step(`\b[a-zA-Z]+\d+[a-zA-Z]+\b`, ""), // jc6640vc
	step(`\b\d+[a-zA-Z]+\d+\b`, ""),       // 6640vc231
	step(`(worldwide\s+)?(free\s+)?shipping`, ""),
	step(`(free\s)?download(\sfree)?`, ""),
	step(`\bclick\b\s(?:for|on)\s\w+`, ""),
	step(`\b(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)(\simage[s]?)?`, ""),
	step(`\bpage\s+\d+\b`, ""),
	step(`\b\d*[a-zA-Z]+\d+[a-zA-Z]+\d+[a-zA-Z\d]*\b`, " "), // j2d1a2a...
	step(`\b\d+\.?\d*[xх×]\d+\.?\d*\b`, ""),
	step(`\b\s+\:\s+`, ": "),
	step(`(\D[,\./])\b`, "${1} "),
	step(`\s+`, " "),
	step(`^["']([\w\W]+)["']$`, "${1}"),
	step(`^['\_,\-\:;]`, ""),
	step(`['\_,\-\:\-\+]$`, ""),
	step(`^\.\S+$`, ""),
}

// CleanCaption computes diffusers' PixArtAlphaPipeline._clean_caption
// (from DeepFloyd IF) except for its two steps that need third-party
// packages: BeautifulSoup(...).text (HTML tags are not stripped) and
// ftfy.fix_text (mojibake is not repaired). Everything else is done in the
// pipeline's order: urllib's unquote_plus, strip and lower, "<person>" →
// "person", URL removal, @nicknames, CJK ranges, dash and quote
// unification, &quot; and &amp, IP addresses, article ids, "#123",
// long numbers, file names, repeated quotes and dots, bad_punct_regex,
// " . ", dashes and underscores when more than three, html.unescape twice,
// the product-code, shipping, download, "click for", file-type and "page N"
// removals, size patterns, spacing after ':' and punctuation, whitespace
// collapsing, and the quote and punctuation trimming at the ends.
//
// The regexes run on Go's RE2, whose \b, \w, \d and \s are ASCII where
// Python's are Unicode: on ASCII prompts the steps agree, on others a
// word boundary next to a non-ASCII letter may differ. The URL patterns'
// (?!@) lookahead is applied by keeping URL matches that '@' follows.
func CleanCaption(caption string) string {
	caption = unquotePlus(caption)
	caption = pyLower(strings.TrimFunc(caption, isPySpace))
	caption = strings.ReplaceAll(caption, "<person>", "person")
	for _, re := range urlPatterns {
		caption = removeURLs(re, caption)
	}
	for _, s := range captionStepsBeforeFix {
		caption = s.re.ReplaceAllString(caption, s.repl)
	}
	if len(dashOrUnderscore.FindAllStringIndex(caption, -1)) > 3 {
		caption = dashOrUnderscore.ReplaceAllString(caption, " ")
	}
	caption = html.UnescapeString(html.UnescapeString(caption))
	for _, s := range captionStepsAfterFix {
		caption = s.re.ReplaceAllString(caption, s.repl)
	}
	return strings.TrimFunc(caption, isPySpace)
}

// removeURLs deletes the matches of re that no '@' follows.
func removeURLs(re *regexp.Regexp, s string) string {
	var b strings.Builder
	last := 0
	for _, m := range re.FindAllStringIndex(s, -1) {
		if m[1] < len(s) && s[m[1]] == '@' {
			continue
		}
		b.WriteString(s[last:m[0]])
		last = m[1]
	}
	b.WriteString(s[last:])
	return b.String()
}

// unquotePlus is Python's urllib.parse.unquote_plus: '+' becomes a space
// and every %XX escape its byte; malformed escapes stay as they are, and
// the bytes are decoded as UTF-8 with U+FFFD for invalid sequences.
func unquotePlus(s string) string {
	s = strings.ReplaceAll(s, "+", " ")
	if !strings.Contains(s, "%") {
		return s
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return strings.ToValidUTF8(string(out), "\uFFFD")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
