package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/custos/custos/internal/flow"
	"github.com/custos/custos/internal/safefile"
)

// The commands that work on a server's declared flows.

const (
	flowUse        = "custos flow list|export|samples ..."
	flowListUse    = "custos flow list --server URL --token TOKEN|--token-file FILE"
	flowExportUse  = "custos flow export --server URL --token TOKEN|--token-file FILE --name NAME [--cursor-file FILE] [--limit N] [--out FILE]"
	flowSamplesUse = "custos flow samples --server URL --token TOKEN|--token-file FILE --name NAME [--after INDEX]"
)

func (e *env) flow(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "list":
			return e.flowList(ctx, args[1:])
		case "export":
			return e.flowExport(ctx, args[1:])
		case "samples":
			return e.flowSamples(ctx, args[1:])
		}
	}
	fmt.Fprintf(e.stderr, "Usage: %s\n", flowUse)
	return errUsage
}

func (e *env) flowList(ctx context.Context, args []string) error {
	fs := e.flags("flow list", flowListUse+"\n\nExample:\n    custos flow list --server http://127.0.0.1:8080 --token $MONITOR")
	af := newAPIFlags(fs)
	a, err := connect(fs, af, args, nil)
	if err != nil {
		return err
	}
	var list struct {
		Flows []flow.Flow `json:"flows"`
	}
	if err := a.do(ctx, "GET", "/v1/flows", nil, &list); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tRECIPIENT\tTO\tCOLLECTION\tFIELDS\tRATE/S\tSAMPLED")
	for _, f := range list.Flows {
		var fields []string
		for _, n := range f.Exported() {
			fields = append(fields, n+":"+string(f.Fields[n]))
		}
		rate := 0.0
		if f.SampleRate != nil {
			rate = *f.SampleRate
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%g\t%g\n", f.Name, f.Recipient, f.Jurisdiction, f.Collection, strings.Join(fields, " "), f.Rate, rate)
	}
	return tw.Flush()
}

// flowExport fetches pages of a flow until its end, writing each record
// line and then saving the cursor that follows it, so that an export
// stopped at any point resumes where it stopped. A 429 waits for
// Retry-After.
func (e *env) flowExport(ctx context.Context, args []string) error {
	fs := e.flags("flow export", flowExportUse+"\n\nExample:\n    custos flow export --server http://127.0.0.1:8080 --token $RECIPIENT --name profiles-abroad --cursor-file profiles.cursor >> profiles.ndjson")
	af := newAPIFlags(fs)
	name := fs.String("name", "", "the flow's name (custos flow list)")
	cursorFile := fs.String("cursor-file", "", "where the cursor is kept: read at start if it exists, rewritten after every page")
	limit := fs.Int("limit", 0, "records per page; the server's maximum when 0")
	out := fs.String("out", "", "append the records to this file instead of standard output")
	a, err := connect(fs, af, args, func() bool { return *name == "" || *limit < 0 })
	if err != nil {
		return err
	}
	cursor := ""
	if *cursorFile != "" {
		b, err := safefile.ReadCapped(*cursorFile, flow.MaxCursor+1)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("couldn't read --cursor-file: %w", err)
		}
		cursor = strings.TrimSpace(string(b))
	}
	w := e.stdout
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("couldn't open --out: %w", err)
		}
		defer f.Close()
		w = f
	}
	total, pages := 0, 0
	for {
		p, err := a.exportPage(ctx, *name, cursor, *limit)
		var wait retryAfter
		if errors.As(err, &wait) {
			select {
			case <-time.After(time.Duration(wait)):
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err != nil {
			return err
		}
		if _, err := w.Write(p.records); err != nil {
			return fmt.Errorf("couldn't write records: %w", err)
		}
		cursor = p.end.Cursor
		if *cursorFile != "" {
			if err := safefile.Replace(*cursorFile, []byte(cursor+"\n"), 0o600); err != nil {
				return fmt.Errorf("couldn't save the cursor: %w", err)
			}
		}
		total, pages = total+p.end.Count, pages+1
		if p.end.End {
			break
		}
	}
	fmt.Fprintf(e.stderr, "exported %d records of %s in %d pages; cursor %s\n", total, *name, pages, cursor)
	return nil
}

// retryAfter is a 429's wait.
type retryAfter time.Duration

func (r retryAfter) Error() string { return "rate limited for " + time.Duration(r).String() }

// exportPage is a page of an export as the server sent it: the record
// lines, and its last line.
type exportPage struct {
	records []byte
	end     struct {
		Cursor string `json:"cursor"`
		End    bool   `json:"end"`
		Count  int    `json:"count"`
	}
}

func (a *api) exportPage(ctx context.Context, name, cursor string, limit int) (exportPage, error) {
	var p exportPage
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	resp, data, err := a.send(ctx, "GET", "/v1/flows/"+name+"/export?"+q.Encode(), nil)
	if err != nil {
		return p, err
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		s, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return p, retryAfter(time.Duration(max(s, 1)) * time.Second)
	}
	if resp.StatusCode != http.StatusOK {
		return p, problemError(resp.StatusCode, data)
	}
	// The last line is the page's end; every line before it a record.
	data = bytes.TrimRight(data, "\n")
	i := bytes.LastIndexByte(data, '\n')
	if err := json.Unmarshal(data[i+1:], &p.end); err != nil || p.end.Cursor == "" && !p.end.End {
		return p, errors.New("the server's answer does not end with a cursor line: is it a custos server?")
	}
	if i >= 0 {
		p.records = append(data[:i:i], '\n')
	}
	return p, nil
}

func (e *env) flowSamples(ctx context.Context, args []string) error {
	fs := e.flags("flow samples", flowSamplesUse+"\n\nExample:\n    custos flow samples --server http://127.0.0.1:8080 --token $MONITOR --name profiles-abroad")
	af := newAPIFlags(fs)
	name := fs.String("name", "", "the flow's name (custos flow list)")
	after := fs.Uint64("after", 0, "only samples whose audit index is greater")
	a, err := connect(fs, af, args, func() bool { return *name == "" })
	if err != nil {
		return err
	}
	var list struct {
		Samples []flow.Sample `json:"samples"`
	}
	path := "/v1/flows/" + *name + "/samples"
	if *after > 0 {
		path += "?after=" + strconv.FormatUint(*after, 10)
	}
	if err := a.do(ctx, "GET", path, nil, &list); err != nil {
		return err
	}
	bw := bufio.NewWriter(e.stdout)
	for _, s := range list.Samples {
		fmt.Fprintf(bw, "%d\t%s\t%s\n", s.AuditIndex, s.Time.Format(time.RFC3339), s.Record)
	}
	return bw.Flush()
}
