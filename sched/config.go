package sched

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
)

// Config is a scheduler_config.json as diffusers' ConfigMixin sees it: the
// keys literally present in the file and their values. Keys that were
// absent (or that a saved run lists in "_use_default_values") are not part
// of it, so a scheduler built from it takes its own class defaults for them
// (configuration_utils.py::extract_init_dict). This is what makes
// X.from_config(pipe.scheduler.config) give Euler "linspace" spacing but
// DDIM "leading" for the SD1.5 file, which has no timestep_spacing key.
type Config struct {
	// ClassName is the file's "_class_name" ("PNDMScheduler", ...), or "".
	ClassName string
	// Source names where the config came from, for error messages.
	Source string
	keys   map[string]json.RawMessage
}

// LoadConfig reads and parses a scheduler_config.json file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sched: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("sched: %s: %w", path, err)
	}
	c.Source = path
	return c, nil
}

// ParseConfig parses scheduler config JSON. Python's json module writes the
// non-standard tokens Infinity, -Infinity and NaN (PixArt's file has
// "lambda_min_clipped": -Infinity); they are accepted. If the object has a
// "_use_default_values" list (a config dumped from a live scheduler), the
// keys it names are dropped, as from_config drops them.
func ParseConfig(data []byte) (*Config, error) {
	fixed, err := quoteNonFinite(data)
	if err != nil {
		return nil, err
	}
	var keys map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(fixed))
	if err := dec.Decode(&keys); err != nil {
		return nil, fmt.Errorf("scheduler config: %w", err)
	}
	if keys == nil {
		return nil, fmt.Errorf("scheduler config: not a JSON object")
	}
	c := &Config{keys: keys, Source: "scheduler config"}
	if raw, ok := keys["_use_default_values"]; ok {
		var defaulted []string
		if err := json.Unmarshal(raw, &defaulted); err != nil {
			return nil, fmt.Errorf("scheduler config: _use_default_values: %w", err)
		}
		for _, k := range defaulted {
			delete(keys, k)
		}
		delete(keys, "_use_default_values")
	}
	if raw, ok := keys["_class_name"]; ok {
		if err := json.Unmarshal(raw, &c.ClassName); err != nil {
			return nil, fmt.Errorf("scheduler config: _class_name: %w", err)
		}
	}
	return c, nil
}

// quoteNonFinite rewrites the bare tokens NaN, Infinity and -Infinity that
// appear outside strings as JSON strings, so encoding/json accepts them.
func quoteNonFinite(data []byte) ([]byte, error) {
	var out bytes.Buffer
	inString, escaped := false, false
	for i := 0; i < len(data); i++ {
		ch := data[i]
		if inString {
			out.WriteByte(ch)
			switch {
			case escaped:
				escaped = false
			case ch == '\\':
				escaped = true
			case ch == '"':
				inString = false
			}
			continue
		}
		if ch == '"' {
			inString = true
			out.WriteByte(ch)
			continue
		}
		matched := false
		for _, tok := range []string{"-Infinity", "Infinity", "NaN"} {
			if bytes.HasPrefix(data[i:], []byte(tok)) {
				out.WriteString(`"` + tok + `"`)
				i += len(tok) - 1
				matched = true
				break
			}
		}
		if !matched {
			out.WriteByte(ch)
		}
	}
	if inString {
		return nil, fmt.Errorf("scheduler config: unterminated string")
	}
	return out.Bytes(), nil
}

// Has reports whether key was present in the config.
func (c *Config) Has(key string) bool {
	if c == nil {
		return false
	}
	_, ok := c.keys[key]
	return ok
}

// Keys returns the keys present, sorted.
func (c *Config) Keys() []string {
	if c == nil {
		return nil
	}
	ks := make([]string, 0, len(c.keys))
	for k := range c.keys {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Set adds or replaces key with value (anything encoding/json can encode),
// as an explicit keyword argument to from_config would. It is how a caller
// forces, for example, "timestep_spacing".
func (c *Config) Set(key string, value any) error {
	b, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("sched: config key %s: %w", key, err)
	}
	if c.keys == nil {
		c.keys = map[string]json.RawMessage{}
	}
	c.keys[key] = b
	return nil
}

// Clone returns an independent copy.
func (c *Config) Clone() *Config {
	if c == nil {
		return &Config{keys: map[string]json.RawMessage{}}
	}
	d := &Config{ClassName: c.ClassName, Source: c.Source, keys: make(map[string]json.RawMessage, len(c.keys))}
	for k, v := range c.keys {
		d.keys[k] = v
	}
	return d
}

// isNull reports whether key is present with the JSON value null.
func (c *Config) isNull(key string) bool {
	raw, ok := c.keys[key]
	return ok && bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// The readers below leave *dst unchanged when the key is absent or null
// (null means "use the default" for every optional diffusers argument).

func (c *Config) readInt(key string, dst *int) error {
	if !c.Has(key) || c.isNull(key) {
		return nil
	}
	var f float64
	if err := json.Unmarshal(c.keys[key], &f); err != nil {
		return c.keyErr(key, "an integer")
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<31 {
		return c.keyErr(key, "an integer")
	}
	*dst = int(f)
	return nil
}

func (c *Config) readFloat(key string, dst *float64) error {
	if !c.Has(key) || c.isNull(key) {
		return nil
	}
	raw := c.keys[key]
	var f float64
	if err := json.Unmarshal(raw, &f); err == nil {
		*dst = f
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		switch strings.ToLower(s) {
		case "-infinity", "-inf":
			*dst = math.Inf(-1)
			return nil
		case "infinity", "inf", "+inf":
			*dst = math.Inf(1)
			return nil
		case "nan":
			*dst = math.NaN()
			return nil
		}
	}
	return c.keyErr(key, "a number")
}

// readOptFloat reads a nullable number: nil when absent or null.
func (c *Config) readOptFloat(key string, dst **float64) error {
	if !c.Has(key) || c.isNull(key) {
		return nil
	}
	var f float64
	if err := c.readFloat(key, &f); err != nil {
		return err
	}
	*dst = &f
	return nil
}

func (c *Config) readBool(key string, dst *bool) error {
	if !c.Has(key) || c.isNull(key) {
		return nil
	}
	if err := json.Unmarshal(c.keys[key], dst); err != nil {
		return c.keyErr(key, "true or false")
	}
	return nil
}

func (c *Config) readString(key string, dst *string) error {
	if !c.Has(key) || c.isNull(key) {
		return nil
	}
	if err := json.Unmarshal(c.keys[key], dst); err != nil {
		return c.keyErr(key, "a string")
	}
	return nil
}

func (c *Config) readFloats(key string, dst *[]float64) error {
	if !c.Has(key) || c.isNull(key) {
		return nil
	}
	if err := json.Unmarshal(c.keys[key], dst); err != nil {
		return c.keyErr(key, "a list of numbers")
	}
	return nil
}

func (c *Config) keyErr(key, want string) error {
	return fmt.Errorf("sched: %s: %q must be %s, got %s", c.Source, key, want, string(c.keys[key]))
}
