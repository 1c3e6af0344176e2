package nn

import (
	"fmt"
	"strings"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/tensor"
)

// Quantized8 wraps src so that every weight for which pick returns true
// is bound as an 8-bit weight (backend.Quantizer.QuantizeRows): the stored
// tensor is put on the device as usual, quantised there per output
// channel, and the original freed. The models' code does not change: their
// Linear and Conv2d layers pass the weight to MatMul and Conv2D, which
// dequantise it inside the kernel. Loading fails on a backend that cannot
// quantise.
func Quantized8(src Source, pick func(name string, shape tensor.Shape) bool) Source {
	return &quantSource{src: src, pick: pick}
}

// LinearOrConvWeight picks the weights 8-bit storage suits: a ".weight" of
// two or four dimensions that is not an embedding table (those are read
// by Gather, not multiplied).
func LinearOrConvWeight(name string, shape tensor.Shape) bool {
	return strings.HasSuffix(name, ".weight") && (len(shape) == 2 || len(shape) == 4) &&
		!strings.Contains(name, "embedding.weight") && !strings.Contains(name, "embed_tokens") && name != "shared.weight"
}

type quantSource struct {
	src  Source
	pick func(string, tensor.Shape) bool
}

func (q *quantSource) Lookup(name string) (tensor.DType, tensor.Shape, bool) {
	return q.src.Lookup(name)
}

func (q *quantSource) Load(b backend.Backend, name string) (backend.Tensor, error) {
	t, err := q.src.Load(b, name)
	if err != nil || !q.pick(name, t.Shape()) || !t.DType().IsFloat() {
		return t, err
	}
	qb, ok := b.(backend.Quantizer)
	if !ok {
		b.Free(t)
		return nil, fmt.Errorf("%s: the %s backend cannot hold 8-bit weights", name, b.Name())
	}
	w := qb.QuantizeRows(t)
	b.Free(t)
	return w, nil
}
