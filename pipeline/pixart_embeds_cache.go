package pipeline

import (
	"encoding/binary"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

// PromptCacheLimits bound a PixArt pipeline's cache of recent prompts' T5
// embeddings (see Pipeline.SetPromptCacheLimits).
type PromptCacheLimits struct {
	// Entries is the most encodings kept; 0 turns the cache off.
	Entries int
	// Bytes is the most device memory they may hold together; an encoding
	// larger than this is never kept.
	Bytes int64
}

// DefaultPromptCacheLimits keep the last 4 encodings within 64 MiB: for
// PixArt-Σ (300 tokens of T5-XXL's 4096 channels, with the negative
// prompt) one encoding is 9.4 MiB, for PixArt-α (120 tokens) 3.75 MiB.
var DefaultPromptCacheLimits = PromptCacheLimits{Entries: 4, Bytes: 64 << 20}

// promptCache keeps the T5 output of recent encoder calls on the device,
// keyed by the token ids and masks encoded (which fix the prompt, the
// negative prompt, the max sequence length and the caption cleaning), so
// that a generation repeating a prompt skips the text encoder, the whole
// block-by-block download and run of a streamed T5-XXL. It is a small LRU
// bounded by count and bytes.
type promptCache struct {
	limits PromptCacheLimits
	// entries are ordered from least to most recently used.
	entries []*promptCacheEntry
	bytes   int64
}

// promptCacheEntry is one cached encoding: embeds [rows, L, D] on the
// device and the masks [rows, L] that went with the ids.
type promptCacheEntry struct {
	key    string
	embeds backend.Tensor
	mask   *tensor.Host
	bytes  int64
}

// promptCacheKey encodes rows of ids and their masks as a map key.
func promptCacheKey(ids, masks [][]int32) string {
	var buf []byte
	for _, rows := range [][][]int32{ids, masks} {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(rows)))
		for _, r := range rows {
			buf = binary.LittleEndian.AppendUint32(buf, uint32(len(r)))
			for _, v := range r {
				buf = binary.LittleEndian.AppendUint32(buf, uint32(v))
			}
		}
	}
	return string(buf)
}

// tensorBytes is the device size of t.
func tensorBytes(t backend.Tensor) int64 {
	return int64(t.Shape().Numel()) * int64(t.DType().Size())
}

// get returns a view of the cached embeddings of key (the caller frees
// it; the cache keeps its own handle) and their mask, marking the entry
// most recently used; ok is false on a miss.
func (c *promptCache) get(b backend.Backend, key string) (embeds backend.Tensor, mask *tensor.Host, ok bool) {
	for i, e := range c.entries {
		if e.key == key {
			c.entries = append(append(c.entries[:i:i], c.entries[i+1:]...), e)
			return b.Reshape(e.embeds, e.embeds.Shape()...), e.mask, true
		}
	}
	return nil, nil, false
}

// put keeps embeds (the caller's handle stays the caller's: the cache
// takes a view) under key as the most recently used entry, then evicts
// the least recently used ones beyond the limits. An encoding larger than
// the byte limit is not kept.
func (c *promptCache) put(b backend.Backend, key string, embeds backend.Tensor, mask *tensor.Host) {
	n := tensorBytes(embeds)
	if c.limits.Entries <= 0 || n > c.limits.Bytes {
		return
	}
	c.entries = append(c.entries, &promptCacheEntry{key: key, embeds: b.Reshape(embeds, embeds.Shape()...), mask: mask, bytes: n})
	c.bytes += n
	c.evict(b)
}

// evict frees the least recently used entries until the cache is within
// its limits.
func (c *promptCache) evict(b backend.Backend) {
	for len(c.entries) > 0 && (len(c.entries) > c.limits.Entries || c.bytes > c.limits.Bytes) {
		e := c.entries[0]
		c.entries = c.entries[1:]
		c.bytes -= e.bytes
		nn.Free(b, e.embeds)
	}
}

// clear frees every entry.
func (c *promptCache) clear(b backend.Backend) {
	for _, e := range c.entries {
		nn.Free(b, e.embeds)
	}
	c.entries, c.bytes = nil, 0
}

// SetPromptCacheLimits sets the bounds of a PixArt pipeline's cache of
// recent prompts' embeddings (DefaultPromptCacheLimits at load), freeing
// the least recently used encodings beyond them; Entries 0 turns the cache
// off and frees it. Other kinds have no such cache.
func (p *Pipeline) SetPromptCacheLimits(l PromptCacheLimits) {
	if p.pixart == nil {
		return
	}
	c := &p.pixart.promptCache
	c.limits = l
	if l.Entries <= 0 {
		c.clear(p.b)
		return
	}
	c.evict(p.b)
}

// PromptCacheLimits returns the bounds of the prompt embeddings cache
// (zero for kinds without one).
func (p *Pipeline) PromptCacheLimits() PromptCacheLimits {
	if p.pixart == nil {
		return PromptCacheLimits{}
	}
	return p.pixart.promptCache.limits
}

// ClearPromptCache frees every cached prompt encoding.
func (p *Pipeline) ClearPromptCache() {
	if p.pixart != nil {
		p.pixart.promptCache.clear(p.b)
	}
}

// PromptCacheBytes is the device memory the cached prompt encodings hold
// (part of the backend's live bytes between generations).
func (p *Pipeline) PromptCacheBytes() int64 {
	if p.pixart == nil {
		return 0
	}
	return p.pixart.promptCache.bytes
}

// PromptCacheLen is the number of cached prompt encodings.
func (p *Pipeline) PromptCacheLen() int {
	if p.pixart == nil {
		return 0
	}
	return len(p.pixart.promptCache.entries)
}
