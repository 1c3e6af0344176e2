package hub

import (
	"strings"
	"testing"
)

func TestParseSource(t *testing.T) {
	cases := []struct {
		in, hub             string
		base, api, id, file string
	}{
		{"runwayml/stable-diffusion-v1-5", "", "https://huggingface.co/runwayml/stable-diffusion-v1-5/resolve/main/",
			"https://huggingface.co/api/models/runwayml/stable-diffusion-v1-5/revision/main?blobs=true",
			"runwayml/stable-diffusion-v1-5@main", "https://huggingface.co/runwayml/stable-diffusion-v1-5/resolve/main/unet/config.json"},
		{"stabilityai/sd-turbo@refs/pr/3", "http://127.0.0.1:8080/", "http://127.0.0.1:8080/stabilityai/sd-turbo/resolve/refs%2Fpr%2F3/",
			"http://127.0.0.1:8080/api/models/stabilityai/sd-turbo/revision/refs%2Fpr%2F3?blobs=true",
			"stabilityai/sd-turbo@refs/pr/3", "http://127.0.0.1:8080/stabilityai/sd-turbo/resolve/refs%2Fpr%2F3/unet/config.json"},
		{"https://example.com/models/tiny sd/", "", "https://example.com/models/tiny%20sd/", "",
			"https://example.com/models/tiny%20sd/", "https://example.com/models/tiny%20sd/unet/config.json"},
	}
	for _, c := range cases {
		s, err := ParseSource(c.in, c.hub)
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if s.Base != c.base || s.APIURL() != c.api || s.ID() != c.id || s.FileURL("unet/config.json") != c.file {
			t.Errorf("%q: base %q api %q id %q file %q", c.in, s.Base, s.APIURL(), s.ID(), s.FileURL("unet/config.json"))
		}
	}
	if s, _ := ParseSource("a/b", ""); s.FileURL("my file#1.json") != "https://huggingface.co/a/b/resolve/main/my%20file%231.json" {
		t.Errorf("escaping: %s", s.FileURL("my file#1.json"))
	}
	for _, bad := range []string{"", "noslash", "a/b/c", "../x", "ftp://host/dir/", "https://host/dir", "a/b c"} {
		if _, err := ParseSource(bad, ""); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if _, err := ParseSource("a/b", "not a url"); err == nil || !strings.Contains(err.Error(), "hub address") {
		t.Errorf("bad hub: %v", err)
	}
}

func TestParseSiblings(t *testing.T) {
	data := []byte(`{"id":"a/b","siblings":[{"rfilename":"model_index.json","size":541,"blobId":"x"},
	  {"rfilename":"unet/diffusion_pytorch_model.fp16.safetensors","size":1719,"lfs":{"sha256":"ABCDEF","size":1719,"pointerSize":134}},
	  {"rfilename":"README.md"}]}`)
	files, err := ParseSiblings(data)
	if err != nil {
		t.Fatal(err)
	}
	if f := files["unet/diffusion_pytorch_model.fp16.safetensors"]; f.Size != 1719 || f.SHA256 != "abcdef" {
		t.Errorf("lfs file: %+v", f)
	}
	if f := files["model_index.json"]; f.Size != 541 || f.SHA256 != "" {
		t.Errorf("small file: %+v", f)
	}
	if f := files["README.md"]; f.Size != -1 {
		t.Errorf("unsized file: %+v", f)
	}
	if n := SortedNames(files); len(n) != 3 || n[0] != "README.md" {
		t.Errorf("names %v", n)
	}
	if _, err := ParseSiblings([]byte(`{"error":"Repository not found"}`)); err == nil {
		t.Error("an answer without siblings was accepted")
	}
}
