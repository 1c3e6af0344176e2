package hub

import (
	"encoding/json"
	"fmt"
)

// ModelIndex is a diffusers pipeline folder's model_index.json: the
// pipeline class and, per component, its [library, class] pair
// ([null, null] for an absent component).
type ModelIndex struct {
	ClassName  string
	Components map[string][2]string
	// Raw is the file's content, for settings other than components.
	Raw []byte
}

// ReadModelIndex reads dir/model_index.json.
func ReadModelIndex(dir string) (*ModelIndex, error) { return ReadModelIndexIn(Dir(dir)) }

// ReadModelIndexIn reads f's model_index.json.
func ReadModelIndexIn(f Folder) (*ModelIndex, error) {
	data, err := f.ReadFile("model_index.json")
	if err != nil {
		return nil, fmt.Errorf("hub: %s is not a diffusers model folder: %w", f, err)
	}
	mi, err := ParseModelIndex(data)
	if err != nil {
		return nil, err
	}
	mi.Raw = data
	return mi, nil
}

// ParseModelIndex parses model_index.json.
func ParseModelIndex(data []byte) (*ModelIndex, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("hub: model_index.json: %w", err)
	}
	mi := &ModelIndex{Components: map[string][2]string{}}
	if c, ok := raw["_class_name"]; ok {
		if err := json.Unmarshal(c, &mi.ClassName); err != nil {
			return nil, fmt.Errorf("hub: model_index.json: _class_name: %w", err)
		}
	}
	for k, v := range raw {
		if len(k) > 0 && k[0] == '_' {
			continue
		}
		var pair []*string
		if json.Unmarshal(v, &pair) != nil || len(pair) != 2 {
			continue // a plain setting such as requires_safety_checker
		}
		if pair[0] == nil || pair[1] == nil {
			continue
		}
		mi.Components[k] = [2]string{*pair[0], *pair[1]}
	}
	return mi, nil
}

// Class returns the class of a component ("" if absent).
func (mi *ModelIndex) Class(component string) string { return mi.Components[component][1] }
