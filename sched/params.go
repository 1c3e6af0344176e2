package sched

import (
	"fmt"
	"math"
	"strings"
)

// Name identifies one of the supported schedulers.
type Name string

// The supported schedulers and the diffusers classes they reproduce.
const (
	DDIM           Name = "ddim"    // DDIMScheduler
	PNDM           Name = "pndm"    // PNDMScheduler
	Euler          Name = "euler"   // EulerDiscreteScheduler
	EulerAncestral Name = "euler-a" // EulerAncestralDiscreteScheduler
	DPMSolver      Name = "dpm++2m" // DPMSolverMultistepScheduler
	LCM            Name = "lcm"     // LCMScheduler
)

var names = []struct {
	name  Name
	class string
}{
	{DDIM, "DDIMScheduler"},
	{PNDM, "PNDMScheduler"},
	{Euler, "EulerDiscreteScheduler"},
	{EulerAncestral, "EulerAncestralDiscreteScheduler"},
	{DPMSolver, "DPMSolverMultistepScheduler"},
	{LCM, "LCMScheduler"},
}

// Names lists the valid scheduler names in a fixed order.
func Names() []Name {
	out := make([]Name, len(names))
	for i, n := range names {
		out[i] = n.name
	}
	return out
}

// ParseName maps a user-facing name (ddim, pndm, euler, euler-a, dpm++2m,
// lcm; case-insensitive) or a diffusers class name (DDIMScheduler, ...) to a
// Name. An unknown value gets an error listing the valid names.
func ParseName(s string) (Name, error) {
	t := strings.TrimSpace(s)
	for _, n := range names {
		if strings.EqualFold(t, string(n.name)) || strings.EqualFold(t, n.class) {
			return n.name, nil
		}
	}
	valid := make([]string, len(names))
	for i, n := range names {
		valid[i] = string(n.name)
	}
	return "", fmt.Errorf("sched: unknown scheduler %q (valid: %s)", s, strings.Join(valid, ", "))
}

// ClassName returns the diffusers class the scheduler reproduces.
func (n Name) ClassName() string {
	for _, e := range names {
		if e.name == n {
			return e.class
		}
	}
	return ""
}

// Params are a scheduler's resolved constructor arguments: the class
// defaults overridden by the keys present in a Config. Only the fields of
// the scheduler's own class are meaningful; the others keep zero values.
// Field names follow the diffusers keyword arguments.
type Params struct {
	NumTrainTimesteps   int       // num_train_timesteps
	BetaStart           float64   // beta_start
	BetaEnd             float64   // beta_end
	BetaSchedule        string    // beta_schedule: linear, scaled_linear, squaredcos_cap_v2
	TrainedBetas        []float64 // trained_betas (nil: use the schedule)
	PredictionType      string    // prediction_type: epsilon, v_prediction, sample
	TimestepSpacing     string    // timestep_spacing: leading, trailing, linspace
	StepsOffset         int       // steps_offset
	RescaleBetasZeroSNR bool      // rescale_betas_zero_snr

	// DDIM, PNDM, LCM
	SetAlphaToOne   bool    // set_alpha_to_one
	ClipSample      bool    // clip_sample (DDIM, LCM)
	ClipSampleRange float64 // clip_sample_range (DDIM, LCM)
	Thresholding    bool    // thresholding (DDIM, DPM, LCM); only false is supported
	SkipPRKSteps    bool    // skip_prk_steps (PNDM)

	// Euler
	InterpolationType string   // interpolation_type: linear (log_linear unsupported)
	UseKarrasSigmas   bool     // use_karras_sigmas (Euler, DPM)
	SigmaMin          *float64 // sigma_min (Euler Karras)
	SigmaMax          *float64 // sigma_max (Euler Karras)
	TimestepType      string   // timestep_type: discrete
	FinalSigmasType   string   // final_sigmas_type: zero, sigma_min (Euler, DPM)

	// DPMSolverMultistep
	SolverOrder      int     // solver_order
	AlgorithmType    string  // algorithm_type: dpmsolver++
	SolverType       string  // solver_type: midpoint, heun
	LowerOrderFinal  bool    // lower_order_final
	EulerAtFinal     bool    // euler_at_final
	UseLuLambdas     bool    // use_lu_lambdas (unsupported)
	LambdaMinClipped float64 // lambda_min_clipped
	VarianceType     string  // variance_type ("" for None)

	// LCM
	OriginalInferenceSteps int     // original_inference_steps
	TimestepScaling        float64 // timestep_scaling
}

// defaultParams returns the __init__ defaults of the class (diffusers
// v0.30.3).
func defaultParams(n Name) Params {
	p := Params{
		NumTrainTimesteps: 1000,
		BetaStart:         0.0001,
		BetaEnd:           0.02,
		BetaSchedule:      "linear",
		PredictionType:    "epsilon",
		ClipSampleRange:   1.0,
	}
	switch n {
	case DDIM:
		p.ClipSample = true
		p.SetAlphaToOne = true
		p.TimestepSpacing = "leading"
	case PNDM:
		p.TimestepSpacing = "leading"
	case Euler:
		p.InterpolationType = "linear"
		p.TimestepSpacing = "linspace"
		p.TimestepType = "discrete"
		p.FinalSigmasType = "zero"
	case EulerAncestral:
		p.TimestepSpacing = "linspace"
	case DPMSolver:
		p.SolverOrder = 2
		p.AlgorithmType = "dpmsolver++"
		p.SolverType = "midpoint"
		p.LowerOrderFinal = true
		p.FinalSigmasType = "zero"
		p.LambdaMinClipped = math.Inf(-1)
		p.TimestepSpacing = "linspace"
	case LCM:
		p.BetaStart = 0.00085
		p.BetaEnd = 0.012
		p.BetaSchedule = "scaled_linear"
		p.OriginalInferenceSteps = 50
		p.SetAlphaToOne = true
		p.TimestepSpacing = "leading"
		p.TimestepScaling = 10
	}
	return p
}

// classKeys lists the keyword arguments of each class's __init__; a config
// key outside this list is ignored for that class, as in diffusers.
var classKeys = map[Name][]string{
	DDIM: {"num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "clip_sample",
		"set_alpha_to_one", "steps_offset", "prediction_type", "thresholding", "dynamic_thresholding_ratio",
		"clip_sample_range", "sample_max_value", "timestep_spacing", "rescale_betas_zero_snr"},
	PNDM: {"num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "skip_prk_steps",
		"set_alpha_to_one", "prediction_type", "timestep_spacing", "steps_offset"},
	Euler: {"num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type",
		"interpolation_type", "use_karras_sigmas", "sigma_min", "sigma_max", "timestep_spacing", "timestep_type",
		"steps_offset", "rescale_betas_zero_snr", "final_sigmas_type"},
	EulerAncestral: {"num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas",
		"prediction_type", "timestep_spacing", "steps_offset", "rescale_betas_zero_snr"},
	DPMSolver: {"num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "solver_order",
		"prediction_type", "thresholding", "dynamic_thresholding_ratio", "sample_max_value", "algorithm_type",
		"solver_type", "lower_order_final", "euler_at_final", "use_karras_sigmas", "use_lu_lambdas",
		"final_sigmas_type", "lambda_min_clipped", "variance_type", "timestep_spacing", "steps_offset",
		"rescale_betas_zero_snr"},
	LCM: {"num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas",
		"original_inference_steps", "clip_sample", "clip_sample_range", "set_alpha_to_one", "steps_offset",
		"prediction_type", "thresholding", "dynamic_thresholding_ratio", "sample_max_value", "timestep_spacing",
		"timestep_scaling", "rescale_betas_zero_snr"},
}

// ResolveParams returns the arguments scheduler n gets from
// n.ClassName().from_config(cfg): each of the class's keyword arguments
// takes the config's value when the key is present, else the class default.
// cfg may be nil (all defaults). Unsupported settings are reported here.
func ResolveParams(n Name, cfg *Config) (Params, error) {
	keys, ok := classKeys[n]
	if !ok {
		_, err := ParseName(string(n))
		return Params{}, err
	}
	p := defaultParams(n)
	if cfg == nil {
		cfg = &Config{}
	}
	has := map[string]bool{}
	for _, k := range keys {
		has[k] = true
	}
	var errs []error
	rd := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if has["num_train_timesteps"] {
		rd(cfg.readInt("num_train_timesteps", &p.NumTrainTimesteps))
	}
	rd(cfg.readFloat("beta_start", &p.BetaStart))
	rd(cfg.readFloat("beta_end", &p.BetaEnd))
	rd(cfg.readString("beta_schedule", &p.BetaSchedule))
	rd(cfg.readFloats("trained_betas", &p.TrainedBetas))
	rd(cfg.readString("prediction_type", &p.PredictionType))
	rd(cfg.readString("timestep_spacing", &p.TimestepSpacing))
	rd(cfg.readInt("steps_offset", &p.StepsOffset))
	if has["rescale_betas_zero_snr"] {
		rd(cfg.readBool("rescale_betas_zero_snr", &p.RescaleBetasZeroSNR))
	}
	if has["set_alpha_to_one"] {
		rd(cfg.readBool("set_alpha_to_one", &p.SetAlphaToOne))
	}
	if has["clip_sample"] {
		rd(cfg.readBool("clip_sample", &p.ClipSample))
		rd(cfg.readFloat("clip_sample_range", &p.ClipSampleRange))
	}
	if has["thresholding"] {
		rd(cfg.readBool("thresholding", &p.Thresholding))
	}
	if has["skip_prk_steps"] {
		rd(cfg.readBool("skip_prk_steps", &p.SkipPRKSteps))
	}
	if has["interpolation_type"] {
		rd(cfg.readString("interpolation_type", &p.InterpolationType))
	}
	if has["use_karras_sigmas"] {
		rd(cfg.readBool("use_karras_sigmas", &p.UseKarrasSigmas))
	}
	if has["sigma_min"] {
		rd(cfg.readOptFloat("sigma_min", &p.SigmaMin))
		rd(cfg.readOptFloat("sigma_max", &p.SigmaMax))
	}
	if has["timestep_type"] {
		rd(cfg.readString("timestep_type", &p.TimestepType))
	}
	if has["final_sigmas_type"] {
		rd(cfg.readString("final_sigmas_type", &p.FinalSigmasType))
	}
	if has["solver_order"] {
		rd(cfg.readInt("solver_order", &p.SolverOrder))
		rd(cfg.readString("algorithm_type", &p.AlgorithmType))
		rd(cfg.readString("solver_type", &p.SolverType))
		rd(cfg.readBool("lower_order_final", &p.LowerOrderFinal))
		rd(cfg.readBool("euler_at_final", &p.EulerAtFinal))
		rd(cfg.readBool("use_lu_lambdas", &p.UseLuLambdas))
		rd(cfg.readFloat("lambda_min_clipped", &p.LambdaMinClipped))
		rd(cfg.readString("variance_type", &p.VarianceType))
	}
	if has["original_inference_steps"] {
		rd(cfg.readInt("original_inference_steps", &p.OriginalInferenceSteps))
		rd(cfg.readFloat("timestep_scaling", &p.TimestepScaling))
	}
	if len(errs) > 0 {
		return Params{}, errs[0]
	}
	if err := p.validate(n, cfg.Source); err != nil {
		return Params{}, err
	}
	return p, nil
}

// validate rejects settings this package does not implement, naming them.
func (p *Params) validate(n Name, src string) error {
	bad := func(key, val, supported string) error {
		return fmt.Errorf("sched: %s: %s %s=%q is not supported (supported: %s)", src, n.ClassName(), key, val, supported)
	}
	if p.NumTrainTimesteps < 2 {
		return fmt.Errorf("sched: %s: num_train_timesteps must be at least 2, got %d", src, p.NumTrainTimesteps)
	}
	if p.TrainedBetas != nil && len(p.TrainedBetas) != p.NumTrainTimesteps {
		return fmt.Errorf("sched: %s: trained_betas has %d values, num_train_timesteps is %d", src, len(p.TrainedBetas), p.NumTrainTimesteps)
	}
	if p.TrainedBetas == nil {
		switch p.BetaSchedule {
		case "linear", "scaled_linear", "squaredcos_cap_v2":
		default:
			return bad("beta_schedule", p.BetaSchedule, "linear, scaled_linear, squaredcos_cap_v2")
		}
	}
	switch p.PredictionType {
	case "epsilon", "v_prediction":
	case "sample":
		if n == EulerAncestral || n == PNDM {
			return bad("prediction_type", p.PredictionType, "epsilon, v_prediction")
		}
	default:
		return bad("prediction_type", p.PredictionType, "epsilon, v_prediction, sample")
	}
	if n != LCM {
		switch p.TimestepSpacing {
		case "leading", "trailing", "linspace":
		default:
			return bad("timestep_spacing", p.TimestepSpacing, "leading, trailing, linspace")
		}
	}
	if p.Thresholding {
		return bad("thresholding", "true", "false")
	}
	switch n {
	case Euler:
		if p.InterpolationType != "linear" {
			return bad("interpolation_type", p.InterpolationType, "linear")
		}
		if p.TimestepType != "discrete" {
			return bad("timestep_type", p.TimestepType, "discrete")
		}
		if p.FinalSigmasType != "zero" && p.FinalSigmasType != "sigma_min" {
			return bad("final_sigmas_type", p.FinalSigmasType, "zero, sigma_min")
		}
	case DPMSolver:
		if p.AlgorithmType != "dpmsolver++" {
			return bad("algorithm_type", p.AlgorithmType, "dpmsolver++")
		}
		if p.SolverType != "midpoint" && p.SolverType != "heun" {
			return bad("solver_type", p.SolverType, "midpoint, heun")
		}
		if p.SolverOrder < 1 || p.SolverOrder > 3 {
			return fmt.Errorf("sched: %s: solver_order must be 1, 2 or 3, got %d", src, p.SolverOrder)
		}
		if p.FinalSigmasType != "zero" && p.FinalSigmasType != "sigma_min" {
			return bad("final_sigmas_type", p.FinalSigmasType, "zero, sigma_min")
		}
		if p.UseLuLambdas {
			return bad("use_lu_lambdas", "true", "false")
		}
		if p.VarianceType != "" {
			return bad("variance_type", p.VarianceType, "null (split learned variance off before the scheduler)")
		}
	case LCM:
		if p.OriginalInferenceSteps < 1 || p.OriginalInferenceSteps > p.NumTrainTimesteps {
			return fmt.Errorf("sched: %s: original_inference_steps %d must be in [1, num_train_timesteps=%d]", src, p.OriginalInferenceSteps, p.NumTrainTimesteps)
		}
	}
	return nil
}
