package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run.
type Report struct {
	Environment       Environment `json:"environment"`
	Workload          string      `json:"workload"`
	Heights           int         `json:"heights"`
	Warmup            int         `json:"warmup_heights"`
	RequestsPerHeight int         `json:"requests_per_height"`
	Results           []Result    `json:"results"`
	Ratios            []Ratio     `json:"ratios,omitempty"`
	Stack             *StackInfo  `json:"stack,omitempty"`
	Footprint         *Footprint  `json:"footprint,omitempty"`
	Targets           []Target    `json:"targets,omitempty"`
	// EtcdTxn, with (e), is the raw etcd round trip on (e)'s cluster.
	EtcdTxn *EtcdTxn `json:"etcd_txn,omitempty"`
	// AnchorGoal, with (c) and (e), is the goal for what the anchor costs;
	// it is also among Targets.
	AnchorGoal *AnchorGoal `json:"anchor_goal,omitempty"`
}

// Result is one configuration's latencies, as the node measured them
// (request written to response read).
type Result struct {
	Config         string             `json:"config"` // a to e
	ID             string             `json:"id"`
	Name           string             `json:"name"`
	Durability     string             `json:"durability"`
	Latency        Summary            `json:"latency"`
	ByType         map[string]Summary `json:"by_type"`
	RequestsPerSec float64            `json:"requests_per_second"`
	// Persisted is the height/round/step read back from the state file
	// after the run: the last precommit signed.
	Persisted string `json:"persisted"`
}

// Ratio compares a configuration with the baseline (a) from the same run.
type Ratio struct {
	Name string  `json:"name"` // "(b)/(a)"
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// StackInfo is what configuration (c) measures besides latency.
type StackInfo struct {
	EnclavePID          int     `json:"enclave_pid,omitempty"`
	EnclaveBinary       string  `json:"enclave_binary"`
	EnclavePeakRSSBytes int64   `json:"enclave_peak_rss_bytes"`      // VmHWM at the end of the run
	EnclaveRSSBytes     int64   `json:"enclave_rss_bytes"`           // VmRSS at the end of the run
	MemoryError         string  `json:"memory_error,omitempty"`      // why the RSS could not be read
	EnclaveStartedMs    float64 `json:"enclave_started_ms"`          // local start → enclave process spawned
	ConfiguredMs        float64 `json:"configured_ms"`               // → enclave configured (key unsealed via KMS, state loaded)
	ConnectedMs         float64 `json:"connected_ms"`                // → node saw the signer connect and got its public key
	FirstSignatureMs    float64 `json:"start_to_first_signature_ms"` // → first proposal signed, at the node
}

// EtcdTxn is the raw etcd transaction round trip measured alongside (e):
// not a signer, the floor of what committing a decision to etcd costs.
type EtcdTxn struct {
	ID          string  `json:"id"` // "etcd-txn"
	Description string  `json:"description"`
	ValueBytes  int     `json:"value_bytes"`
	Latency     Summary `json:"latency"`
	PerSec      float64 `json:"transactions_per_second"`
}

// AnchorGoal: the anchor adds to the unanchored stack's p50 at most
// anchorGoalFactor raw etcd round trips.
type AnchorGoal struct {
	AnchoredP50   float64 `json:"anchored_p50_ms"`   // (e)
	UnanchoredP50 float64 `json:"unanchored_p50_ms"` // (c)
	EtcdTxnP50    float64 `json:"etcd_txn_p50_ms"`
	Factor        float64 `json:"factor"`
	LimitMs       float64 `json:"limit_ms"` // UnanchoredP50 + Factor × EtcdTxnP50
	Met           bool    `json:"met"`
}

// Target is a goal checked against this run: a latency, start-up or
// footprint target, or the AnchorGoal.
type Target struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Limit float64 `json:"limit"`
	Unit  string  `json:"unit,omitempty"`
	Met   bool    `json:"met"`
}

const workload = "per height: SignProposal, SignVote(prevote), SignVote(precommit with a 32-byte vote extension, extension signature requested); one request at a time over a unix socket; node side = CometBFT SignerListenerEndpoint + SignerClient; the node side, (a), (b) and the helper of (c) run in the bench process, the enclave of (c) as its child process"

func newReport(env Environment, o Options, subjects []*subject, fp *Footprint) *Report {
	r := &Report{Environment: env, Workload: workload, Heights: o.Heights, Warmup: o.Warmup, RequestsPerHeight: RequestsPerHeight, Footprint: fp}
	byConfig := map[Config]Result{}
	for _, s := range subjects {
		res := s.result()
		byConfig[s.cfg] = res
		r.Results = append(r.Results, res)
		if s.cfg == Stack {
			r.Stack = s.stack.info()
		}
		if s.txn != nil {
			r.EtcdTxn = s.txn.result()
		}
	}
	base, ok := byConfig[FilePV]
	for _, c := range []Config{Core, Stack} {
		if res, has := byConfig[c]; ok && has {
			r.Ratios = append(r.Ratios, compare(res, base))
		}
	}
	// What high availability and the anchor add: etcd round trips,
	// against the same stack without them.
	st, hasStack := byConfig[Stack]
	for _, c := range []Config{HA, Anchor} {
		if res, has := byConfig[c]; has && hasStack {
			r.Ratios = append(r.Ratios, compare(res, st))
		}
	}
	if res, has := byConfig[Anchor]; has && hasStack && r.EtcdTxn != nil {
		r.AnchorGoal = newAnchorGoal(res, st, r.EtcdTxn)
	}
	r.Targets = targets(r)
	return r
}

// anchorGoalFactor is how many raw etcd round trips the anchor may add to
// the unanchored p50: one, plus room for what the enclave's path has and
// the raw one does not (the relay, TLS in the enclave, the enclave's client).
const anchorGoalFactor = 1.2

// anchorGoalName names AnchorGoal among the targets.
var anchorGoalName = fmt.Sprintf("(e) p50 ≤ (c) p50 + %.1f × %s p50", anchorGoalFactor, etcdTxnID)

func newAnchorGoal(anchored, unanchored Result, txn *EtcdTxn) *AnchorGoal {
	g := &AnchorGoal{AnchoredP50: anchored.Latency.P50, UnanchoredP50: unanchored.Latency.P50, EtcdTxnP50: txn.Latency.P50, Factor: anchorGoalFactor}
	g.LimitMs = g.UnanchoredP50 + g.Factor*g.EtcdTxnP50
	g.Met = g.AnchoredP50 <= g.LimitMs
	return g
}

func (s *subject) result() Result {
	var all []time.Duration
	by := map[string]Summary{}
	for i, l := range s.lat {
		all = append(all, l...)
		by[kinds[i]] = Summarize(l)
	}
	return Result{
		Config: s.cfg.Letter(), ID: s.cfg.ID(), Name: s.cfg.Name(), Durability: s.cfg.Durability(),
		Latency: Summarize(all), ByType: by, RequestsPerSec: float64(len(all)) / s.wall.Seconds(),
		Persisted: s.persisted.String(),
	}
}

func compare(res, base Result) Ratio {
	a, b := res.Latency, base.Latency
	return Ratio{Name: "(" + res.Config + ")/(" + base.Config + ")",
		P50: ratio(a.P50, b.P50), P90: ratio(a.P90, b.P90), P99: ratio(a.P99, b.P99), Max: ratio(a.Max, b.Max)}
}

func (st *stackRun) info() *StackInfo {
	i := &StackInfo{
		EnclavePID: int(st.pid.Load()), EnclaveBinary: st.bin,
		EnclavePeakRSSBytes: st.peakRSS, EnclaveRSSBytes: st.rss,
		EnclaveStartedMs: ms(time.Duration(st.enclaveStarted.Load())), ConfiguredMs: ms(time.Duration(st.configured.Load())),
		ConnectedMs: ms(st.connected), FirstSignatureMs: ms(st.firstSignature),
	}
	if st.memErr != nil {
		i.MemoryError = st.memErr.Error()
	}
	return i
}

// The latency and start-up targets, and the enclave's memory.
const (
	targetCoreP50     = 0.8
	targetStackP50    = 1.0
	targetStackP99    = 1.3
	targetEnclaveRSS  = 48 // MiB
	targetFirstSignMs = 2000
)

func targets(r *Report) []Target {
	var t []Target
	for _, q := range r.Ratios {
		switch q.Name {
		case "(b)/(a)":
			t = append(t, limit(q.Name+" p50", q.P50, targetCoreP50, ""))
		case "(c)/(a)":
			t = append(t, limit(q.Name+" p50", q.P50, targetStackP50, ""), limit(q.Name+" p99", q.P99, targetStackP99, ""))
		}
	}
	if s := r.Stack; s != nil {
		if s.MemoryError == "" {
			t = append(t, limit("enclave peak RSS", mib(s.EnclavePeakRSSBytes), targetEnclaveRSS, "MiB"))
		}
		t = append(t, limit("local start → first signature", s.FirstSignatureMs, targetFirstSignMs, "ms"))
	}
	t = append(t, footprintTargets(r.Footprint)...)
	if g := r.AnchorGoal; g != nil {
		t = append(t, limit(anchorGoalName, g.AnchoredP50, g.LimitMs, "ms"))
	}
	return t
}

func limit(name string, v, max float64, unit string) Target {
	return Target{Name: name, Value: v, Limit: max, Unit: unit, Met: v <= max}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// Missed returns the targets this run did not meet.
func (r *Report) Missed() []Target {
	var m []Target
	for _, t := range r.Targets {
		if !t.Met {
			m = append(m, t)
		}
	}
	return m
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	r.writeEnvironment(&b)
	r.writeResults(&b)
	r.writeRatios(&b)
	r.writeStack(&b)
	r.writeFootprint(&b)
	r.writeTargets(&b)
	r.writeAnchor(&b)
	r.writeDurability(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) writeEnvironment(b *strings.Builder) {
	e := r.Environment
	fmt.Fprintf(b, "environment: %d CPUs", e.CPUs)
	if e.CPUModel != "" {
		fmt.Fprintf(b, " (%s)", e.CPUModel)
	}
	fmt.Fprintf(b, ", %s %s/%s", e.GoVersion, e.GOOS, e.GOARCH)
	if e.Kernel != "" {
		fmt.Fprintf(b, ", Linux %s", e.Kernel)
	}
	if e.LoadAvgStart != "" {
		fmt.Fprintf(b, "; load average %s at the start, %s at the end", e.LoadAvgStart, e.LoadAvgEnd)
	}
	fmt.Fprintf(b, "\nstate files: %s on %s", e.Dir, e.FS)
	if e.Device != "" {
		fmt.Fprintf(b, " (%s, %s)", e.Device, e.MountOptions)
	}
	fmt.Fprintf(b, "\nnode side: CometBFT %s SignerListenerEndpoint + SignerClient on a unix socket that the signer dials;\n"+
		"           it, (a), (b) and the helper of (c) run in this process, the enclave of (c) as a child process\n", e.CometBFT)
	fmt.Fprintf(b, "workload: %d heights × %d requests (proposal, prevote, precommit + %d-byte vote extension, signed) after %d warm-up heights,\n"+
		"          one request at a time; configurations take turns every few heights; every signature verified\n\n",
		r.Heights, r.RequestsPerHeight, ExtensionSize, r.Warmup)
}

func (r *Report) writeResults(b *strings.Builder) {
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "latency (ms)\tp50\tp90\tp99\tmax\treq/s\tp50 proposal\tprevote\tprecommit\t")
	for _, res := range r.Results {
		l := res.Latency
		fmt.Fprintf(tw, "(%s) %s\t%.3f\t%.3f\t%.3f\t%.3f\t%.0f\t%.3f\t%.3f\t%.3f\t\n", res.Config, res.ID, l.P50, l.P90, l.P99, l.Max, res.RequestsPerSec,
			res.ByType["proposal"].P50, res.ByType["prevote"].P50, res.ByType["precommit"].P50)
	}
	if t := r.EtcdTxn; t != nil {
		l := t.Latency
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.0f\t-\t-\t-\t\n", t.ID, l.P50, l.P90, l.P99, l.Max, t.PerSec)
	}
	tw.Flush()
	b.WriteString("\n")
}

func (r *Report) writeRatios(b *strings.Builder) {
	if len(r.Ratios) == 0 {
		return
	}
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ratios, same run\tp50\tp90\tp99\tmax\t")
	for _, q := range r.Ratios {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%.2f\t\n", q.Name, q.P50, q.P90, q.P99, q.Max)
	}
	tw.Flush()
	b.WriteString("\n")
}

func (r *Report) writeStack(b *strings.Builder) {
	s := r.Stack
	if s == nil {
		return
	}
	fmt.Fprintf(b, "local start → first signature: %.0f ms (enclave spawned %.0f ms, configured %.0f ms, node connected %.0f ms)\n\n",
		s.FirstSignatureMs, s.EnclaveStartedMs, s.ConfiguredMs, s.ConnectedMs)
}

// writeFootprint describes the enclave program: its packages and binary
// size, and the memory of its process in (c).
func (r *Report) writeFootprint(b *strings.Builder) {
	f, s := r.Footprint, r.Stack
	if f == nil && s == nil {
		return
	}
	b.WriteString("enclave footprint")
	switch {
	case f == nil:
		b.WriteString(":\n")
	case f.NotMeasured != "":
		fmt.Fprintf(b, ": packages and binary not measured: %s\n", f.NotMeasured)
	default:
		fmt.Fprintf(b, ", %s, built as deploy/enclave/Dockerfile builds it (1 MB = 10^6 bytes):\n", f.Platform)
		fmt.Fprintf(b, "  packages linked, standard library included: %d\n", f.EnclavePackages)
		fmt.Fprintf(b, "  binary: %.2f MB\n", mb(f.EnclaveBinaryBytes))
	}
	switch {
	case s == nil:
		b.WriteString("  process: memory not measured: (c) did not run\n")
	case s.MemoryError != "":
		fmt.Fprintf(b, "  process: memory not measured: %s\n", s.MemoryError)
	default:
		fmt.Fprintf(b, "  process (pid %d): peak RSS (VmHWM) %.1f MiB, RSS at the end %.1f MiB\n", s.EnclavePID, mib(s.EnclavePeakRSSBytes), mib(s.EnclaveRSSBytes))
	}
	if f != nil && f.NotMeasured == "" {
		fmt.Fprintf(b, "tmkms-nitro-helper: %d packages linked\n", f.HelperPackages)
	}
	b.WriteString("\n")
}

func (r *Report) writeTargets(b *strings.Builder) {
	// The anchor goal has a section of its own (writeAnchor).
	var own []Target
	for _, t := range r.Targets {
		if t.Name != anchorGoalName {
			own = append(own, t)
		}
	}
	if len(own) == 0 {
		return
	}
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "targets\tthis run\ttarget\t")
	for _, t := range own {
		fmt.Fprintf(tw, "%s\t%s\t≤ %s\t%s\n", t.Name, num(t.Value, t.Unit), num(t.Limit, t.Unit), verdict(t.Met))
	}
	tw.Flush()
	b.WriteString("\n")
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}

// writeAnchor describes the raw etcd round trip and states the anchor goal.
func (r *Report) writeAnchor(b *strings.Builder) {
	t := r.EtcdTxn
	if t == nil {
		return
	}
	fmt.Fprintf(b, "%s: %d %s; %d-byte values\n", t.ID, t.Latency.Count, t.Description, t.ValueBytes)
	g := r.AnchorGoal
	if g == nil {
		b.WriteString("anchor goal not checked: it compares (e) with (c), which did not run\n\n")
		return
	}
	fmt.Fprintf(b, "anchor goal: anchored p50 ≤ unanchored p50 + %.1f × raw etcd transaction p50\n", g.Factor)
	fmt.Fprintf(b, "  (e) p50 %.3f ms ≤ (c) p50 %.3f ms + %.1f × %s p50 %.3f ms = %.3f ms: %s\n\n",
		g.AnchoredP50, g.UnanchoredP50, g.Factor, t.ID, g.EtcdTxnP50, g.LimitMs, verdict(g.Met))
}

func num(v float64, unit string) string {
	switch unit {
	case "":
		return fmt.Sprintf("%.2f", v)
	case "ms":
		return fmt.Sprintf("%.0f ms", v)
	case "packages":
		return fmt.Sprintf("%.0f packages", v)
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

func (r *Report) writeDurability(b *strings.Builder) {
	b.WriteString("how each configuration persists its state before the signature reaches the node:\n")
	for _, res := range r.Results {
		fmt.Fprintf(b, "  (%s) %s: %s;\n      read back from its state file after the run: %s\n", res.Config, res.Name, res.Durability, res.Persisted)
	}
}
