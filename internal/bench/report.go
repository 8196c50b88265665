package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run prints: a table, or with -json this structure.
type Report struct {
	Scenario string   `json:"scenario"`
	Command  string   `json:"command"`
	Machine  Machine  `json:"machine"`
	Mode     string   `json:"server_mode,omitempty"` // subprocess, in-process or url
	Results  []Result `json:"results"`
	// Summary holds the conclusions: ratios to the bare loop, the highest rate that held, …
	Summary []string `json:"summary,omitempty"`
	// Notes say how to read the figures.
	Notes []string `json:"notes,omitempty"`
	// StreamPrefix begins the name of every JetStream stream the cluster scenario made (and
	// deleted at its end).
	StreamPrefix string `json:"stream_prefix,omitempty"`

	columns []column
	// sections, if set, print the results as several tables: each the rows of its Section.
	sections []section
}

// section is one table of a report whose results fall into sections.
type section struct {
	name    string // Result.Section
	title   string
	columns []column
}

// Result is one row: one server (or consumer) in one phase of the run. Fields that do not
// apply to the scenario are zero and left out of the JSON.
type Result struct {
	Server  string  `json:"server"`
	Phase   string  `json:"phase,omitempty"`
	Clients int     `json:"clients,omitempty"`
	Rate    float64 `json:"rate,omitempty"` // messages/s offered

	Published float64 `json:"published_per_s,omitempty"`
	Delivered float64 `json:"delivered_per_s,omitempty"`
	P50ms     float64 `json:"p50_ms,omitempty"`
	P99ms     float64 `json:"p99_ms,omitempty"`
	MaxMs     float64 `json:"max_ms,omitempty"`
	Dropped   int64   `json:"dropped"`
	// Disconnected counts clients whose stream ended during the run (slow consumers among them).
	Disconnected int64 `json:"disconnected,omitempty"`

	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
	// CPUPercent is the server's CPU over the measurement, 100 being one core.
	CPUPercent        float64 `json:"cpu_percent,omitempty"`
	CPUPerDeliveryUs  float64 `json:"cpu_us_per_delivery,omitempty"`
	DeliveriesPerCPUs float64 `json:"deliveries_per_cpu_second,omitempty"`
	// ClientCPUPercent is the bench process's own CPU (clients and publisher) over the
	// measurement, 100 being one core: what the load generator took from the server.
	ClientCPUPercent float64 `json:"client_cpu_percent,omitempty"`
	// ClientCPUPerDeliveryUs is that CPU per delivery: beside CPUPerDeliveryUs, it says whether
	// the load generator costs less than the server it drives, that is whether a rate is the
	// server's limit or the client's.
	ClientCPUPerDeliveryUs float64 `json:"client_cpu_us_per_delivery,omitempty"`
	RSSBytes               int64   `json:"rss_bytes,omitempty"`
	// SchedP50ms and SchedP99ms are quantiles of how long the server's runnable goroutines
	// waited for a processor during the measurement (runtime/metrics /sched/latencies:seconds).
	SchedP50ms      float64 `json:"server_sched_p50_ms,omitempty"`
	SchedP99ms      float64 `json:"server_sched_p99_ms,omitempty"`
	RSSPerConnBytes float64 `json:"rss_per_connection_bytes,omitempty"`

	GoroutinesBefore float64 `json:"goroutines_before,omitempty"`
	GoroutinesAfter  float64 `json:"goroutines_after,omitempty"`
	HeapBefore       float64 `json:"heap_inuse_bytes_before,omitempty"`
	HeapAfter        float64 `json:"heap_inuse_bytes_after,omitempty"`
	// LiveHeapAfter is the heap still reachable after a forced GC (churn).
	LiveHeapAfter    float64 `json:"heap_live_bytes_after,omitempty"`
	HeapPerConnBytes float64 `json:"heap_per_connection_bytes,omitempty"`
	Cycles           int     `json:"cycles,omitempty"`
	CyclesPerSec     float64 `json:"cycles_per_s,omitempty"`

	Subscriptions int     `json:"subscriptions,omitempty"`
	Predicates    string  `json:"predicates,omitempty"`
	NsPerMessage  float64 `json:"ns_per_message,omitempty"`
	// CPUNsPerMessage is NsPerMessage in the process's CPU time rather than wall time.
	CPUNsPerMessage float64 `json:"cpu_ns_per_message,omitempty"`
	MatchesPerMsg   float64 `json:"matches_per_message,omitempty"`
	NsPerMatch      float64 `json:"cpu_ns_per_match,omitempty"`
	RoutedMessages  uint64  `json:"routed_messages,omitempty"`
	// AllocsPerMessage counts the whole process's allocations per routed message.
	AllocsPerMessage float64 `json:"allocs_per_message,omitempty"`

	Messages   int     `json:"messages,omitempty"`
	MsgsPerSec float64 `json:"msgs_per_s,omitempty"`
	// RequestsPerSec is the requests a sink's receiver took a second; LagSeconds the most a
	// sink's lag_seconds showed (its lag in messages is Lag).
	RequestsPerSec float64 `json:"requests_per_s,omitempty"`
	LagSeconds     float64 `json:"lag_seconds,omitempty"`

	// Section, Group and the fields below are the cluster scenario's. Section is its stage
	// (hop, append, fanout); Group the servers measured together (alone, 1 node, 3 nodes);
	// Server then names one process of the group, or "all nodes".
	Section string `json:"section,omitempty"`
	Group   string `json:"group,omitempty"`
	// Posters is how many ingest requests the append stage had in flight at once.
	Posters int `json:"posters,omitempty"`
	// CPUPerMessageUs is the process's CPU per message published to the group.
	CPUPerMessageUs float64 `json:"cpu_us_per_message,omitempty"`
	// RoutedPerSec is the messages the ingesting node's router took per second (in a cluster,
	// read back from the log); Lag how many the log held that it had not read at the end.
	RoutedPerSec float64 `json:"routed_per_s,omitempty"`
	Lag          uint64  `json:"lag,omitempty"`
	// CatchUpPerSec is how fast the node routed what it had not yet once the append stopped.
	CatchUpPerSec float64 `json:"catch_up_per_s,omitempty"`
	// NATSCPU* are the JetStream server's CPU over the same measurement.
	NATSCPUSeconds      float64 `json:"nats_cpu_seconds,omitempty"`
	NATSCPUPercent      float64 `json:"nats_cpu_percent,omitempty"`
	NATSCPUPerMessageUs float64 `json:"nats_cpu_us_per_message,omitempty"`

	// head marks a group's first row, which carries what the group shares (drops,
	// disconnections, the bench's own CPU).
	head bool
	// OfBare is this row's throughput as a percentage of the bare reference in the same run.
	OfBare float64 `json:"percent_of_bare,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs       int    `json:"nproc"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model"`
	Memory     string `json:"memory"`
	Go         string `json:"go"`
	Kernel     string `json:"kernel,omitempty"`
	// LoadAvg is /proc/loadavg's 1-minute load when the run began: other work on the machine
	// takes the cores from both the server and the clients.
	LoadAvg string `json:"loadavg,omitempty"`
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				m.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			m.LoadAvg = f[0]
		}
	}
	return m
}

// column is one column of the table.
type column struct {
	head string
	cell func(Result) string
}

func num(f float64) string {
	switch {
	case f == 0:
		return "0"
	case f >= 100:
		return commas(int64(f + 0.5))
	case f >= 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func bytesText(f float64) string {
	switch {
	case f >= 1<<30:
		return fmt.Sprintf("%.2f GiB", f/(1<<30))
	case f >= 1<<20:
		return fmt.Sprintf("%.1f MiB", f/(1<<20))
	case f >= 1<<10:
		return fmt.Sprintf("%.1f KiB", f/(1<<10))
	}
	return fmt.Sprintf("%.0f B", f)
}

func ms(f float64) string { return num(f) }

// The columns of each kind of table.
var (
	colServer    = column{"server", func(r Result) string { return r.Server }}
	colPhase     = column{"phase", func(r Result) string { return r.Phase }}
	colClients   = column{"clients", func(r Result) string { return commas(int64(r.Clients)) }}
	colRate      = column{"offered msg/s", func(r Result) string { return num(r.Rate) }}
	colPublished = column{"published/s", func(r Result) string { return num(r.Published) }}
	colDelivered = column{"delivered/s", func(r Result) string { return num(r.Delivered) }}
	colSched     = column{"sched p50/p99 ms", func(r Result) string {
		if r.SchedP99ms == 0 {
			return "-"
		}
		return strconv.FormatFloat(r.SchedP50ms, 'f', 3, 64) + " / " + ms(r.SchedP99ms)
	}}
	colClientCPU = column{"client CPU", func(r Result) string {
		if r.ClientCPUPercent == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f%%", r.ClientCPUPercent)
	}}
	colClientPer = column{"client µs/deliv", func(r Result) string {
		if r.ClientCPUPerDeliveryUs == 0 {
			return "-"
		}
		return num(r.ClientCPUPerDeliveryUs)
	}}
	colOfBare = column{"% of bare", func(r Result) string {
		if r.OfBare == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f%%", r.OfBare)
	}}
	colP50     = column{"p50 ms", func(r Result) string { return ms(r.P50ms) }}
	colP99     = column{"p99 ms", func(r Result) string { return ms(r.P99ms) }}
	colMax     = column{"max ms", func(r Result) string { return ms(r.MaxMs) }}
	colCPU     = column{"server CPU", func(r Result) string { return fmt.Sprintf("%.1fs %.0f%%", r.CPUSeconds, r.CPUPercent) }}
	colCPUPer  = column{"CPU µs/deliv", func(r Result) string { return num(r.CPUPerDeliveryUs) }}
	colPerCPU  = column{"deliv/CPU-s", func(r Result) string { return num(r.DeliveriesPerCPUs) }}
	colRSS     = column{"server RSS", func(r Result) string { return bytesText(float64(r.RSSBytes)) }}
	colRSSConn = column{"RSS/conn", func(r Result) string {
		if r.RSSPerConnBytes == 0 {
			return ""
		}
		return bytesText(r.RSSPerConnBytes)
	}}
	colDropped = column{"dropped", func(r Result) string { return commas(r.Dropped) }}
	colDisc    = column{"disconn", func(r Result) string { return commas(r.Disconnected) }}
)

var loadColumns = []column{colServer, colPhase, colClients, colRate, colPublished, colDelivered, colOfBare, colP50, colP99, colMax,
	colCPU, colCPUPer, colPerCPU, colSched, colClientCPU, colClientPer, colRSSConn, colDropped, colDisc}

// print writes the report as a table, or as JSON.
func (rep *Report) print(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	m := rep.Machine
	fmt.Fprintf(w, "streamux-bench %s  (%s)\n", rep.Scenario, rep.Command)
	fmt.Fprintf(w, "machine: %d CPUs (GOMAXPROCS %d), %s, %s RAM, %s, Linux %s, load average %s at the start\n",
		m.CPUs, m.GOMAXPROCS, m.CPUModel, m.Memory, m.Go, m.Kernel, m.LoadAvg)
	fmt.Fprintf(w, "server: %s\n\n", rep.Mode)
	if len(rep.sections) == 0 {
		if err := table(w, rep.columns, rep.Results); err != nil {
			return err
		}
	}
	for i, sec := range rep.sections {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, sec.title)
		var rows []Result
		for _, r := range rep.Results {
			if r.Section == sec.name {
				rows = append(rows, r)
			}
		}
		if err := table(w, sec.columns, rows); err != nil {
			return err
		}
	}
	if len(rep.Summary) > 0 {
		fmt.Fprintln(w)
		for _, s := range rep.Summary {
			fmt.Fprintln(w, s)
		}
	}
	if len(rep.Notes) > 0 {
		fmt.Fprintln(w)
		for _, s := range rep.Notes {
			fmt.Fprintln(w, "note:", s)
		}
	}
	return nil
}

// table writes rows under the heads of cols, right-aligned.
func table(w io.Writer, cols []column, rows []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, c := range cols {
		fmt.Fprint(tw, c.head, "\t")
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		for _, c := range cols {
			fmt.Fprint(tw, c.cell(r), "\t")
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// round2 keeps two decimals of a millisecond figure.
func round2(d time.Duration) float64 {
	return float64(d.Microseconds()/10) / 100
}
