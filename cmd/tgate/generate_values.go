package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tgate-web/tgate/pipeline"
)

// pairFlag is a flag holding two whole numbers written "A,B" (a size as
// height,width or a position as top,left, in diffusers' tuple order).
type pairFlag struct {
	v   [2]int
	set bool
	// what names the two values in messages ("H,W", "TOP,LEFT").
	what string
	// min is the least value each number may take.
	min int
}

func (p *pairFlag) String() string {
	if p == nil || !p.set {
		return ""
	}
	return fmt.Sprintf("%d,%d", p.v[0], p.v[1])
}

func (p *pairFlag) Set(s string) error {
	parts := strings.Split(s, ",")
	if len(parts) != 2 {
		return fmt.Errorf("want %s (two whole numbers separated by a comma), got %q", p.what, s)
	}
	for i, part := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil {
			return fmt.Errorf("want %s (two whole numbers separated by a comma), got %q", p.what, s)
		}
		if n < p.min {
			return fmt.Errorf("%s: %d is below %d", p.what, n, p.min)
		}
		p.v[i] = n
	}
	p.set = true
	return nil
}

// loraFlag collects repeated --lora FILE[:SCALE] values
// (pipeline.ParseLoRA: scale 1 when not given).
type loraFlag []pipeline.LoRA

func (l *loraFlag) String() string {
	if l == nil {
		return ""
	}
	s := make([]string, len(*l))
	for i, a := range *l {
		s[i] = a.String()
	}
	return strings.Join(s, " ")
}

func (l *loraFlag) Set(s string) error {
	a, err := pipeline.ParseLoRA(s)
	if err != nil {
		return err
	}
	*l = append(*l, a)
	return nil
}

// gateStepFlag is --gate-step: a step count, or "auto" (the gate closes
// when cross-attention has converged).
type gateStepFlag struct {
	n    int // -1: the model's default
	auto bool
}

func (g *gateStepFlag) String() string {
	if g == nil {
		return ""
	}
	if g.auto {
		return "auto"
	}
	if g.n < 0 {
		return "model default"
	}
	return strconv.Itoa(g.n)
}

func (g *gateStepFlag) Set(s string) error {
	if s == "auto" {
		g.auto, g.n = true, -1
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want a step count (0 or more) or auto, got %q", s)
	}
	g.n, g.auto = n, false
	return nil
}
