package gate

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/tgate-web/tgate/internal/golden"
)

// row is one step of a table in tgate_scheduler_table.json or of a run
// file's "steps".
type row struct {
	Step      *int  `json:"step"`
	I         *int  `json:"i"`
	CurStep   *int  `json:"cur_step"`
	CACache   bool  `json:"ca_cache"`
	CAReuse   bool  `json:"ca_reuse"`
	SACache   bool  `json:"sa_cache"`
	SAReuse   bool  `json:"sa_reuse"`
	KeepShape *bool `json:"keep_shape"`
	CFG       bool  `json:"cfg"`
	Batch     int   `json:"unet_batch_with_cfg"`
	RunBatch  int   `json:"unet_batch"`
}

// expectAction is the action the original's flags imply with a guidance
// batch present.
func expectAction(cache, reuse, keepShape bool) Action {
	switch {
	case cache && !keepShape:
		return CacheMean
	case cache:
		return Cache
	case reuse:
		return Reuse
	}
	return Compute
}

func checkRows(t *testing.T, name string, plans []StepPlan, rows []row) {
	t.Helper()
	if len(plans) != len(rows) {
		t.Fatalf("%s: %d plans, table has %d rows", name, len(plans), len(rows))
	}
	for i, r := range rows {
		p := plans[i]
		keep := r.KeepShape == nil || *r.KeepShape
		wantCross := expectAction(r.CACache, r.CAReuse, keep)
		wantSelf := expectAction(r.SACache, r.SAReuse, keep)
		if p.Cross != wantCross || p.Self != wantSelf || p.CFG != r.CFG {
			t.Errorf("%s step %d: plan %+v, table says cross %v self %v cfg %v", name, i, p, wantCross, wantSelf, r.CFG)
		}
		if r.CurStep != nil && p.CurStep != *r.CurStep {
			t.Errorf("%s step %d: cur_step %d, table %d", name, i, p.CurStep, *r.CurStep)
		}
		batch := r.Batch
		if batch == 0 {
			batch = r.RunBatch
		}
		if got := map[bool]int{true: 2, false: 1}[p.CFG]; batch != 0 && got != batch {
			t.Errorf("%s step %d: batch %d, table %d", name, i, got, batch)
		}
	}
}

func TestPlansMatchSchedulerTable(t *testing.T) {
	var doc struct {
		Tables map[string]struct {
			Steps      int   `json:"num_inference_steps"`
			GateStep   int   `json:"gate_step"`
			SPInterval int   `json:"sp_interval"`
			FIInterval int   `json:"fi_interval"`
			WarmUp     int   `json:"warm_up"`
			Warmup     int   `json:"num_warmup_steps"`
			Rows       []row `json:"rows"`
		} `json:"tables"`
	}
	data, err := os.ReadFile(golden.Dir(t, "golden", "tgate_scheduler_table.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Tables) < 2 {
		t.Fatalf("expected at least 2 tables, got %d", len(doc.Tables))
	}
	for name, tab := range doc.Tables {
		cfg := Config{Mode: V2, GateStep: tab.GateStep, SPInterval: tab.SPInterval, FIInterval: tab.FIInterval, WarmUp: tab.WarmUp}
		loop := Loop{Timesteps: tab.Steps + tab.Warmup, Steps: tab.Steps, Order: 1, CFG: true}
		plans, err := Plans(cfg, loop)
		if err != nil {
			t.Fatal(err)
		}
		checkRows(t, name, plans, tab.Rows)
	}
}

func TestPlansMatchRunFiles(t *testing.T) {
	for _, run := range []string{"ddim_tgate_v2", "ddim_tgate_v2_sareuse"} {
		var doc struct {
			Call struct {
				Steps      int `json:"num_inference_steps"`
				GateStep   int `json:"gate_step"`
				SPInterval int `json:"sp_interval"`
				FIInterval int `json:"fi_interval"`
				WarmUp     int `json:"warm_up"`
			} `json:"call"`
			Scheduler struct {
				Order     int   `json:"order"`
				Timesteps []int `json:"timesteps"`
			} `json:"scheduler"`
			Steps []row `json:"steps"`
		}
		data, err := os.ReadFile(golden.Dir(t, "golden", "runs", run+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		c := doc.Call
		plans, err := Plans(Config{Mode: V2, GateStep: c.GateStep, SPInterval: c.SPInterval, FIInterval: c.FIInterval, WarmUp: c.WarmUp},
			Loop{Timesteps: len(doc.Scheduler.Timesteps), Steps: c.Steps, Order: doc.Scheduler.Order, CFG: true})
		if err != nil {
			t.Fatal(err)
		}
		checkRows(t, run, plans, doc.Steps)
	}
}

// TestPlansPNDMWarmup checks the flag-update rule of tgate/SD.py with a
// scheduler warm-up (PNDM: 10 steps, 11 evaluations, num_warmup_steps 1),
// worked out by hand: evaluation 0 keeps the flags registered before the
// loop (all off) and evaluation i uses cur_step = i−1.
func TestPlansPNDMWarmup(t *testing.T) {
	cfg := Config{Mode: V2, GateStep: 4, SPInterval: 2, FIInterval: 2, WarmUp: 1}
	plans, err := Plans(cfg, Loop{Timesteps: 11, Steps: 10, Order: 1, CFG: true})
	if err != nil {
		t.Fatal(err)
	}
	C, K, M, R := Compute, Cache, CacheMean, Reuse
	want := []StepPlan{
		{true, C, C, -1}, // before the first update
		{true, C, C, 0},  // cur 0 < warm_up
		{true, C, K, 1},  // cur 1 == warm_up
		{true, C, K, 2},  // 2 % 2 == 0
		{true, M, M, 3},  // gate_step−1
		{false, R, K, 4}, // after the gate: 4 % fi_interval == 0
		{false, R, R, 5},
		{false, R, K, 6},
		{false, R, R, 7},
		{false, R, K, 8},
		{false, R, R, 9},
	}
	for i := range want {
		if plans[i] != want[i] {
			t.Errorf("evaluation %d: got %+v, want %+v", i, plans[i], want[i])
		}
	}
}

func TestPlansModes(t *testing.T) {
	loop := Loop{Timesteps: 10, Steps: 10, Order: 1, CFG: true}
	off, err := Plans(Config{Mode: Off, GateStep: 4}, loop)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range off {
		if p.Cross != Compute || p.Self != Compute || !p.CFG {
			t.Errorf("off step %d: %+v", i, p)
		}
	}
	v1, err := Plans(Config{Mode: V1, GateStep: 4, SPInterval: 2, FIInterval: 3, WarmUp: 1}, loop)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range v1 {
		wantCross := Compute
		switch {
		case i == 3:
			wantCross = CacheMean
		case i > 3:
			wantCross = Reuse
		}
		if p.Self != Compute || p.Cross != wantCross || p.CFG != (i < 4) {
			t.Errorf("v1 step %d: %+v", i, p)
		}
	}
	// Without a guidance batch (LCM) the gate step stores the output itself.
	lcm, err := Plans(LCMDefaults(), Loop{Timesteps: 4, Steps: 4, Order: 1})
	if err != nil {
		t.Fatal(err)
	}
	wantLCM := []StepPlan{{false, Cache, Cache, 0}, {false, Reuse, Cache, 1}, {false, Reuse, Cache, 2}, {false, Reuse, Cache, 3}}
	for i := range wantLCM {
		if lcm[i] != wantLCM[i] {
			t.Errorf("lcm step %d: got %+v, want %+v", i, lcm[i], wantLCM[i])
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{Mode: V1, GateStep: 0},
		{Mode: V2, GateStep: 3, SPInterval: 0, FIInterval: 1},
		{Mode: V2, GateStep: 3, SPInterval: 1, FIInterval: 0},
		{Mode: V2, GateStep: 3, SPInterval: 1, FIInterval: 1, WarmUp: -1},
		{Mode: Mode(7), GateStep: 3},
	} {
		if _, err := Plans(c, Loop{Timesteps: 5, Steps: 5, Order: 1}); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if _, err := ParseMode("v3"); err == nil || !strings.Contains(err.Error(), "off, v1, v2") {
		t.Errorf("ParseMode(v3) error %v does not list the valid modes", err)
	}
	for _, s := range []string{"off", "v1", "v2"} {
		m, err := ParseMode(s)
		if err != nil || m.String() != s {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
}
