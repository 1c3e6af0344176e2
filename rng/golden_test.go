package rng

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
)

type rngGoldens struct {
	Randn5    []float64 `json:"torch_manual_seed0_randn_5"`
	Randn16   []float64 `json:"torch_manual_seed0_randn_16"`
	Seed42    summary   `json:"torch_seed42_randn_1x4x8x8"`
	Seed0Big  summary   `json:"torch_seed0_randn_1x4x64x64"`
	Rand5     []float64 `json:"torch_manual_seed0_rand_5"`
	NumpyLast []float64 `json:"numpy_seed12345_randn10000_last5"`
}

type summary struct {
	First8 []float64 `json:"first8"`
	Last4  []float64 `json:"last4"`
	Sum    float64   `json:"sum"`
	AbsSum float64   `json:"abs_sum"`
}

func loadRNGGoldens(t *testing.T) rngGoldens {
	t.Helper()
	b, err := os.ReadFile(golden.Dir(t, "assets", "goldens", "rng_goldens.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g rngGoldens
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}
