//go:build js && wasm

package webgpu

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tgate-web/tgate/shaders"
	"github.com/tgate-web/tgate/webgpu/gpu"
)

// slotSize is the size of one dispatch's parameter block in the uniform
// ring; it is the minUniformBufferOffsetAlignment every adapter accepts.
const slotSize = 256

// kernel names an entry point of a shader file and its inputs: the number
// of input bindings (2, 3, ...) after the output at binding 1.
type kernel struct {
	file, entry string
	inputs      int
	flat        bool // 1-D range of workgroups folded into 2-D (base.w pitch)
}

// pipeKey identifies a compute pipeline: the kernel and its override
// constants, formatted canonically.
type pipeKey struct {
	file, entry string
	consts      string
}

// bgKey identifies a bind group: the layout and every bound range.
type bgKey struct {
	inputs int
	ids    [6]uint32
	offs   [6]uint64
	sizes  [6]uint64
}

// binding is a bound byte range of a tensor's buffer.
type binding struct {
	t         *Tensor
	off, size uint64
}

// whole binds all of t: its bytes rounded up to 4, at least 4.
func whole(t *Tensor) binding { return binding{t, 0, bindSize(t)} }

// recorder records dispatches into one command encoder and compute pass,
// with every dispatch's parameters packed into a uniform ring that is
// written once per submission.
type recorder struct {
	b        *Backend
	enc      *gpu.CommandEncoder
	pass     *gpu.ComputePass
	lastPipe *gpu.ComputePipeline
	uniform  *gpu.Buffer
	offsets  gpu.Uint32Array // offsets[i] = i·slotSize, for setBindGroup
	data     []byte          // parameter blocks of this submission
	slots    int
	used     int
	epoch    uint64 // increments at every submission

	bindGroups map[bgKey]*gpu.BindGroup
	uniformID  uint32
}

func (r *recorder) init(b *Backend, slots int) {
	if slots <= 0 {
		slots = 4096
	}
	r.b = b
	r.slots = slots
	r.epoch = 1
	r.uniform = b.dev.CreateBuffer("params", uint64(slots*slotSize), gpu.UsageUniform|gpu.UsageCopyDst)
	offs := make([]uint32, slots)
	for i := range offs {
		offs[i] = uint32(i * slotSize)
	}
	r.offsets = gpu.NewUint32Array(offs)
	r.data = make([]byte, 0, slots*slotSize)
	r.bindGroups = map[bgKey]*gpu.BindGroup{}
}

// flush ends the pass, writes the parameter blocks and submits the
// encoder. It does nothing when no command is recorded.
func (r *recorder) flush() {
	if r.enc == nil {
		return
	}
	if r.pass != nil {
		r.pass.End()
		r.pass = nil
	}
	if len(r.data) > 0 {
		r.b.dev.Queue.WriteBuffer(r.uniform, 0, r.data)
	}
	r.b.dev.Queue.Submit(r.enc.Finish())
	r.b.stats.Submits++
	r.enc = nil
	r.lastPipe = nil
	r.data = r.data[:0]
	r.used = 0
	r.epoch++
}

// encoder returns the open command encoder, outside any compute pass (for
// copies).
func (r *recorder) encoder() *gpu.CommandEncoder {
	if r.enc == nil {
		r.enc = r.b.dev.CreateCommandEncoder()
	}
	if r.pass != nil {
		r.pass.End()
		r.pass = nil
		r.lastPipe = nil
	}
	return r.enc
}

// forget drops cached bind groups that refer to buffer id.
func (r *recorder) forget(id uint32) {
	for k := range r.bindGroups {
		if slices.Contains(k.ids[:], id) {
			delete(r.bindGroups, k)
		}
	}
}

// layout returns the bind-group layout of a kernel with n inputs: a
// dynamic uniform, the output, then n read-only storage buffers.
func (b *Backend) layout(n int) *gpu.BindGroupLayout {
	if l, ok := b.layouts[n]; ok {
		return l
	}
	kinds := []int{gpu.BindUniformDynamic, gpu.BindStorage}
	for range n {
		kinds = append(kinds, gpu.BindStorageRead)
	}
	l := b.dev.CreateBindGroupLayout(fmt.Sprintf("inputs%d", n), kinds)
	b.layouts[n] = l
	return l
}

// pipeline returns the cached pipeline of k with the override constants,
// creating (and compiling) it on first use. A shader that does not compile
// is a programming error: it panics with the compiler's messages.
func (b *Backend) pipeline(k kernel, consts map[string]float64) *gpu.ComputePipeline {
	var sb strings.Builder
	for _, name := range slices.Sorted(maps.Keys(consts)) {
		fmt.Fprintf(&sb, "%s=%g;", name, consts[name])
	}
	key := pipeKey{k.file, k.entry, sb.String()}
	if p, ok := b.pipelines[key]; ok {
		return p
	}
	mod, ok := b.modules[k.file]
	if !ok {
		src, err := shaders.Source(k.file)
		if err == nil {
			mod, err = b.dev.CreateShaderModule(k.file, src)
		}
		if err != nil {
			b.setErr(err)
			panic(err.Error())
		}
		b.modules[k.file] = mod
	}
	p, err := b.dev.CreateComputePipeline(gpu.ComputePipelineDescriptor{
		Label:      k.entry + "(" + key.consts + ")",
		Layout:     b.layout(k.inputs),
		Module:     mod,
		EntryPoint: k.entry,
		Constants:  consts,
	})
	if err != nil {
		b.setErr(err)
		panic(err.Error())
	}
	b.pipelines[key] = p
	return p
}

// bindGroup returns the cached bind group binding the uniform ring, out
// and the inputs.
func (b *Backend) bindGroup(n int, bs []binding) *gpu.BindGroup {
	r := &b.rec
	key := bgKey{inputs: n}
	for i, x := range bs {
		key.ids[i], key.offs[i], key.sizes[i] = x.t.st.buf.id, x.off, x.size
	}
	if bg, ok := r.bindGroups[key]; ok {
		b.stats.BindGroupHits++
		return bg
	}
	b.stats.BindGroupMiss++
	if len(r.bindGroups) > 8192 {
		clear(r.bindGroups)
	}
	entries := []gpu.BufferBinding{{Buffer: r.uniform, Offset: 0, Size: slotSize}}
	for _, x := range bs {
		entries = append(entries, gpu.BufferBinding{Buffer: x.t.st.buf.gb, Offset: x.off, Size: x.size})
	}
	bg := b.dev.CreateBindGroup(b.layout(n), entries)
	r.bindGroups[key] = bg
	return bg
}

// bindSize is the bound size of a tensor: its bytes rounded up to 4, and
// at least 4.
func bindSize(t *Tensor) uint64 {
	return max(4, (t.bytes()+3)&^3)
}

// run records kernel k writing out and reading ins, with the parameter
// block params (a struct whose first field is Base [4]uint32) over a grid
// of workgroups. Grids larger than the per-dimension limit are split into
// several dispatches, each with its own parameter block and base offset;
// a flat kernel's grid[0] is first folded into two dimensions.
func (b *Backend) run(k kernel, consts map[string]float64, params any, grid [3]int, out *Tensor, ins ...*Tensor) {
	bs := []binding{whole(out)}
	for _, t := range ins {
		bs = append(bs, whole(t))
	}
	b.runBound(k, consts, params, grid, bs)
}

// runBound is run with explicit byte ranges: bs[0] is the output, bs[1:]
// the inputs. Ops keep every range within the device's
// maxStorageBufferBindingSize (windowing their work, or recording a
// LimitError instead of running); a larger range is still refused here
// with a LimitError naming the kernel. Once the backend has an error,
// nothing more is recorded: no result can be read back.
func (b *Backend) runBound(k kernel, consts map[string]float64, params any, grid [3]int, bs []binding) {
	if grid[0] == 0 || grid[1] == 0 || grid[2] == 0 || b.err != nil {
		return
	}
	if len(bs) != k.inputs+1 {
		panic(fmt.Sprintf("webgpu: kernel %s takes %d inputs, got %d", k.entry, k.inputs, len(bs)-1))
	}
	for _, x := range bs {
		if x.size > b.maxBinding {
			b.limitErr("kernel "+k.entry, x.t)
			return
		}
	}
	pipe := b.pipeline(k, consts)
	bg := b.bindGroup(k.inputs, bs)

	blk, err := binary.Append(nil, binary.LittleEndian, params)
	if err != nil || len(blk) < 16 || len(blk) > slotSize {
		panic(fmt.Sprintf("webgpu: kernel %s: bad parameter block (%d bytes, %v)", k.entry, len(blk), err))
	}
	md := b.maxDim
	var chunks [][7]int // base x, y, z, pitch, then counts x, y, z
	if k.flat {
		g := grid[0] * grid[1] * grid[2]
		gx := min(g, md)
		gy := (g + gx - 1) / gx
		for y0 := 0; y0 < gy; y0 += md {
			chunks = append(chunks, [7]int{0, y0, 0, gx, gx, min(md, gy-y0), 1})
		}
	} else {
		for z0 := 0; z0 < grid[2]; z0 += md {
			for y0 := 0; y0 < grid[1]; y0 += md {
				for x0 := 0; x0 < grid[0]; x0 += md {
					chunks = append(chunks, [7]int{x0, y0, z0, 0, min(md, grid[0]-x0), min(md, grid[1]-y0), min(md, grid[2]-z0)})
				}
			}
		}
	}
	ks := b.kstat(k)
	ks.Calls++
	ks.MaxGroups = max(ks.MaxGroups, grid[0]*grid[1]*grid[2])
	if len(chunks) > 1 {
		ks.Split++
	}
	r := &b.rec
	for _, c := range chunks {
		if r.used == r.slots {
			r.flush()
		}
		for i := range 4 {
			binary.LittleEndian.PutUint32(blk[4*i:], uint32(c[i]))
		}
		slot := r.used
		r.used++
		r.data = append(r.data, blk...)
		r.data = append(r.data, make([]byte, slotSize-len(blk))...)
		if r.enc == nil {
			r.enc = b.dev.CreateCommandEncoder()
		}
		if r.pass == nil {
			r.pass = r.enc.BeginComputePass()
			r.lastPipe = nil
		}
		if r.lastPipe != pipe {
			r.pass.SetPipeline(pipe)
			r.lastPipe = pipe
		}
		r.pass.SetBindGroup(0, bg, r.offsets, slot, 1)
		r.pass.DispatchWorkgroups(c[4], c[5], c[6])
		b.stats.Dispatches++
	}
	for _, x := range bs {
		x.t.st.buf.lastUse = r.epoch
	}
}
