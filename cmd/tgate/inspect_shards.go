package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tgate-web/tgate/safetensors"
)

// missingShard is a shard file that a shard index names but its folder
// lacks.
type missingShard struct {
	path    string // where the index says the shard is
	tensors int    // how many tensors the index places in it
}

func (m missingShard) String() string {
	return fmt.Sprintf("shard %s named in weight_map does not exist (%s not listed)", m.path, plural(m.tensors, "tensor"))
}

// plural writes "1 shard", "2 shards".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// openIndex opens a local shard index and every shard it names that
// exists, checked as safetensors.OpenIndex checks them. It returns the
// shards that do not exist; the checkpoint is nil when none exists. An
// index that does not parse, or whose shards are all there, is opened by
// safetensors.OpenIndex itself.
func openIndex(path string) (*safetensors.Checkpoint, []missingShard, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	ix, err := safetensors.ParseIndex(data)
	if err != nil {
		ck, err := safetensors.OpenIndex(path)
		return ck, nil, err
	}
	dir := filepath.Dir(path)
	absent := map[string]bool{}
	for _, shard := range ix.Shards() {
		if _, err := os.Stat(filepath.Join(dir, shard)); os.IsNotExist(err) {
			absent[shard] = true
		}
	}
	if len(absent) == 0 {
		ck, err := safetensors.OpenIndex(path)
		return ck, nil, err
	}
	counts := map[string]int{}
	present := map[string]string{}
	for name, shard := range ix.WeightMap {
		if absent[shard] {
			counts[shard]++
		} else {
			present[name] = shard
		}
	}
	var missing []missingShard
	for _, shard := range ix.Shards() {
		if absent[shard] {
			missing = append(missing, missingShard{path: filepath.Join(dir, shard), tensors: counts[shard]})
		}
	}
	if len(present) == 0 {
		return nil, missing, nil
	}
	sub, err := json.Marshal(map[string]any{"weight_map": present})
	if err != nil {
		return nil, nil, err
	}
	ck, err := safetensors.LoadIndex(path, sub, func(name string) (safetensors.RangeReader, error) {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		r, err := safetensors.FromOSFile(f)
		if err != nil {
			f.Close()
		}
		return r, err
	})
	return ck, missing, err
}
