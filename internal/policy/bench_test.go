package policy

import (
	"strconv"
	"testing"

	"github.com/custos/custos"
)

// benchFields are ten fields of the starter schema, of every class it has.
func benchFields(tb testing.TB) []Field {
	var fs []Field
	for _, cn := range [][2]string{
		{"users", "id"}, {"users", "handle"}, {"users", "email"}, {"users", "phone"}, {"users", "country"},
		{"videos", "id"}, {"videos", "creator"}, {"videos", "title"},
		{"watch_events", "watched_ms"}, {"watch_events", "at"},
	} {
		fs = append(fs, mustField(tb, cn[0], cn[1]))
	}
	return fs
}

func reportPerField(b *testing.B, fields int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*fields), "ns/field")
}

func BenchmarkFormsWarm(b *testing.B) {
	e := NewEngine(starterSet(b), testJurisdict)
	fields := benchFields(b)
	ctx := Context{Purpose: "recommend"}
	e.Forms(operatorAbroad, ctx, fields)
	b.ReportAllocs()
	for b.Loop() {
		e.Forms(operatorAbroad, ctx, fields)
	}
	reportPerField(b, len(fields))
}

func BenchmarkFormsWarmParallel(b *testing.B) {
	e := NewEngine(starterSet(b), testJurisdict)
	fields := benchFields(b)
	ctx := Context{Purpose: "recommend"}
	e.Forms(operatorAbroad, ctx, fields)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e.Forms(operatorAbroad, ctx, fields)
		}
	})
	reportPerField(b, len(fields))
}

// BenchmarkFormsCold decides for a new principal every call, so that no
// decision is cached.
func BenchmarkFormsCold(b *testing.B) {
	e := NewEngine(starterSet(b), testJurisdict)
	fields := benchFields(b)
	ctx := Context{Purpose: "recommend"}
	p := operatorAbroad
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		p.ID = strconv.Itoa(i)
		e.Forms(p, ctx, fields)
	}
	reportPerField(b, len(fields))
}

func BenchmarkAllowed(b *testing.B) {
	e := NewEngine(starterSet(b), testJurisdict)
	f := mustField(b, "users", "email")
	ctx := Context{}
	b.Run("warm", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e.Allowed(operatorService, custos.ActionWrite, f, ctx)
		}
	})
	b.Run("cold", func(b *testing.B) {
		p := operatorService
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			p.ID = strconv.Itoa(i)
			e.Allowed(p, custos.ActionWrite, f, ctx)
		}
	})
	b.Run("subject", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e.AllowedOnSubject(operatorService, custos.ActionErase, "s", "US", ctx)
		}
	})
}
