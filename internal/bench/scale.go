package bench

import (
	"bytes"
	"fmt"
	"io"
	"text/tabwriter"
)

// ScaleResult is what was measured on a data set of a given size: one row
// of a scale series.
type ScaleResult struct {
	Users int `json:"users"`
	// LoadRate is the users registered and written per second while the
	// data set was loaded.
	LoadRate float64 `json:"load_users_per_second"`
	// Write is the rate of writes at WriteConcurrency, and its p99.
	WriteConcurrency int     `json:"write_concurrency"`
	WriteRate        float64 `json:"write_per_second"`
	WriteP99         float64 `json:"write_p99_ms"`
	// Read is the latency of a lone reader.
	ReadP50 float64 `json:"read_p50_ms"`
	ReadP99 float64 `json:"read_p99_ms"`
	// StoreBytes is the size of the store's files, and LogBytes of the
	// audit log's, after the measurements.
	StoreBytes int64 `json:"store_bytes"`
	LogBytes   int64 `json:"log_bytes"`
	// Entries is the size of the audit log verified, in VerifySeconds.
	Entries       int     `json:"log_entries"`
	VerifySeconds float64 `json:"verify_seconds"`
	Load          float64 `json:"load1,omitempty"`
}

// StorePerUser returns the store's bytes per user.
func (r ScaleResult) StorePerUser() float64 { return float64(r.StoreBytes) / float64(max(r.Users, 1)) }

// VerifyRate returns the entries verified per second.
func (r ScaleResult) VerifyRate() float64 {
	if r.VerifySeconds <= 0 {
		return 0
	}
	return float64(r.Entries) / r.VerifySeconds
}

// WriteScaleTable writes a scale series as an aligned table.
func WriteScaleTable(w io.Writer, rs []ScaleResult) error {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "USERS\tLOADED/S\tWRITE/S\tWRITE P99\tREAD P50\tREAD P99\tSTORE B/USER\tLOG MB\tLOG ENTRIES\tVERIFY\tVERIFIED/S\tLOAD\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f (c=%d)\t%s\t%s\t%s\t%.0f\t%.1f\t%d\t%.2fs\t%.0f\t%s\t\n",
			r.Users, r.LoadRate, r.WriteRate, r.WriteConcurrency, latency(r.WriteP99), latency(r.ReadP50), latency(r.ReadP99),
			r.StorePerUser(), float64(r.LogBytes)/1e6, r.Entries, r.VerifySeconds, r.VerifyRate(), load(r.Load))
	}
	return flushTrimmed(w, tw, &b)
}
