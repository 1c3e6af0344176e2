package t5

import (
	"fmt"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
)

// weightSet supplies the parts of the model to one forward pass. Each
// getter returns the part and a function that releases it once the pass
// no longer needs it (a no-op for weights the Encoder keeps).
type weightSet struct {
	embedding func() (*nn.Embedding, func(), error)
	relBias   func() (backend.Tensor, func(), error)
	block     func(i int) (*block, func(), error)
	finalNorm func() (*rmsNorm, func(), error)
}

func keep() {}

// resident serves the weights e holds.
func (e *Encoder) resident() weightSet {
	return weightSet{
		embedding: func() (*nn.Embedding, func(), error) { return e.embed, keep, nil },
		relBias:   func() (backend.Tensor, func(), error) { return e.relBias, keep, nil },
		block:     func(i int) (*block, func(), error) { return e.blocks[i], keep, nil },
		finalNorm: func() (*rmsNorm, func(), error) { return e.finalNorm, keep, nil },
	}
}

// streamedBlock binds encoder.block.{i} from src for one use.
func streamedBlock(b backend.Backend, src nn.Source, cfg *Config, i int) (*block, func(), error) {
	s := nn.NewScope(b, src)
	bl := bindBlock(s, cfg, i)
	if err := s.Err(); err != nil {
		bl.release(b)
		return nil, nil, fmt.Errorf("t5 encoder block %d: %w", i, err)
	}
	return bl, func() { bl.release(b) }, nil
}

// bindOne binds one tensor from src for one use.
func bindOne(b backend.Backend, src nn.Source, key string, shape ...int) (backend.Tensor, func(), error) {
	s := nn.NewScope(b, src)
	if key == sharedKey {
		key = embedKey(s)
	}
	t := s.Tensor(key, shape...)
	if err := s.Err(); err != nil {
		return nil, nil, fmt.Errorf("t5 encoder: %w", err)
	}
	return t, func() { b.Free(t) }, nil
}

// Forward encodes a batch of token id rows of one length L with their
// attention masks (1 = token, 0 = padding; nil means all ones) as
// T5EncoderModel(input_ids, attention_mask) does. ids must lie in
// [0, vocab_size). The encoder must hold its blocks (New); a streaming
// encoder uses ForwardStreaming.
func (e *Encoder) Forward(b backend.Backend, ids, mask [][]int32, opt Options) (*Output, error) {
	if e.released {
		return nil, fmt.Errorf("t5: the encoder's weights were released")
	}
	if e.Streaming() {
		return nil, fmt.Errorf("t5: this encoder was built by NewStreaming and holds no blocks; call ForwardStreaming with the weights' source")
	}
	return encode(b, &e.Config, ids, mask, opt, e.resident())
}

// ForwardStreaming is Forward with each block bound from src just before
// it runs and released right after, so that at most one block's weights
// are on b at a time besides those the encoder holds (embedding, relative
// attention bias, final norm). The result equals Forward's.
func (e *Encoder) ForwardStreaming(b backend.Backend, src nn.Source, ids, mask [][]int32, opt Options) (*Output, error) {
	if e.released {
		return nil, fmt.Errorf("t5: the encoder's weights were released")
	}
	ws := e.resident()
	ws.block = func(i int) (*block, func(), error) { return streamedBlock(b, src, &e.Config, i) }
	return encode(b, &e.Config, ids, mask, opt, ws)
}

// EncodeStreaming runs the encoder with no weights held between calls:
// the token embedding is bound for the lookup and freed, then each block
// is bound, run and freed in turn, then the final norm. The device never
// holds more than the largest of these (for T5-XXL the embedding table or
// one block) plus the activations. The result equals Forward's.
func EncodeStreaming(b backend.Backend, src nn.Source, cfg *Config, ids, mask [][]int32, opt Options) (*Output, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ws := weightSet{
		embedding: func() (*nn.Embedding, func(), error) {
			t, release, err := bindOne(b, src, sharedKey, cfg.VocabSize, cfg.DModel)
			if err != nil {
				return nil, nil, err
			}
			return &nn.Embedding{Table: t, Num: cfg.VocabSize, Dim: cfg.DModel}, release, nil
		},
		relBias: func() (backend.Tensor, func(), error) {
			return bindOne(b, src, relativeBiasKey, cfg.RelativeAttentionNumBuckets, cfg.NumHeads)
		},
		block: func(i int) (*block, func(), error) { return streamedBlock(b, src, cfg, i) },
		finalNorm: func() (*rmsNorm, func(), error) {
			t, release, err := bindOne(b, src, finalLayerNormKey, cfg.DModel)
			if err != nil {
				return nil, nil, err
			}
			return &rmsNorm{weight: t, eps: float32(cfg.LayerNormEpsilon)}, release, nil
		},
	}
	return encode(b, cfg, ids, mask, opt, ws)
}

// checkInputs validates ids and mask and returns the ids flattened.
func checkInputs(cfg *Config, ids, mask [][]int32) ([]int32, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("t5: empty batch of token ids")
	}
	seqLen := len(ids[0])
	if seqLen == 0 {
		return nil, fmt.Errorf("t5: empty token row")
	}
	if mask != nil && len(mask) != len(ids) {
		return nil, fmt.Errorf("t5: %d attention mask rows for %d token rows", len(mask), len(ids))
	}
	flat := make([]int32, 0, len(ids)*seqLen)
	for r, row := range ids {
		if len(row) != seqLen {
			return nil, fmt.Errorf("t5: token row %d has length %d; row 0 has %d (rows must be padded to one length)", r, len(row), seqLen)
		}
		if mask != nil && len(mask[r]) != seqLen {
			return nil, fmt.Errorf("t5: attention mask row %d has length %d; want %d", r, len(mask[r]), seqLen)
		}
		for i, id := range row {
			if id < 0 || int(id) >= cfg.VocabSize {
				return nil, fmt.Errorf("t5: token id %d at row %d position %d is outside the vocabulary [0, %d)", id, r, i, cfg.VocabSize)
			}
		}
		flat = append(flat, row...)
	}
	return flat, nil
}

// encode is T5Stack.forward for the encoder (modeling_t5.py): embed
// the ids; build the layer-0 position bias [1, H, L, L] plus the padding
// bias [B, 1, 1, L], which every block reuses; run the blocks; apply
// final_layer_norm. Dropout is the identity (eval).
func encode(b backend.Backend, cfg *Config, ids, mask [][]int32, opt Options, ws weightSet) (_ *Output, err error) {
	flat, err := checkInputs(cfg, ids, mask)
	if err != nil {
		return nil, err
	}
	batch, seqLen := len(ids), len(ids[0])
	if mask == nil {
		mask = make([][]int32, batch)
		for r := range mask {
			mask[r] = make([]int32, seqLen)
			for j := range mask[r] {
				mask[r][j] = 1
			}
		}
	}
	out := &Output{}
	var h, bias backend.Tensor
	defer func() {
		if err != nil {
			nn.Free(b, h, bias)
			out.Release(b)
		}
	}()

	emb, release, err := ws.embedding()
	if err != nil {
		return nil, err
	}
	g := emb.Forward(b, flat)
	release()
	h = b.Reshape(g, batch, seqLen, cfg.DModel)
	b.Free(g)

	table, release, err := ws.relBias()
	if err != nil {
		return nil, err
	}
	pos := positionBias(b, table, cfg, seqLen)
	release()
	pad := maskBias(b, mask, seqLen)
	bias = b.Binary(backend.Add, pos, pad) // [B, H, L, L]
	nn.Free(b, pos, pad)

	for i := 0; i < cfg.NumLayers; i++ {
		if opt.HiddenStates {
			out.HiddenStates = append(out.HiddenStates, h)
		}
		bl, release, err := ws.block(i)
		if err != nil {
			if opt.HiddenStates {
				h = nil // owned by out
			}
			return nil, err
		}
		next := bl.forward(b, h, bias)
		release()
		if !opt.HiddenStates {
			b.Free(h)
		}
		h = next
		if opt.Progress != nil {
			opt.Progress(i+1, cfg.NumLayers)
		}
	}
	b.Free(bias)
	bias = nil

	norm, release, err := ws.finalNorm()
	if err != nil {
		return nil, err
	}
	out.LastHiddenState = norm.forward(b, h)
	if opt.HiddenStates {
		out.HiddenStates = append(out.HiddenStates, norm.forward(b, h))
	}
	release()
	b.Free(h)
	h = nil
	if err := b.Err(); err != nil {
		return nil, fmt.Errorf("t5: %w", err)
	}
	return out, nil
}
