package t5

import (
	"math"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// RelativeBucket returns the bucket of the relative position rel = key
// position − query position for bidirectional attention
// (modeling_t5.py T5Attention._relative_position_bucket): half the buckets
// for each sign; within a half, distances below a quarter of the buckets
// get their own bucket and larger ones share logarithmically spaced
// buckets up to maxDistance, computed in float32 as PyTorch does and
// truncated toward zero.
func RelativeBucket(rel, numBuckets, maxDistance int) int {
	half := numBuckets / 2
	bucket := 0
	if rel > 0 {
		bucket = half
	}
	n := rel
	if n < 0 {
		n = -n
	}
	maxExact := half / 2
	if n < maxExact {
		return bucket + n
	}
	logRatio := float32(math.Log(float64(float32(n) / float32(maxExact))))
	scale := float32(math.Log(float64(maxDistance) / float64(maxExact)))
	large := maxExact + int(logRatio/scale*float32(half-maxExact))
	return bucket + min(large, half-1)
}

// positionBias computes compute_bias(L, L) of the layer-0 attention:
// table [num_buckets, num_heads] gathered at the bucket of every
// (query i, key j) pair, arranged as [1, H, L, L].
func positionBias(b backend.Backend, table backend.Tensor, cfg *Config, seqLen int) backend.Tensor {
	ids := make([]int32, seqLen*seqLen)
	for i := 0; i < seqLen; i++ {
		for j := 0; j < seqLen; j++ {
			ids[i*seqLen+j] = int32(RelativeBucket(j-i, cfg.RelativeAttentionNumBuckets, cfg.RelativeAttentionMaxDistance))
		}
	}
	g := b.Gather(table, ids) // [L·L, H]
	g3 := b.Reshape(g, seqLen, seqLen, cfg.NumHeads)
	p := b.Permute(g3, 2, 0, 1) // [H, L, L]
	out := b.Reshape(p, 1, cfg.NumHeads, seqLen, seqLen)
	b.Free(g)
	b.Free(g3)
	b.Free(p)
	return out
}

// maskBias returns the additive padding bias [B, 1, 1, L]: 0 where the
// mask is 1 and float32's lowest value where it is 0, as transformers'
// get_extended_attention_mask computes (1 − mask) · finfo(float32).min.
// Added to the position bias and the scores it stays finite and its
// softmax weight is exactly 0.
func maskBias(b backend.Backend, mask [][]int32, seqLen int) backend.Tensor {
	h := tensor.New(len(mask), 1, 1, seqLen)
	for r, row := range mask {
		for j, m := range row {
			if m == 0 {
				h.Data[r*seqLen+j] = -math.MaxFloat32
			}
		}
	}
	return b.Upload(h)
}
