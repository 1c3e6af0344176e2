package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/tgate-web/tgate/safetensors"
)

func init() {
	register("inspect", "list the tensors of a .safetensors file, shard index, component or model folder", inspect)
}

var inspectHelp = help{
	name:  "inspect",
	usage: "[--variant NAME] PATH",
	about: `Lists the tensors of a checkpoint: name, dtype, shape and bytes, then a total. PATH is a
.safetensors file, a shard index (*.safetensors.index*.json), a component folder (unet/) or a
model folder (model_index.json: one line per component). A shard the index names but the folder
lacks is reported on stderr after the tensors of the shards that are there (exit status 1).`,
	values: map[string]string{"variant": "NAME"},
}

// inspectVariants are the weight variants tried in a folder when -variant
// is not given: the plain files first, then diffusers' fp16 variant.
var inspectVariants = []string{"", "fp16"}

// inspect runs `tgate inspect [-variant V] PATH`. PATH may be a
// .safetensors file or a shard index (one line per tensor: name, dtype,
// shape, bytes, plus the shard for an index, then a total line), a
// component folder (its weights listed the same way) or a model folder
// with model_index.json (one line per component: class, tensors,
// parameters, dtypes, bytes). A malformed checkpoint prints one line,
// "tgate inspect: PATH: problem", to stderr and returns 1.
func inspect(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("inspect", flag.ContinueOnError)
	variant := fl.String("variant", "", "weight variant to open in a folder, e.g. fp16 (default: the plain files, then fp16)")
	if code, ok := parseFlags(fl, inspectHelp, args, stdout, stderr); !ok {
		return code
	}
	switch fl.NArg() {
	case 0:
		return usageError(stderr, "inspect", errors.New("no PATH given"))
	case 1:
	default:
		return usageError(stderr, "inspect", fmt.Errorf("one PATH at a time, got %d", fl.NArg()))
	}
	path := fl.Arg(0)
	variants := inspectVariants
	if *variant != "" {
		variants = []string{*variant}
	}
	var err error
	var missing []missingShard
	st, statErr := os.Stat(path)
	switch {
	case statErr != nil:
		err = statErr
	case st.IsDir() && fileExists(filepath.Join(path, "model_index.json")):
		// Buffered so that a failing component leaves no partial table.
		var b bytes.Buffer
		if missing, err = inspectModel(&b, path, variants); err == nil {
			_, err = b.WriteTo(stdout)
		}
	default:
		var ck *safetensors.Checkpoint
		if st.IsDir() {
			ck, _, missing, err = openComponent(path, variants)
		} else {
			ck, missing, err = openPath(path)
		}
		if err == nil && ck != nil {
			defer ck.Close()
			err = listTensors(stdout, ck, missing)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "tgate inspect: %s: %s\n", path, problem(err, path))
		return 1
	}
	for _, m := range missing {
		fmt.Fprintf(stderr, "tgate inspect: %s: %s\n", path, m)
	}
	if len(missing) > 0 {
		return 1
	}
	return 0
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// problem phrases err for one line after "PATH: ", dropping the package
// prefix and a repeated PATH.
func problem(err error, path string) string {
	var msg string
	var fe *safetensors.FormatError
	var pe *fs.PathError
	switch {
	case errors.As(err, &fe) && fe.File != "" && filepath.Clean(fe.File) != filepath.Clean(path):
		msg = fe.File + ": " + fe.Detail()
	case errors.As(err, &fe):
		msg = fe.Detail()
	case errors.As(err, &pe) && filepath.Clean(pe.Path) == filepath.Clean(path):
		msg = pe.Err.Error()
	default:
		msg = strings.TrimPrefix(err.Error(), "safetensors: ")
		msg = strings.TrimPrefix(msg, path+": ")
	}
	return strings.Join(strings.Fields(msg), " ")
}

// openComponent opens the weights of a component folder, trying each
// variant in turn; it reports which variant was found and, for a shard
// index, the shards it names that are missing (see openIndex).
func openComponent(dir string, variants []string) (*safetensors.Checkpoint, string, []missingShard, error) {
	var first error
	for _, v := range variants {
		c, found := safetensors.Locate(func(name string) bool { return fileExists(filepath.Join(dir, name)) }, v)
		if found && c.Sharded {
			ck, missing, err := openIndex(filepath.Join(dir, c.Name))
			return ck, v, missing, err
		}
		ck, err := safetensors.OpenDir(dir, v)
		if err == nil {
			return ck, v, nil, nil
		}
		if !errors.Is(err, safetensors.ErrNoWeights) {
			return nil, v, nil, err
		}
		if first == nil {
			first = err
		}
	}
	return nil, "", nil, first
}

// openPath opens a .safetensors file or a shard index (see openIndex).
func openPath(path string) (*safetensors.Checkpoint, []missingShard, error) {
	if strings.HasSuffix(path, ".json") {
		return openIndex(path)
	}
	ck, err := safetensors.OpenPath(path)
	return ck, nil, err
}

// summary totals a checkpoint's tensors.
type summary struct {
	tensors       int
	params, bytes int64
	dtypes        map[string]bool
}

func summarize(ck *safetensors.Checkpoint) summary {
	s := summary{dtypes: map[string]bool{}}
	for _, n := range ck.Names() {
		info, _ := ck.Info(n)
		s.tensors++
		s.params += info.Numel()
		s.bytes += info.Bytes()
		s.dtypes[info.DType] = true
	}
	return s
}

func (s summary) dtypeList() string {
	var d []string
	for k := range s.dtypes {
		d = append(d, k)
	}
	if len(d) == 0 {
		return "-"
	}
	sort.Strings(d)
	return strings.Join(d, ",")
}

// listTensors prints one line per tensor in file order (shard by shard)
// and a total line, which also counts the missing shards and the tensors
// they would hold.
func listTensors(w io.Writer, ck *safetensors.Checkpoint, missing []missingShard) error {
	sharded := len(ck.Files()) > 1 || len(missing) > 0
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	head := "NAME\tDTYPE\tSHAPE\tBYTES"
	if sharded {
		head += "\tSHARD"
	}
	fmt.Fprintln(tw, head)
	for _, n := range ck.Names() {
		info, _ := ck.Info(n)
		line := fmt.Sprintf("%s\t%s\t%v\t%d", n, info.DType, info.Shape, info.Bytes())
		if sharded {
			line += "\t" + filepath.Base(info.File)
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	s := summarize(ck)
	fmt.Fprintf(w, "total: %d tensors, %d params, %d bytes (%s), %d files",
		s.tensors, s.params, s.bytes, s.dtypeList(), len(ck.Files()))
	if len(missing) > 0 {
		n := 0
		for _, m := range missing {
			n += m.tensors
		}
		fmt.Fprintf(w, "; missing: %s with %s", plural(len(missing), "shard"), plural(n, "tensor"))
	}
	_, err := fmt.Fprintln(w)
	return err
}

// inspectModel prints one line per component of a diffusers model folder
// (model_index.json: component → [library, class]; [null, null] means
// absent and is skipped). A component whose index names missing shards is
// listed with the shards that are there; the missing ones are returned.
func inspectModel(w io.Writer, dir string, variants []string) ([]missingShard, error) {
	data, err := os.ReadFile(filepath.Join(dir, "model_index.json"))
	if err != nil {
		return nil, err
	}
	var index map[string]json.RawMessage
	if err := json.Unmarshal(data, &index); err != nil {
		return nil, fmt.Errorf("model_index.json: %v", err)
	}
	var allMissing []missingShard
	var pipeline string
	if raw, ok := index["_class_name"]; ok {
		json.Unmarshal(raw, &pipeline)
	}
	names := make([]string, 0, len(index))
	for k := range index {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "model %s (%s)\n", dir, pipeline)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tCLASS\tTENSORS\tPARAMS\tDTYPES\tBYTES\tWEIGHTS")
	var total summary
	for _, name := range names {
		if strings.HasPrefix(name, "_") {
			continue
		}
		var spec []*string
		if json.Unmarshal(index[name], &spec) != nil || len(spec) != 2 || spec[1] == nil {
			continue // a flag such as requires_safety_checker, or an absent component
		}
		class := *spec[1]
		sub := filepath.Join(dir, name)
		if st, err := os.Stat(sub); err != nil || !st.IsDir() {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t(folder missing)\n", name, class)
			continue
		}
		ck, v, missing, err := openComponent(sub, variants)
		if errors.Is(err, safetensors.ErrNoWeights) {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t(no weights)\n", name, class)
			continue
		}
		if err != nil {
			return nil, err
		}
		allMissing = append(allMissing, missing...)
		var s summary
		var where string
		switch {
		case len(missing) > 0:
			present := 0
			if ck != nil {
				s, present = summarize(ck), len(ck.Files())
			}
			where = fmt.Sprintf("%d of %d shards (%d missing)", present, present+len(missing), len(missing))
		case len(ck.Files()) > 1:
			s, where = summarize(ck), fmt.Sprintf("%d shards", len(ck.Files()))
		default:
			s, where = summarize(ck), filepath.Base(ck.Files()[0].Name())
		}
		if v != "" {
			where += " (" + v + ")"
		}
		if ck != nil {
			ck.Close()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%s\n", name, class, s.tensors, s.params, s.dtypeList(), s.bytes, where)
		total.tensors += s.tensors
		total.params += s.params
		total.bytes += s.bytes
	}
	if err := tw.Flush(); err != nil {
		return nil, err
	}
	_, err = fmt.Fprintf(w, "total: %d tensors, %d params, %d bytes\n", total.tensors, total.params, total.bytes)
	return allMissing, err
}
