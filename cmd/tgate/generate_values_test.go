package main

import (
	"strings"
	"testing"
)

func TestPairFlag(t *testing.T) {
	for _, c := range []struct {
		in   string
		want [2]int
		err  string
	}{
		{in: "1024,768", want: [2]int{1024, 768}},
		{in: " 0 , 16", want: [2]int{0, 16}},
		{in: "1024", err: "two whole numbers"},
		{in: "1,2,3", err: "two whole numbers"},
		{in: "a,b", err: "two whole numbers"},
		{in: "-1,4", err: "below 0"},
	} {
		p := pairFlag{what: "H,W"}
		err := p.Set(c.in)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("Set(%q) = %v, want an error containing %q", c.in, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("Set(%q): %v", c.in, err)
		case c.err == "" && (p.v != c.want || !p.set):
			t.Errorf("Set(%q) = %v, want %v", c.in, p.v, c.want)
		}
	}
}

func TestLoRAFlag(t *testing.T) {
	var l loraFlag
	for _, s := range []string{"a.safetensors", "b.safetensors:0.5"} {
		if err := l.Set(s); err != nil {
			t.Fatalf("Set(%q): %v", s, err)
		}
	}
	if len(l) != 2 || l[0].Name != "a.safetensors" || l[0].Scale != 1 || l[1].Name != "b.safetensors" || l[1].Scale != 0.5 {
		t.Errorf("got %+v", l)
	}
	if err := l.Set(":0.5"); err == nil {
		t.Error("Set(\":0.5\") accepted an empty path")
	}
}

func TestGateStepFlag(t *testing.T) {
	g := gateStepFlag{n: -1}
	if err := g.Set("auto"); err != nil || !g.auto {
		t.Fatalf("Set(auto) = %v, auto %v", err, g.auto)
	}
	if err := g.Set("7"); err != nil || g.auto || g.n != 7 {
		t.Fatalf("Set(7) = %v, %+v", err, g)
	}
	for _, bad := range []string{"-2", "soon", ""} {
		if err := g.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}
