package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// The five users of the algorithm scripts: each watched three videos of
// the others.

type demoUser struct {
	id, handle, email, phone, birth, ip, country string
}

var demoUsers = []demoUser{
	{"u1", "ada", "ada@example.com", "+1 202 555 0101", "1990-04-12", "203.0.113.10", "US"},
	{"u2", "grace", "grace@example.org", "+1 415 555 0102", "1985-12-09", "198.51.100.7", "US"},
	{"u3", "linus", "linus@example.net", "+1 312 555 0103", "2001-07-30", "192.0.2.44", "US"},
	{"u4", "katherine", "kj@example.com", "+1 617 555 0104", "1978-08-26", "203.0.113.99", "US"},
	{"u5", "alan", "alan@example.org", "+1 646 555 0105", "1996-06-23", "2001:db8::5", "US"},
}

// loadDemo registers the sample users and writes their records through the
// API, as the operator's service would.
func loadDemo(ctx context.Context, base, svc string) error {
	c := &apiClient{base: base, token: svc, purpose: "serving"}
	for _, u := range demoUsers {
		if _, err := c.do(ctx, "PUT", "/v1/subjects/"+u.id, map[string]any{"residency": "US"}, http.StatusCreated); err != nil {
			return err
		}
		rec := map[string]any{"id": u.id, "fields": map[string]any{
			"id": u.id, "handle": u.handle, "email": u.email, "phone": u.phone,
			"birthdate": u.birth, "ip": u.ip, "country": u.country,
		}}
		if _, err := c.do(ctx, "POST", "/v1/records/users", rec, http.StatusCreated); err != nil {
			return err
		}
		vid := "v-" + u.id
		if _, err := c.do(ctx, "POST", "/v1/records/videos", map[string]any{"id": vid, "fields": map[string]any{
			"id": vid, "creator": u.id, "title": "A day with " + u.handle, "duration_ms": 60000,
		}}, http.StatusCreated); err != nil {
			return err
		}
	}
	for i, u := range demoUsers {
		for j := range 3 {
			v := demoUsers[(i+j+1)%len(demoUsers)]
			id := fmt.Sprintf("w-%s-%d", u.id, j)
			if _, err := c.do(ctx, "POST", "/v1/records/watch_events", map[string]any{"id": id, "fields": map[string]any{
				"user": u.id, "video": "v-" + v.id, "watched_ms": 15000 * (j + 1), "at": fmt.Sprintf("2026-11-2%dT1%d:00:00Z", j+1, i),
			}}, http.StatusCreated); err != nil {
				return err
			}
		}
	}
	return nil
}

// apiClient calls the custos API, for the demo.
type apiClient struct {
	base, token, purpose string
	http                 http.Client
}

func (c *apiClient) do(ctx context.Context, method, path string, body any, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if c.purpose != "" {
		req.Header.Set("Custos-Purpose", c.purpose)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return out, fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, out)
	}
	return out, nil
}
