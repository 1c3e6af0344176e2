// Package tokenizer turns prompts into the token ids text encoders take.
//
// CLIP is the byte-level BPE tokenizer of CLIP text encoders (SD 1.x, SD 2.x,
// SDXL's two encoders). It computes exactly what transformers' slow
// CLIPTokenizer computes as the diffusers pipelines call it
// (tokenization_clip.py and tokenization_utils.py, transformers 4.44): the
// same special-token resolution from the tokenizer folder, the same text
// cleaning (by default the path taken when ftfy is not installed), the same
// pre-tokenization regex, byte-to-unicode mapping and merge order, and the
// same truncation and padding to model_max_length.
//
// A tokenizer folder (vocab.json, merges.txt, tokenizer_config.json,
// special_tokens_map.json) is read with LoadCLIP, or from bytes with
// NewCLIP; openai/CLIP's bpe_simple_vocab_16e6.txt.gz gives the same
// vocabulary.
package tokenizer
