package safetensors

import "github.com/tgate-web/tgate/tensor"

// dtypeInfo describes one safetensors dtype string: its element size in
// bits and its rank in the reference Dtype enum (safetensors
// src/tensor.rs), which is declared in increasing alignment order and
// decides where the reference writer places a tensor.
type dtypeInfo struct {
	bits int
	rank int
}

// dtypes lists every dtype string the reference format defines, in the
// order of the reference Dtype enum.
var dtypes = func() map[string]dtypeInfo {
	order := []struct {
		name string
		bits int
	}{
		{"BOOL", 8}, {"F4", 4}, {"F6_E2M3", 6}, {"F6_E3M2", 6},
		{"U8", 8}, {"I8", 8}, {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8},
		{"F8_E4M3FNUZ", 8}, {"F8_E5M2FNUZ", 8},
		{"I16", 16}, {"U16", 16}, {"F16", 16}, {"BF16", 16},
		{"I32", 32}, {"U32", 32}, {"F32", 32},
		{"C64", 64}, {"F64", 64}, {"I64", 64}, {"U64", 64},
	}
	m := make(map[string]dtypeInfo, len(order))
	for i, d := range order {
		m[d.name] = dtypeInfo{bits: d.bits, rank: i}
	}
	return m
}()

// DTypeBits returns the element size in bits of a safetensors dtype string
// and whether the string names a dtype of the format at all.
func DTypeBits(name string) (bits int, ok bool) {
	d, ok := dtypes[name]
	return d.bits, ok
}

// dtypeRank returns the reference enum position of a decodable dtype.
func dtypeRank(dt tensor.DType) int { return dtypes[dt.String()].rank }
