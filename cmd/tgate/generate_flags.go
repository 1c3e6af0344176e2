package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Valid values of the enumerated flags.
var (
	decoderNames = []string{"vae", "taesd"}
	spacingNames = []string{"leading", "trailing", "linspace"}
)

// oneOf returns an error naming the flag and listing the valid values when
// v is not one of them.
func oneOf(flagName, v string, valid []string) error {
	for _, s := range valid {
		if v == s {
			return nil
		}
	}
	return fmt.Errorf("unknown --%s value %q (valid: %s)", flagName, v, strings.Join(valid, ", "))
}

// optFloat is a float flag that remembers whether it was set.
type optFloat struct {
	v   float64
	set bool
}

func (o *optFloat) String() string {
	if !o.set {
		return "model default"
	}
	return strconv.FormatFloat(o.v, 'g', -1, 64)
}

func (o *optFloat) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("not a finite number: %q", s)
	}
	o.v, o.set = v, true
	return nil
}
