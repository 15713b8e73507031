package custos

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

var sampleEntry = AuditEntry{
	Time: time.Date(2026, 11, 26, 19, 35, 40, 123456789, time.UTC), Action: "read", Decision: "allow",
	Principal: "wei", Org: "operator", Loc: "SG", Collection: "users", Record: "ps_r", Subject: "ps_s",
	Forms: map[string]string{"phone": "token", "email": "token", "country": "clear"},
}

func TestAuditEntryEncoding(t *testing.T) {
	b, err := MarshalAuditEntry(sampleEntry)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"time":"2026-11-26T19:35:40.123456Z","action":"read","decision":"allow","principal":"wei","org":"operator","loc":"SG","collection":"users","record":"ps_r","subject":"ps_s","forms":{"country":"clear","email":"token","phone":"token"}}`
	if string(b) != want {
		t.Fatalf("encoding:\n got %s\nwant %s", b, want)
	}
	e, err := ParseAuditEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	w := sampleEntry
	w.Time = w.Time.Truncate(time.Microsecond)
	if !reflect.DeepEqual(e, w) {
		t.Fatalf("round trip: %+v, want %+v", e, w)
	}
}

func TestAuditEntryRefused(t *testing.T) {
	good, _ := MarshalAuditEntry(sampleEntry)
	cases := map[string]string{
		"reordered keys":     strings.Replace(string(good), `"action":"read","decision":"allow"`, `"decision":"allow","action":"read"`, 1),
		"white space":        strings.Replace(string(good), `"v":1,`, `"v": 1,`, 1),
		"unknown field":      strings.Replace(string(good), `"v":1,`, `"v":1,"x":1,`, 1),
		"version 2":          strings.Replace(string(good), `"v":1,`, `"v":2,`, 1),
		"explicit empty":     strings.Replace(string(good), `"org":"operator",`, `"org":"operator","code":"",`, 1),
		"bad decision":       strings.Replace(string(good), `"allow"`, `"maybe"`, 1),
		"bad action":         strings.Replace(string(good), `"read"`, `"Read"`, 1),
		"nanosecond time":    strings.Replace(string(good), `.123456Z`, `.123456789Z`, 1),
		"other zone":         strings.Replace(string(good), `.123456Z`, `.123456+01:00`, 1),
		"escaped html":       strings.Replace(string(good), `"wei"`, `"\u003c"`, 1),
		"trailing data":      string(good) + " ",
		"too large":          string(good) + strings.Repeat(" ", MaxAuditEntrySize),
		"unsorted subjects":  strings.Replace(string(good), `"subject":"ps_s",`, `"subject":"ps_s","subjects":["b","a"],`, 1),
		"duplicate subjects": strings.Replace(string(good), `"subject":"ps_s",`, `"subject":"ps_s","subjects":["a","a"],`, 1),
	}
	for name, c := range cases {
		if _, err := ParseAuditEntry([]byte(c)); err == nil {
			t.Errorf("%s: accepted %s", name, c)
		}
	}
}

func FuzzAuditEntry(f *testing.F) {
	good, _ := MarshalAuditEntry(sampleEntry)
	f.Add(good)
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseAuditEntry(data)
		if err != nil {
			return
		}
		b, err := MarshalAuditEntry(e)
		if err != nil {
			t.Fatalf("accepted entry does not encode: %v", err)
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("two encodings of one entry:\n%s\n%s", data, b)
		}
	})
}

// marshalReflect is the encoding as encoding/json writes it, which
// MarshalAuditEntry must match byte for byte.
func marshalReflect(t testing.TB, e AuditEntry) []byte {
	t.Helper()
	w := wireEntry{V: AuditEntryVersion, Time: e.Time.UTC().Format(entryTimeLayout), AuditEntry: e}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// FuzzAuditEntryEncoder checks the hand-written encoder against
// encoding/json on entries made of arbitrary strings.
func FuzzAuditEntryEncoder(f *testing.F) {
	for _, s := range []string{"", "wei", "a\"b\\c", "\x00\x1f\x7f", "<>&", "\u2028\u2029", "\xff\xfe", "日本", "\t\n\r\b\f", "\xed\xa0\x80"} {
		f.Add(s, s+"x", 3, true, int64(1_800_000_000_123_456_789))
	}
	f.Fuzz(func(t *testing.T, a, b string, n int, glass bool, nanos int64) {
		if len(a) > maxEntryString || len(b) > maxEntryString || n < 0 {
			return
		}
		e := sampleEntry
		e.Principal, e.Purpose, e.Reason, e.Detail, e.Count, e.BreakGlass = a, b, a+b, b, n, glass
		e.Time = time.Unix(0, nanos)
		e.Forms = map[string]string{a: b, b: a, "email": "token"}
		if a < b {
			e.Subjects = []string{a, b}
		}
		got, err := MarshalAuditEntry(e)
		if err != nil {
			return
		}
		if want := marshalReflect(t, e); !bytes.Equal(got, want) {
			t.Fatalf("encoding differs from encoding/json:\n got %q\nwant %q", got, want)
		}
	})
}

func BenchmarkMarshalAuditEntry(b *testing.B) {
	for range b.N {
		if _, err := MarshalAuditEntry(sampleEntry); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAuditEntryTimes(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 7, 1, 12, 0, 0, 0, time.FixedZone("X", 5*3600+1800)),
		{},
	} {
		e := sampleEntry
		e.Time = tm
		got, err := MarshalAuditEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		if want := marshalReflect(t, e); !bytes.Equal(got, want) {
			t.Errorf("time %v:\n got %s\nwant %s", tm, got, want)
		}
	}
}
