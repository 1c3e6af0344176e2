//go:build js && wasm

package webgpu

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tgate-web/tgate/backend"
	"github.com/tgate-web/tgate/cpu"
	"github.com/tgate-web/tgate/fixture"
	"github.com/tgate-web/tgate/models/vae"
	"github.com/tgate-web/tgate/nn"
	"github.com/tgate-web/tgate/tensor"
)

// lowerBinding sets the shared backend's storage binding limit to n bytes
// until the returned function restores it.
func lowerBinding(n uint64) func() {
	saved := shared.maxBinding
	shared.maxBinding = n
	return func() { shared.maxBinding = saved }
}

// raw16 returns h's values stored as F16 (rounded).
func raw16(h *tensor.Host) *tensor.Raw {
	r := &tensor.Raw{DType: tensor.F16, Shape: h.Shape.Clone(), Bytes: make([]byte, 2*len(h.Data))}
	tensor.EncodeFloat32(r.Bytes, h.Data, tensor.F16)
	return r
}

// windowCase is one op run with the binding limit lowered: run builds its
// inputs on b (registering each with keep, which frees them) and returns
// the op's result.
type windowCase struct {
	name    string
	k       kernel
	minWins int     // windows the op must use
	tol     float64 // relative to max |cpu|; 0: exact
	run     func(b backend.Backend, keep func(backend.Tensor) backend.Tensor) backend.Tensor
}

// runCase runs c on the CPU backend and on the shared WebGPU backend and
// returns both results and the windows (dispatch groups) the GPU op used.
func runCase(t *testing.T, c windowCase) (gpu, ref *tensor.Host, wins int) {
	t.Helper()
	on := func(b backend.Backend) *tensor.Host {
		var ins []backend.Tensor
		out := c.run(b, func(x backend.Tensor) backend.Tensor { ins = append(ins, x); return x })
		h := readBack(t, b, out)
		b.Free(out)
		for _, x := range ins {
			b.Free(x)
		}
		return h
	}
	ref = on(cpu.New())
	before := shared.KernelStats()[c.k.entry]
	gpu = on(shared)
	after := shared.KernelStats()[c.k.entry]
	if after.Windowed == before.Windowed {
		t.Errorf("%s: kernel %s did not take its windowed path (stats %+v)", c.name, c.k.entry, after)
	}
	return gpu, ref, after.Calls - before.Calls
}

// TestWindowedOps runs each op the SD VAE decoder needs above the binding
// limit (and the other norms, broadcasts and copies that share its
// windows) with the limit lowered to 1 KiB, so that every op is split into
// at least three windows bound at 256-byte aligned offsets, and compares
// with the CPU backend.
func TestWindowedOps(t *testing.T) {
	defer lowerBinding(1024)()
	up := func(seed uint64, shape ...int) func(backend.Backend) backend.Tensor {
		h := randn(seed, 1, shape...)
		return func(b backend.Backend) backend.Tensor { return b.Upload(h) }
	}
	up16 := func(seed uint64, shape ...int) func(backend.Backend) backend.Tensor {
		r := raw16(randn(seed, 1, shape...))
		return func(b backend.Backend) backend.Tensor { return b.UploadRaw(r) }
	}
	type kf = func(backend.Tensor) backend.Tensor
	conv := func(x, w, bias func(backend.Backend) backend.Tensor, stride, pad int) func(backend.Backend, kf) backend.Tensor {
		return func(b backend.Backend, keep kf) backend.Tensor {
			var bt backend.Tensor
			if bias != nil {
				bt = keep(bias(b))
			}
			return b.Conv2D(keep(x(b)), keep(w(b)), bt, backend.Conv2DOpts{Stride: stride, Padding: pad})
		}
	}
	binary := func(op backend.BinaryOp, x, y func(backend.Backend) backend.Tensor) func(backend.Backend, kf) backend.Tensor {
		return func(b backend.Backend, keep kf) backend.Tensor { return b.Binary(op, keep(x(b)), keep(y(b))) }
	}
	resize := func(x func(backend.Backend) backend.Tensor, h, w int) func(backend.Backend, kf) backend.Tensor {
		return func(b backend.Backend, keep kf) backend.Tensor { return b.ResizeNearest(keep(x(b)), h, w) }
	}
	concat := func(axis int, xs ...func(backend.Backend) backend.Tensor) func(backend.Backend, kf) backend.Tensor {
		return func(b backend.Backend, keep kf) backend.Tensor {
			var ts []backend.Tensor
			for _, x := range xs {
				ts = append(ts, keep(x(b)))
			}
			return b.Concat(axis, ts...)
		}
	}
	cases := []windowCase{
		// x [2, 6, 9, 7]: 1512 bytes per sample, windows of input channels
		// summed into out; out [2, 5, 9, 7] and the F32 filter (1080 bytes)
		// are split into bands of output channels.
		{"Conv2D 3x3 pad 1, F32 filter", kConv2D, 3, 1e-5, conv(up(1, 2, 6, 9, 7), up(2, 5, 6, 3, 3), up(3, 5), 1, 1)},
		{"Conv2D 3x3 pad 1, F16 filter", kConv2D, 3, 1e-5, conv(up(1, 2, 6, 9, 7), up16(4, 5, 6, 3, 3), up16(5, 5), 1, 1)},
		{"Conv2D 3x3 stride 2", kConv2D, 3, 1e-5, conv(up(6, 1, 4, 13, 11), up(7, 6, 4, 3, 3), up(8, 6), 2, 0)},
		{"Conv2D 1x1 no bias", kConv2D, 3, 1e-5, conv(up(9, 1, 12, 8, 8), up(10, 4, 12, 1, 1), nil, 1, 0)},
		// Groups of 2 channels × 60 positions (480 bytes): two per window.
		{"GroupNorm+SiLU", kGroupNorm, 3, 1e-5, func(b backend.Backend, keep kf) backend.Tensor {
			return b.GroupNorm(keep(up(11, 2, 8, 6, 10)(b)), keep(up(12, 8)(b)), keep(up(13, 8)(b)), 4, 1e-6, true)
		}},
		{"GroupNorm F16 input, no affine", kGroupNorm, 3, 1e-5, func(b backend.Backend, keep kf) backend.Tensor {
			return b.GroupNorm(keep(up16(14, 2, 8, 6, 10)(b)), nil, nil, 4, 1e-6, false)
		}},
		{"LayerNorm", kLayerNorm, 3, 1e-5, func(b backend.Backend, keep kf) backend.Tensor {
			return b.LayerNorm(keep(up(15, 40, 24)(b)), keep(up(16, 24)(b)), keep(up(17, 24)(b)), 1e-5)
		}},
		{"RMSNorm", kLayerNorm, 3, 1e-5, func(b backend.Backend, keep kf) backend.Tensor {
			return b.RMSNorm(keep(up(18, 40, 24)(b)), keep(up(19, 24)(b)), 1e-6)
		}},
		{"Softmax", kSoftmax, 3, 1e-5, func(b backend.Backend, keep kf) backend.Tensor {
			return b.Softmax(keep(up(20, 40, 24)(b)))
		}},
		{"Binary [2,8,6,10]+[2,8,1,1]", kBinary, 3, 0, binary(backend.Add, up(21, 2, 8, 6, 10), up(22, 2, 8, 1, 1))},
		{"Binary [2,8,6,10]·[1,8,1,1]", kBinary, 3, 0, binary(backend.Mul, up(23, 2, 8, 6, 10), up(24, 1, 8, 1, 1))},
		{"Binary [2,8,1,1]−[2,8,6,10] F16", kBinary, 3, 0, binary(backend.Sub, up(25, 2, 8, 1, 1), up16(26, 2, 8, 6, 10))},
		{"Binary same shape F16", kBinary, 3, 0, binary(backend.Mul, up16(27, 2, 8, 6, 10), up(28, 2, 8, 6, 10))},
		{"ResizeNearest ×2", kResize, 3, 0, resize(up(29, 1, 8, 5, 7), 10, 14)},
		{"ResizeNearest 7x9→16x20", kResize, 3, 0, resize(up(30, 1, 3, 7, 9), 16, 20)},
		{"ResizeNearest 20x20→7x9", kResize, 3, 0, resize(up(31, 2, 2, 20, 20), 7, 9)},
		{"Concat channels", kStrided, 3, 0, concat(1, up(32, 1, 3, 8, 8), up(33, 1, 5, 8, 8))},
		{"Concat channels, batch 2", kStrided, 3, 0, concat(1, up(34, 2, 3, 4, 8), up(35, 2, 5, 4, 8))},
		{"Concat last axis", kStrided, 3, 0, concat(3, up(36, 1, 4, 8, 8), up(37, 1, 4, 8, 1))},
		{"Slice channels", kStrided, 3, 0, func(b backend.Backend, keep kf) backend.Tensor {
			return b.Slice(keep(up(38, 1, 12, 8, 8)(b)), 1, 2, 11)
		}},
	}
	for _, c := range cases {
		// Each case also runs with at most two workgroups per dimension,
		// so windows and split dispatches combine.
		for _, md := range []int{0, 2} {
			name := c.name
			if md > 0 {
				name += fmt.Sprintf(", ≤%d workgroups per dimension", md)
			}
			t.Run(name, func(t *testing.T) {
				if md > 0 {
					saved := shared.maxDim
					shared.maxDim = md
					defer func() { shared.maxDim = saved }()
				}
				gpu, ref, wins := runCase(t, c)
				if wins < c.minWins {
					t.Errorf("%d windows, want at least %d", wins, c.minWins)
				}
				if err := shared.Err(); err != nil {
					t.Fatalf("device error: %v", err)
				}
				if c.tol == 0 {
					if !gpu.Shape.Equal(ref.Shape) {
						t.Fatalf("shape %v, want %v", gpu.Shape, ref.Shape)
					}
					for i := range ref.Data {
						if gpu.Data[i] != ref.Data[i] {
							t.Fatalf("element %d = %v, want %v", i, gpu.Data[i], ref.Data[i])
						}
					}
					t.Logf("%v in %d dispatch groups: equal", ref.Shape, wins)
					return
				}
				compare(t, fmt.Sprintf("%d dispatch groups", wins), gpu, ref, c.tol)
			})
		}
	}
}

// TestWindowLimitErrors checks, on a backend of its own with 1 KiB
// bindings, that an op whose tensors cannot be windowed names the tensor
// that does not fit: a broadcast input read in every window that is above
// the limit whole, and a permutation (which has no contiguous windows).
func TestWindowLimitErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		run  func(b *Backend) []backend.Tensor
		op   string
		want tensor.Shape
	}{
		{"Binary", func(b *Backend) []backend.Tensor {
			col, row := b.Upload(tensor.New(300, 1)), b.Upload(tensor.New(1, 300))
			return []backend.Tensor{col, row, b.Binary(backend.Add, col, row)}
		}, "Binary add", tensor.Shape{1, 300}},
		{"Permute", func(b *Backend) []backend.Tensor {
			x := b.Upload(tensor.New(20, 30))
			return []backend.Tensor{x, b.Permute(x, 1, 0)}
		}, "Permute", tensor.Shape{20, 30}},
		{"GroupNorm", func(b *Backend) []backend.Tensor {
			x := b.Upload(tensor.New(1, 4, 12, 12)) // one group is 2304 bytes
			return []backend.Tensor{x, b.GroupNorm(x, nil, nil, 1, 1e-5, false)}
		}, "GroupNorm", tensor.Shape{1, 4, 12, 12}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := New(Options{MaxStorageBindingSize: 1024})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			live := b.Memory().Live
			ts := c.run(b)
			var le *LimitError
			if !errors.As(b.Err(), &le) || le.Op != c.op || !le.Shape.Equal(c.want) {
				t.Errorf("Err = %v, want a LimitError of %s naming %v", b.Err(), c.op, c.want)
			} else {
				t.Log(le)
			}
			for _, x := range ts {
				b.Free(x)
			}
			if m := b.Memory().Live; m != live {
				t.Errorf("Memory().Live %d after freeing, %d before", m, live)
			}
		})
	}
}

// TestModelVAEWindowed decodes the 6×10 latents of TestModelVAE with F16
// weights while bindings are limited to 16 KiB: the mid-block attention's
// tensors (15 KiB) still fit whole, but the 12×20 activations (60 KiB),
// the 64-channel conv filters (72 KiB) and the upsampling run in windows.
// The decoded image must match the CPU backend within modelTol.
func TestModelVAEWindowed(t *testing.T) {
	cfg, err := vae.ParseConfig([]byte(vaeJSON))
	if err != nil {
		t.Fatal(err)
	}
	src := randomWeights(t, fixture.ScopeParams(func(s *nn.Scope) error {
		_, err := vae.NewDecoder(s, cfg)
		return err
	}), 13, tensor.F16)
	z := randn(5, 1, 1, 4, 6, 10)

	defer lowerBinding(16 << 10)()
	for _, k := range []kernel{kConv2D, kGroupNorm, kResize, kBinary} {
		shared.kstat(k).MaxWindows = 0 // count this decode's windows only
	}
	before := shared.KernelStats()
	s0 := shared.Stats()
	gpu, ref := decodeOnBoth(t, src, cfg, z)
	after := shared.KernelStats()
	t.Logf("%d dispatches", shared.Stats().Dispatches-s0.Dispatches)
	for _, k := range []kernel{kConv2D, kGroupNorm, kResize, kBinary} {
		a, bf := after[k.entry], before[k.entry]
		t.Logf("%s: %d ops windowed, at most %d windows", k.entry, a.Windowed-bf.Windowed, a.MaxWindows)
		if a.Windowed == bf.Windowed {
			t.Errorf("kernel %s never ran windowed in the decoder", k.entry)
		}
		if k != kBinary && a.MaxWindows < 3 {
			t.Errorf("kernel %s used at most %d windows, want at least 3", k.entry, a.MaxWindows)
		}
	}
	compare(t, "vae decode, 16 KiB bindings", gpu[0], ref[0], modelTol)
}

// TestSDDecoderWindowPlan plans, without computing, the ops of SD 1.5's
// VAE decoder at 512×512 whose tensors exceed 128 MiB (the meter's
// "Largest single tensor" is a 256 MiB activation; these are every op that
// touches one), and the largest convolution of SDXL's decoder at
// 1024×1024, on a backend whose bindings are limited to WebGPU's default
// 128 MiB. Every tensor is a placeholder without a buffer (as above
// maxBufferSize) and the backend already holds an error, so nothing is
// allocated or recorded, but each op still splits its work; the window
// counts follow from the sizes.
func TestSDDecoderWindowPlan(t *testing.T) {
	b, err := New(Options{MaxStorageBindingSize: 128 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dry := errors.New("dry run")
	b.err = dry
	b.maxBuffer = 0 // op results are placeholders too: nothing is allocated
	ph := func(dt tensor.DType, shape ...int) *Tensor {
		return &Tensor{shape: shape, dtype: dt, st: &storage{refs: 1}}
	}
	f32, f16 := tensor.F32, tensor.F16
	conv := func(x, w, bias *Tensor, pad int) func() []*Tensor {
		return func() []*Tensor {
			return []*Tensor{x, w, bias, b.Conv2D(x, w, bias, backend.Conv2DOpts{Stride: 1, Padding: pad}).(*Tensor)}
		}
	}
	for _, c := range []struct {
		name string
		k    kernel
		wins int
		run  func() []*Tensor
	}{
		// Upsampler of the third up block: the 256 MiB output is two
		// windows of 128 MiB, each reading 32 MiB of input.
		{"ResizeNearest [1,256,256,256]→512²", kResize, 2, func() []*Tensor {
			x := ph(f32, 1, 256, 256, 256)
			return []*Tensor{x, b.ResizeNearest(x, 512, 512).(*Tensor)}
		}},
		// x and out of 256 MiB: 2 windows of 128 input channels (1 MiB
		// each) times 2 bands of 128 output channels.
		{"Conv2D 3×3 256→256 at 512²", kConv2D, 4, conv(ph(f32, 1, 256, 512, 512), ph(f16, 256, 256, 3, 3), ph(f16, 256), 1)},
		// 32 groups of 8 MiB: 16 per window.
		{"GroupNorm+SiLU [1,256,512,512]", kGroupNorm, 2, func() []*Tensor {
			x, g, be := ph(f32, 1, 256, 512, 512), ph(f16, 256), ph(f16, 256)
			return []*Tensor{x, g, be, b.GroupNorm(x, g, be, 32, 1e-6, true).(*Tensor)}
		}},
		// The 128 MiB output fits whole: only the input is windowed.
		{"Conv2D 3×3 256→128 at 512²", kConv2D, 2, conv(ph(f32, 1, 256, 512, 512), ph(f16, 128, 256, 3, 3), ph(f16, 128), 1)},
		{"Conv2D 1×1 256→128 at 512²", kConv2D, 2, conv(ph(f32, 1, 256, 512, 512), ph(f16, 128, 256, 1, 1), ph(f16, 128), 0)},
		// The residual sums are exactly 128 MiB: one binding each.
		{"Binary add [1,128,512,512]", kBinary, 1, func() []*Tensor {
			x, y := ph(f32, 1, 128, 512, 512), ph(f32, 1, 128, 512, 512)
			return []*Tensor{x, y, b.Binary(backend.Add, x, y).(*Tensor)}
		}},
		// SDXL at 1024²: 1 GiB tensors, 4 MiB channels, 32 per window: 8×8.
		{"SDXL Conv2D 3×3 256→256 at 1024²", kConv2D, 64, conv(ph(f32, 1, 256, 1024, 1024), ph(f16, 256, 256, 3, 3), ph(f16, 256), 1)},
	} {
		b.kstat(c.k).MaxWindows = 0
		ts := c.run()
		if got := b.KernelStats()[c.k.entry].MaxWindows; got != c.wins {
			t.Errorf("%s: planned %d windows, want %d (0: the op could not be windowed)", c.name, got, c.wins)
		} else {
			t.Logf("%s: %d windows", c.name, got)
		}
		for _, x := range ts {
			b.Free(x)
		}
	}
	if b.Err() != dry {
		t.Errorf("Err = %v, want the dry-run error", b.Err())
	}
}
