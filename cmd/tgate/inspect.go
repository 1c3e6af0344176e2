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
	register("inspect", "list the tensors of a .safetensors file, shard index, component or model folder", runInspect)
}

func runInspect(args []string) int { return inspect(args, os.Stdout, os.Stderr) }

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
	fl.SetOutput(stderr)
	variant := fl.String("variant", "", "weight variant to open in a folder, e.g. fp16 (default: plain, then fp16)")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: tgate inspect [-variant V] PATH\n\nPATH is a .safetensors file, a *.safetensors.index*.json, a component folder (unet/) or a model folder (model_index.json).")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 1 {
		fl.Usage()
		return 2
	}
	path := fl.Arg(0)
	variants := inspectVariants
	if *variant != "" {
		variants = []string{*variant}
	}
	var err error
	st, statErr := os.Stat(path)
	switch {
	case statErr != nil:
		err = statErr
	case st.IsDir() && fileExists(filepath.Join(path, "model_index.json")):
		// Buffered so that a failing component leaves no partial table.
		var b bytes.Buffer
		if err = inspectModel(&b, path, variants); err == nil {
			_, err = b.WriteTo(stdout)
		}
	case st.IsDir():
		var ck *safetensors.Checkpoint
		if ck, _, err = openComponent(path, variants); err == nil {
			defer ck.Close()
			err = listTensors(stdout, ck)
		}
	default:
		var ck *safetensors.Checkpoint
		if ck, err = safetensors.OpenPath(path); err == nil {
			defer ck.Close()
			err = listTensors(stdout, ck)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "tgate inspect: %s: %s\n", path, problem(err, path))
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
// variant in turn; it reports which variant was found.
func openComponent(dir string, variants []string) (*safetensors.Checkpoint, string, error) {
	var first error
	for _, v := range variants {
		ck, err := safetensors.OpenDir(dir, v)
		if err == nil {
			return ck, v, nil
		}
		if !errors.Is(err, safetensors.ErrNoWeights) {
			return nil, v, err
		}
		if first == nil {
			first = err
		}
	}
	return nil, "", first
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
	sort.Strings(d)
	return strings.Join(d, ",")
}

// listTensors prints one line per tensor in file order (shard by shard)
// and a total line.
func listTensors(w io.Writer, ck *safetensors.Checkpoint) error {
	sharded := len(ck.Files()) > 1
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
	_, err := fmt.Fprintf(w, "total: %d tensors, %d params, %d bytes (%s), %d files\n",
		s.tensors, s.params, s.bytes, s.dtypeList(), len(ck.Files()))
	return err
}

// inspectModel prints one line per component of a diffusers model folder
// (model_index.json: component → [library, class]; [null, null] means
// absent and is skipped).
func inspectModel(w io.Writer, dir string, variants []string) error {
	data, err := os.ReadFile(filepath.Join(dir, "model_index.json"))
	if err != nil {
		return err
	}
	var index map[string]json.RawMessage
	if err := json.Unmarshal(data, &index); err != nil {
		return fmt.Errorf("model_index.json: %v", err)
	}
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
		ck, v, err := openComponent(sub, variants)
		if errors.Is(err, safetensors.ErrNoWeights) {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t(no weights)\n", name, class)
			continue
		}
		if err != nil {
			return err
		}
		s := summarize(ck)
		where := filepath.Base(ck.Files()[0].Name())
		if len(ck.Files()) > 1 {
			where = fmt.Sprintf("%d shards", len(ck.Files()))
		}
		if v != "" {
			where += " (" + v + ")"
		}
		ck.Close()
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%s\n", name, class, s.tensors, s.params, s.dtypeList(), s.bytes, where)
		total.tensors += s.tensors
		total.params += s.params
		total.bytes += s.bytes
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "total: %d tensors, %d params, %d bytes\n", total.tensors, total.params, total.bytes)
	return err
}
