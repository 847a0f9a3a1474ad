package metrics

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"
)

// The monitoring assets an operator imports (deploy/monitoring) must name
// only metrics this package exports.

const monitoringDir = "../../deploy/monitoring"

// metricPrefix starts the name of every metric of this project (checked
// against the registry by exportedNames).
const metricPrefix = "tmkms_"

// metricRef matches a PromQL identifier that starts with metricPrefix:
// not preceded by an identifier character, so that a label value such as
// job="tmkms" or a longer name such as x_tmkms_y is not taken for one.
var metricRef = regexp.MustCompile(`(?:^|[^a-zA-Z0-9_:])(` + metricPrefix + `[a-zA-Z0-9_:]*)`)

// chainFilter is the matcher that keeps a dashboard query to its row's
// chains.
const chainFilter = `chain_id=~"$chain_id"`

// selectorRef matches a metric name of this project and its label
// matchers, if any (the braces right after the name).
var selectorRef = regexp.MustCompile(`(?:^|[^a-zA-Z0-9_:])(` + metricPrefix + `[a-zA-Z0-9_:]*)(\{[^}]*\})?`)

// unfiltered returns the project's metrics a PromQL expression selects
// without the matcher chainFilter.
func unfiltered(expr string) []string {
	var names []string
	for _, m := range selectorRef.FindAllStringSubmatch(expr, -1) {
		if !strings.Contains(m[2], chainFilter) {
			names = append(names, m[1])
		}
	}
	return names
}

// grouping matches the label lists of PromQL's aggregation and vector
// matching clauses.
var grouping = regexp.MustCompile(`\b(by|without|on|ignoring)\s*\(([^)]*)\)`)

// dropsChain returns the clauses of a PromQL expression that drop the
// chain_id label: a by or on list without it, a without or ignoring list
// with it.
func dropsChain(expr string) []string {
	var clauses []string
	for _, m := range grouping.FindAllStringSubmatch(expr, -1) {
		has := false
		for _, l := range strings.Split(m[2], ",") {
			has = has || strings.TrimSpace(l) == "chain_id"
		}
		if keep := m[1] == "by" || m[1] == "on"; keep != has {
			clauses = append(clauses, m[0])
		}
	}
	return clauses
}

// metricNames returns the project's metric names in a PromQL expression or
// a text that mentions them.
func metricNames(s string) []string {
	var names []string
	for _, m := range metricRef.FindAllStringSubmatch(s, -1) {
		names = append(names, m[1])
	}
	return names
}

// exportedNames returns the series names the helper's registry exposes,
// with every metric created (the HA metrics registered, the chain's series
// created, an HA decider seen): a histogram's _bucket, _sum and _count,
// any other metric's own name. Queries name those. families also holds
// the metric names themselves (a histogram's without a suffix), which
// prose may name.
func exportedNames(t *testing.T) (series, families map[string]bool) {
	t.Helper()
	s := NewSet(Options{})
	m := s.Chain("chain-a")
	m.EnableHA()
	m.HADecider("signer-a")
	gathered, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names, families := map[string]bool{}, map[string]bool{}
	for _, f := range gathered {
		name := f.GetName()
		families[name] = true
		if !strings.HasPrefix(name, metricPrefix) && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("exported metric %s does not start with %s: the assets test would not see references to it", name, metricPrefix)
		}
		for _, series := range f.GetMetric() {
			if strings.HasPrefix(name, metricPrefix) && !slices.ContainsFunc(series.GetLabel(), func(l *dto.LabelPair) bool {
				return l.GetName() == "chain_id" && l.GetValue() == "chain-a"
			}) {
				t.Errorf("%s%v: no chain_id label", name, series.GetLabel())
			}
		}
		switch f.GetType().String() { // client_model's MetricType
		case "HISTOGRAM":
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case "SUMMARY":
			names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
		default:
			names[name] = true
		}
	}
	for _, want := range []string{"tmkms_signatures_total", "tmkms_signing_latency_seconds_bucket", "tmkms_ha_decision_instance"} {
		if !names[want] {
			t.Fatalf("the registry does not export %s; exported: %v", want, slices.Sorted(maps.Keys(names)))
		}
	}
	for n := range names {
		families[n] = true
	}
	return names, families
}

func TestMetricNames(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{`sum by (chain_id) (increase(tmkms_signatures_total[1m])) == 0`, []string{"tmkms_signatures_total"}},
		{`rate(tmkms_signatures_totl{job="tmkms"}[5m])`, []string{"tmkms_signatures_totl"}},
		{`histogram_quantile(0.99, sum by (le) (rate(tmkms_signing_latency_seconds_bucket[5m]))) > 0.25`, []string{"tmkms_signing_latency_seconds_bucket"}},
		{`tmkms_enclave_up and on (job, instance) tmkms_signatures_total{chain_id=~"$chain_id"}`, []string{"tmkms_enclave_up", "tmkms_signatures_total"}},
		{`{__name__="tmkms_last_signed_height"}`, []string{"tmkms_last_signed_height"}},
		{`up{job="tmkms"} == 0 and x_tmkms_y > 0`, nil},
		{"see tmkms_state_persist_failures_total.", []string{"tmkms_state_persist_failures_total"}},
	} {
		if got := metricNames(c.in); !slices.Equal(got, c.want) {
			t.Errorf("metricNames(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestUnfiltered(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{`sum by (type) (rate(tmkms_signatures_total{chain_id=~"$chain_id"}[5m]))`, nil},
		{`sum by (type) (rate(tmkms_signatures_total[5m]))`, []string{"tmkms_signatures_total"}},
		{`tmkms_enclave_up and on (job, instance) tmkms_signatures_total{chain_id=~"$chain_id"}`, []string{"tmkms_enclave_up"}},
		{`tmkms_enclave_up{job="tmkms"} and tmkms_validator_connected{job="tmkms",chain_id=~"$chain_id"}`, []string{"tmkms_enclave_up"}},
		{`tmkms_last_signed_height{chain_id="a"}`, []string{"tmkms_last_signed_height"}},
		{`up{job="tmkms"} == 0`, nil},
	} {
		if got := unfiltered(c.in); !slices.Equal(got, c.want) {
			t.Errorf("unfiltered(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestDropsChain(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{`sum by (chain_id) (increase(tmkms_signatures_total[1m])) == 0`, nil},
		{`sum by (job, instance, le) (rate(x[5m]))`, []string{"by (job, instance, le)"}},
		{`sum by(instance,chain_id,le) (rate(x[5m]))`, nil},
		{`a and on (job, instance) b`, []string{"on (job, instance)"}},
		{`a and on (chain_id) b`, nil},
		{`sum without (type) (x)`, nil},
		{`sum without (instance, chain_id) (x)`, []string{"without (instance, chain_id)"}},
		{`a / ignoring (chain_id) b`, []string{"ignoring (chain_id)"}},
		{`tmkms_enclave_up == 0`, nil},
	} {
		if got := dropsChain(c.in); !slices.Equal(got, c.want) {
			t.Errorf("dropsChain(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestAlertRulesNameExportedMetrics checks every metric that alerts.yml
// names, in expressions and in the annotations an operator reads.
func TestAlertRulesNameExportedMetrics(t *testing.T) {
	exported, metrics := exportedNames(t)
	b, err := os.ReadFile(filepath.Join(monitoringDir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	alerts := map[string]bool{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("group %s: a rule without alert or expr: %+v", g.Name, r)
				continue
			}
			alerts[r.Alert] = true
			names := metricNames(r.Expr)
			if len(names) == 0 && !strings.Contains(r.Expr, "up{") {
				t.Errorf("alert %s: the expression names no %s metric: %s", r.Alert, metricPrefix, r.Expr)
			}
			for _, n := range names {
				if !exported[n] {
					t.Errorf("alert %s: expression names %s, which the helper does not export", r.Alert, n)
				}
			}
			// Every series has a chain: an alert about them names it.
			if len(names) > 0 {
				for _, c := range dropsChain(r.Expr) {
					t.Errorf("alert %s: %q drops the chain_id label: %s", r.Alert, c, r.Expr)
				}
				if !strings.Contains(r.Annotations["summary"], "$labels.chain_id") {
					t.Errorf("alert %s: the summary does not name the chain: %s", r.Alert, r.Annotations["summary"])
				}
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: needs a severity label and summary and description annotations", r.Alert)
			}
			for k, v := range r.Annotations {
				for _, n := range metricNames(v) {
					if !metrics[n] {
						t.Errorf("alert %s: annotation %s names %s, which the helper does not export", r.Alert, k, n)
					}
				}
			}
		}
	}
	// The situations the rules are there for.
	for _, a := range []string{"TmkmsNoSignature", "TmkmsRefusals", "TmkmsDoubleSignRefused", "TmkmsEnclaveNotConfigured",
		"TmkmsClusterUnavailable", "TmkmsEtcdNoQuorum", "TmkmsSigningLatencyHigh", "TmkmsStandbySigned"} {
		if !alerts[a] {
			t.Errorf("alerts.yml has no alert %s", a)
		}
	}
}

// TestDashboard checks dashboard.json's structure (what an import needs: a
// datasource variable, no datasource uid of a particular Grafana, a row
// per chain) and that every metric its queries name is exported.
func TestDashboard(t *testing.T) {
	exported, _ := exportedNames(t)
	b, err := os.ReadFile(filepath.Join(monitoringDir, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	type datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	type target struct {
		Datasource *datasource `json:"datasource"`
		Expr       string      `json:"expr"`
		RefID      string      `json:"refId"`
	}
	type panel struct {
		ID         int         `json:"id"`
		Type       string      `json:"type"`
		Title      string      `json:"title"`
		Repeat     string      `json:"repeat"`
		Collapsed  bool        `json:"collapsed"`
		Datasource *datasource `json:"datasource"`
		GridPos    *struct {
			X, Y, W, H int
		} `json:"gridPos"`
		Targets []target `json:"targets"`
	}
	var dash struct {
		Title         string  `json:"title"`
		UID           string  `json:"uid"`
		SchemaVersion int     `json:"schemaVersion"`
		Inputs        []any   `json:"__inputs"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []struct {
				Name       string      `json:"name"`
				Type       string      `json:"type"`
				Query      any         `json:"query"`
				Definition string      `json:"definition"`
				Datasource *datasource `json:"datasource"`
				Multi      bool        `json:"multi"`
				IncludeAll bool        `json:"includeAll"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || dash.SchemaVersion < 36 {
		t.Errorf("dashboard: title %q, uid %q, schemaVersion %d: want a title, a uid and schemaVersion 36 or later", dash.Title, dash.UID, dash.SchemaVersion)
	}
	if len(dash.Inputs) != 0 {
		t.Errorf("dashboard: __inputs present; the datasource is chosen through the datasource variable instead")
	}
	const dsRef = "${datasource}"
	checkDS := func(where string, ds *datasource) {
		if ds == nil || ds.Type != "prometheus" || ds.UID != dsRef {
			t.Errorf("%s: datasource %+v, want {prometheus %s}", where, ds, dsRef)
		}
	}
	vars := map[string]bool{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = true
		switch v.Name {
		case "datasource":
			if v.Type != "datasource" || v.Query != "prometheus" {
				t.Errorf("variable datasource: type %q query %v, want a prometheus datasource variable", v.Type, v.Query)
			}
		case "chain_id":
			checkDS("variable chain_id", v.Datasource)
			if v.Type != "query" || !v.Multi || !v.IncludeAll || !strings.Contains(v.Definition, "chain_id") {
				t.Errorf("variable chain_id: %+v, want a multi-value query of the chain_id label with All", v)
			}
			for _, n := range metricNames(v.Definition) {
				if !exported[n] {
					t.Errorf("variable chain_id names %s, which the helper does not export", n)
				}
			}
		}
	}
	if !vars["datasource"] || !vars["chain_id"] {
		t.Fatalf("dashboard: variables %v, want datasource and chain_id", vars)
	}

	// A row repeated by chain_id, then its panels, every query of which is
	// filtered by the row's chain.
	if len(dash.Panels) < 2 || dash.Panels[0].Type != "row" || dash.Panels[0].Repeat != "chain_id" || dash.Panels[0].Collapsed {
		t.Fatalf("dashboard: the first panel must be an expanded row repeated by chain_id, followed by its panels")
	}
	ids := map[int]bool{}
	named := map[string]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] || p.ID == 0 {
			t.Errorf("panel %q: id %d missing or used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			if p.ID != dash.Panels[0].ID {
				t.Errorf("panel %q: a second row; the per-chain row must hold every panel", p.Title)
			}
			continue
		}
		checkDS("panel "+p.Title, p.Datasource)
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no query", p.Title)
		}
		for _, q := range p.Targets {
			checkDS("panel "+p.Title+" query "+q.RefID, q.Datasource)
			for _, n := range unfiltered(q.Expr) {
				t.Errorf("panel %q query %s: %s not filtered by the row's chain (%s): %s", p.Title, q.RefID, n, chainFilter, q.Expr)
			}
			names := metricNames(q.Expr)
			if len(names) == 0 {
				t.Errorf("panel %q query %s names no %s metric: %s", p.Title, q.RefID, metricPrefix, q.Expr)
			}
			for _, n := range names {
				if !exported[n] {
					t.Errorf("panel %q query %s names %s, which the helper does not export", p.Title, q.RefID, n)
				}
				named[n] = true
			}
		}
	}
	// What each chain's row shows: signatures by type and by instance,
	// refusals by reason, latency, height.
	for _, n := range []string{"tmkms_signatures_total", "tmkms_refusals_total", "tmkms_signing_latency_seconds_bucket", "tmkms_last_signed_height"} {
		if !named[n] {
			t.Errorf("dashboard: no panel shows %s", n)
		}
	}
}
