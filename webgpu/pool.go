//go:build js && wasm

package webgpu

import (
	"math/bits"

	"github.com/tgate-web/tgate/webgpu/gpu"
)

// buffer is a pooled GPU storage buffer.
type buffer struct {
	gb   *gpu.Buffer
	size uint64 // its size class in bytes
	id   uint32 // identity for bind-group keys
	// lastUse is the recorder epoch in which a recorded command last used
	// the buffer; while it equals the current epoch the commands are not
	// submitted yet, and queue.writeBuffer (which runs at submission
	// order, before them) must not overwrite it.
	lastUse uint64
}

// pool keeps freed storage buffers by size class for reuse.
type pool struct {
	dev    *gpu.Device
	free   map[uint64][]*buffer
	nextID uint32
	total  int64 // bytes of all buffers the pool created
	allocs uint64
}

func (p *pool) init(dev *gpu.Device) {
	p.dev = dev
	p.free = map[uint64][]*buffer{}
}

// sizeClass rounds n up to the pool's classes: powers of two up to 64 KiB,
// then eight classes per octave (at most 12.5% waste). The minimum is 256
// bytes, so every buffer can be bound and is 4-byte aligned.
func sizeClass(n uint64) uint64 {
	if n <= 256 {
		return 256
	}
	if n <= 1<<16 {
		return 1 << bits.Len64(n-1)
	}
	step := uint64(1) << (bits.Len64(n-1) - 4) // 1/8 of the octave's base
	return (n + step - 1) / step * step
}

// get returns a buffer of at least n bytes: the free one of its size class
// with the lowest id, so that a loop that allocates and frees in the same
// pattern gets the same buffers every iteration (and its cached bind
// groups). With forWrite, a free buffer still used by unsubmitted commands
// (lastUse == epoch) is not taken. n is at most limit, the device's
// maxBufferSize; a size class above it is replaced by n itself.
func (p *pool) get(n, limit uint64, forWrite bool, epoch uint64) *buffer {
	c := sizeClass(n)
	if c > limit {
		c = max(256, (n+3)&^3)
	}
	list := p.free[c]
	best := -1
	for i, bf := range list {
		if forWrite && bf.lastUse == epoch {
			continue
		}
		if best < 0 || bf.id < list[best].id {
			best = i
		}
	}
	if best >= 0 {
		bf := list[best]
		list[best] = list[len(list)-1]
		p.free[c] = list[:len(list)-1]
		return bf
	}
	p.nextID++
	p.total += int64(c)
	p.allocs++
	gb := p.dev.CreateBuffer("", c, gpu.UsageStorage|gpu.UsageCopySrc|gpu.UsageCopyDst)
	return &buffer{gb: gb, size: c, id: p.nextID}
}

// put returns a buffer to the pool.
func (p *pool) put(bf *buffer) {
	p.free[bf.size] = append(p.free[bf.size], bf)
}

// Trim destroys every free buffer of the pool (bind groups that referred
// to them are dropped from the cache).
func (b *Backend) Trim() {
	b.rec.flush()
	for c, list := range b.pool.free {
		for _, bf := range list {
			bf.gb.Destroy()
			b.pool.total -= int64(bf.size)
			b.rec.forget(bf.id)
		}
		delete(b.pool.free, c)
	}
}
