package pipeline

import (
	"encoding/json"
	"fmt"

	"github.com/tgate-web/tgate/hub"
)

// Class names of model_index.json of SD-XL's editing pipelines. Folders
// that name them (the SD-XL inpainting model with its 9-channel UNet, the
// refiner) hold SD-XL's components; KindOf does not map them yet.
const (
	ClassStableDiffusionXLImg2Img = "StableDiffusionXLImg2ImgPipeline"
	ClassStableDiffusionXLInpaint = "StableDiffusionXLInpaintPipeline"
)

// Default strengths of SD-XL's editing pipelines (diffusers v0.30.3
// StableDiffusionXLImg2ImgPipeline.__call__ strength=0.3 and
// StableDiffusionXLInpaintPipeline.__call__ strength=0.9999). 0.9999 is
// not 1: inpainting then starts from add_noise(image_latents, noise, t)
// at the first kept timestep, and with 10 steps int(10·0.9999) = 9 skips
// the first one.
const (
	DefaultSDXLImg2ImgStrength = 0.3
	DefaultSDXLInpaintStrength = 0.9999
)

// Default aesthetic scores of SD-XL's editing pipelines (__call__'s
// aesthetic_score=6.0 and negative_aesthetic_score=2.5).
const (
	DefaultAestheticScore         = 6.0
	DefaultNegativeAestheticScore = 2.5
)

// DefaultStrength is the strength an editing request with Strength 0
// gets: for SD-XL 0.3 (image to image) or 0.9999 (inpainting), for SD
// 1.x/2.x 0.8 or 1.0 (the __call__ defaults of the four diffusers
// pipelines).
func (p *Pipeline) DefaultStrength(inpaint bool) float64 { return DefaultStrengthFor(p.Kind, inpaint) }

// DefaultStrengthFor is the default strength of the editing pipelines of
// kind (for planning before a model is loaded).
func DefaultStrengthFor(kind Kind, inpaint bool) float64 {
	switch {
	case kind == StableDiffusionXL && inpaint:
		return DefaultSDXLInpaintStrength
	case kind == StableDiffusionXL:
		return DefaultSDXLImg2ImgStrength
	case inpaint:
		return DefaultInpaintStrength
	}
	return DefaultImg2ImgStrength
}

// sdxlTimeIDCount is the number of time ids the UNet's add_embedding
// receives: original size, crop offset and target size (6), or with
// requires_aesthetics_score the aesthetic score in place of the target
// size (5).
func sdxlTimeIDCount(aesthetic bool) int {
	if aesthetic {
		return sdxlTimeIDs - 1
	}
	return sdxlTimeIDs
}

// requiresAestheticsScore reads requires_aesthetics_score from the
// folder's model_index.json (the editing pipelines' register_to_config
// flag; false when absent or when the pipeline has no folder).
func (p *Pipeline) requiresAestheticsScore() (bool, error) {
	if p.folder == nil {
		return false, nil
	}
	mi, err := hub.ReadModelIndexIn(p.folder)
	if err != nil {
		return false, err
	}
	var idx sdxlIndex
	if err := json.Unmarshal(mi.Raw, &idx); err != nil {
		return false, fmt.Errorf("%s/model_index.json: %w", p.Dir, err)
	}
	return idx.RequiresAestheticsScore, nil
}

// sdxlTimeIDs returns add_time_ids and negative add_time_ids for an
// image of height×width pixels. Text-to-image uses
// StableDiffusionXLPipeline's rule (SDXLOptions.addTimeIDs) and refuses a
// model with requires_aesthetics_score, which only the editing pipelines
// can condition; image to image and inpainting use editTimeIDs. warn gets
// a note for each input that has no effect.
func (p *Pipeline) sdxlTimeIDs(o *SDXLOptions, edit bool, height, width int, warn func(string)) (pos, neg []float64, err error) {
	aesthetic, err := p.requiresAestheticsScore()
	if err != nil {
		return nil, nil, err
	}
	scored := o.AestheticScore != 0 || o.NegativeAestheticScore != 0
	if !edit {
		if aesthetic {
			return nil, nil, fmt.Errorf("pipeline: %s/model_index.json sets requires_aesthetics_score (an SD-XL refiner): it runs image to image and inpainting only; give an init image (Request.InitImage)", p.Dir)
		}
		if scored {
			warn("the aesthetic scores are ignored: they condition SD-XL image to image and inpainting with a refiner model only")
		}
		pos, neg = o.addTimeIDs(height, width)
		return pos, neg, nil
	}
	if scored && !aesthetic {
		warn("the aesthetic scores are ignored: this model's model_index.json does not set requires_aesthetics_score")
	}
	if !aesthetic && o.NegativeCropsCoordsTopLeft != (CropOffset{}) {
		warn("negative crops coords top left is ignored: SD-XL image to image and inpainting use crops coords top left for the negative time ids")
	}
	pos, neg = o.editTimeIDs(height, width, aesthetic)
	return pos, neg, nil
}

// editTimeIDs is _get_add_time_ids of StableDiffusionXLImg2ImgPipeline
// and StableDiffusionXLInpaintPipeline (diffusers v0.30.3), which differs
// from StableDiffusionXLPipeline's: original and target size default to
// (height, width), the negative sizes default to those one by one (not
// only when both are given), and
//   - with requires_aesthetics_score (aesthetic): original_size +
//     crops_coords_top_left + (aesthetic_score,) and
//     negative_original_size + negative_crops_coords_top_left +
//     (negative_aesthetic_score,);
//   - otherwise original_size + crops_coords_top_left + target_size and
//     negative_original_size + crops_coords_top_left +
//     negative_target_size (the negative crop offset is not used).
func (o *SDXLOptions) editTimeIDs(height, width int, aesthetic bool) (pos, neg []float64) {
	orDefault := func(s, d ImageSize) ImageSize {
		if s.IsZero() {
			return d
		}
		return s
	}
	orig := orDefault(o.OriginalSize, ImageSize{height, width})
	target := orDefault(o.TargetSize, ImageSize{height, width})
	negOrig := orDefault(o.NegativeOriginalSize, orig)
	negTarget := orDefault(o.NegativeTargetSize, target)
	if !aesthetic {
		return timeIDs(orig, o.CropsCoordsTopLeft, target), timeIDs(negOrig, o.CropsCoordsTopLeft, negTarget)
	}
	score, negScore := o.AestheticScore, o.NegativeAestheticScore
	if score == 0 {
		score = DefaultAestheticScore
	}
	if negScore == 0 {
		negScore = DefaultNegativeAestheticScore
	}
	pos = append(timeIDs(orig, o.CropsCoordsTopLeft, target)[:4], score)
	neg = append(timeIDs(negOrig, o.NegativeCropsCoordsTopLeft, negTarget)[:4], negScore)
	return pos, neg
}
