package tokenizer

import "testing"

// CleanCaption against diffusers' PixArtAlphaPipeline._clean_caption run
// in CPython 3 (re, html, urllib) with BeautifulSoup(...).text and
// ftfy.fix_text replaced by the identity, the two steps CleanCaption
// leaves out; "twice" is PixArtPreprocess(text, true), the pipeline's two
// calls.
func TestCleanCaption(t *testing.T) {
	for _, c := range []struct{ text, once, twice string }{
		{"A photo of https://example.com/cat.png a CAT", "a photo of . a cat", "a photo of a cat"},
		{"  A small cactus with a happy face in the Sahara desert.  ", "a small cactus with a happy face in the sahara desert.", "a small cactus with a happy face in the sahara desert."},
		{"Visit www.shop.com/deals for FREE SHIPPING!!! Click for details", "visit for !!!", "visit for !!!"},
		{"my-cute-little-kitty-cat_photo", "my cute little kitty cat photo", "my cute little kitty cat photo"},
		{"“Quoted” ‘text’ — with dashes – and &amp;quot; entities &lt;b&gt;", "\"quoted\" 'text' - with dashes - and ;quot; entities lt;b gt;", "\"quoted\" 'text' - with dashes - and ;quot; entities lt;b gt;"},
		{"Contact @john_doe at 192.168.0.1 #12 #123456 item 1234567", "contact at item", "contact at item"},
		{"wallpaper 1920x1080 jc6640 page 12 free download", "wallpaper", "wallpaper"},
		{"a+photo%20of%20a%20dog, sitting...on grass", "a photo of a dog, sitting on grass", "a photo of a dog, sitting on grass"},
		{"***AUSVERKAUFT*** [new] {hot} (sale) | 50% off \\n now", "ausverkauft new hot sale 50% off now", "ausverkauft new hot sale 50% off now"},
		{"file_name.jpg and IMG_001.JPEG: holiday : beach", "and: holiday: beach", "and: holiday: beach"},
		{"'single quoted caption'", "single quoted caption", "single quoted caption"},
		{"user@mail.com wrote this", "user wrote this", "user wrote this"},
		{"东京 tower at night 東京タワー", "tower at night タワー", "tower at night タワー"},
	} {
		if got := CleanCaption(c.text); got != c.once {
			t.Errorf("CleanCaption(%q) = %q, want %q", c.text, got, c.once)
		}
		if got := PixArtPreprocess(c.text, true); got != c.twice {
			t.Errorf("PixArtPreprocess(%q, true) = %q, want %q", c.text, got, c.twice)
		}
	}
}

// Without cleaning the pipeline only lower()s and strip()s, with Python's
// case mapping and whitespace.
func TestPixArtPreprocessPlain(t *testing.T) {
	for in, want := range map[string]string{
		"A small cactus with a happy face in the Sahara desert.": "a small cactus with a happy face in the sahara desert.",
		"\u3000 ÉCOLE \t\n": "école",
		"İstanbul":          "i\u0307stanbul",
		"":                  "",
	} {
		if got := PixArtPreprocess(in, false); got != want {
			t.Errorf("PixArtPreprocess(%q, false) = %q, want %q", in, got, want)
		}
	}
}
