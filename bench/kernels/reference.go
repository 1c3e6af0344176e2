package main

import "math"

// The float64 references every engine's output is checked against: the
// textbook definitions of each operation, summed in float64 from the
// float32 inputs, independent of every engine's kernels.

// refLinear computes y[m,n] = b[n] + Σ_k x[m,k]·w[n,k] (torch.nn.Linear,
// x [M,K], w [N,K]).
func refLinear(x, w, b []float32, M, K, N int) []float64 {
	y := make([]float64, M*N)
	for m := range M {
		xr := x[m*K : (m+1)*K]
		for n := range N {
			wr := w[n*K : (n+1)*K]
			s := float64(b[n])
			for k := range K {
				s += float64(xr[k]) * float64(wr[k])
			}
			y[m*N+n] = s
		}
	}
	return y
}

// refConv3x3 computes a 3×3 convolution with padding 1 and stride 1 plus
// bias over x [1,Cin,H,W] with w [Cout,Cin,3,3] (torch.nn.Conv2d).
func refConv3x3(x, w, b []float32, cin, cout, h, wd int) []float64 {
	y := make([]float64, cout*h*wd)
	for co := range cout {
		for oy := range h {
			for ox := range wd {
				s := float64(b[co])
				for ci := range cin {
					for ky := range 3 {
						iy := oy + ky - 1
						if iy < 0 || iy >= h {
							continue
						}
						for kx := range 3 {
							ix := ox + kx - 1
							if ix < 0 || ix >= wd {
								continue
							}
							s += float64(x[(ci*h+iy)*wd+ix]) * float64(w[((co*cin+ci)*3+ky)*3+kx])
						}
					}
				}
				y[(co*h+oy)*wd+ox] = s
			}
		}
	}
	return y
}

// refAttention computes multi-head attention softmax(q·kᵀ/√d)·v per head
// over rows q [S, heads·d], k and v [L, heads·d], the head h taking
// columns h·d … h·d+d−1 (diffusers' Attention with the head split of
// attn.head_to_batch_dim).
func refAttention(q, k, v []float32, S, L, heads, d int) []float64 {
	D := heads * d
	scale := 1 / math.Sqrt(float64(d))
	y := make([]float64, S*D)
	p := make([]float64, L)
	for h := range heads {
		for i := range S {
			mx := math.Inf(-1)
			for j := range L {
				s := 0.0
				for c := range d {
					s += float64(q[i*D+h*d+c]) * float64(k[j*D+h*d+c])
				}
				p[j] = s * scale
				mx = max(mx, p[j])
			}
			sum := 0.0
			for j := range L {
				p[j] = math.Exp(p[j] - mx)
				sum += p[j]
			}
			for c := range d {
				s := 0.0
				for j := range L {
					s += p[j] * float64(v[j*D+h*d+c])
				}
				y[i*D+h*d+c] = s / sum
			}
		}
	}
	return y
}

// refGroupNormSiLU computes GroupNorm (torch.nn.GroupNorm: biased variance
// over each group of C/groups channels × hw positions, (x−μ)/√(σ²+eps),
// then ·γ[c] + β[c]) followed by SiLU t·sigmoid(t), over x [1,C,hw].
func refGroupNormSiLU(x, gamma, beta []float32, c, hw, groups int, eps float64) []float64 {
	y := make([]float64, c*hw)
	per := c / groups * hw
	for g := range groups {
		xs := x[g*per : (g+1)*per]
		mean := 0.0
		for _, v := range xs {
			mean += float64(v)
		}
		mean /= float64(per)
		vr := 0.0
		for _, v := range xs {
			dv := float64(v) - mean
			vr += dv * dv
		}
		vr /= float64(per)
		inv := 1 / math.Sqrt(vr+eps)
		for i, v := range xs {
			ch := (g*per + i) / hw
			t := (float64(v)-mean)*inv*float64(gamma[ch]) + float64(beta[ch])
			y[g*per+i] = t / (1 + math.Exp(-t))
		}
	}
	return y
}
