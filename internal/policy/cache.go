package policy

import (
	"encoding/binary"
	"hash/maphash"
	"strings"
	"sync"

	"github.com/custos/custos"
)

// The decision cache is bounded: each shard holds at most
// maxCacheEntries/cacheShards decisions and is emptied when a call would
// take it over.
const (
	cacheShards     = 32
	maxCacheEntries = 100_000
	maxShardEntries = maxCacheEntries / cacheShards
)

// cache keeps the decisions made under one policy set. Its key holds
// everything a decision depends on but the set: the principal with all its
// attributes, the complete context, the action and the field.
type cache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

type cacheKey struct {
	who    string        // requestKey of the principal and context
	action custos.Action // "" for Forms
	field  Field
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[cacheKey]custos.Form
	_  [64]byte // keeps shards' locks on separate cache lines
}

func newCache() *cache {
	c := &cache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]custos.Form)
	}
	return c
}

// requestKey identifies a principal and a context: custos.Principal.Key,
// then purpose and reason, length-prefixed so that no two contexts share a
// key, then the flags. It reports whether the key is cacheable.
// Principal.Key length-prefixes every attribute, so no two principals share
// a key; as a second line of defence, principals with attributes no
// verified credential can carry (NUL bytes, empty roles, commas in roles)
// are still decided without the cache.
func requestKey(p custos.Principal, ctx Context) (key string, cacheable bool) {
	if !keyable(p) {
		return "", false
	}
	var b strings.Builder
	pk := p.Key()
	b.Grow(len(pk) + len(ctx.Purpose) + len(ctx.Reason) + 2*binary.MaxVarintLen64 + 1)
	b.WriteString(pk)
	var n [binary.MaxVarintLen64]byte
	b.Write(binary.AppendUvarint(n[:0], uint64(len(ctx.Purpose))))
	b.WriteString(string(ctx.Purpose))
	b.Write(binary.AppendUvarint(n[:0], uint64(len(ctx.Reason))))
	b.WriteString(ctx.Reason)
	var flags byte
	for i, f := range []bool{ctx.Justified, ctx.Approved, ctx.BreakGlass} {
		if f {
			flags |= 1 << i
		}
	}
	b.WriteByte(flags)
	return b.String(), true
}

// keyable reports whether p.Key identifies p.
func keyable(p custos.Principal) bool {
	for _, s := range []string{p.Issuer, p.ID, p.Org, p.Loc} {
		if strings.IndexByte(s, 0) >= 0 {
			return false
		}
	}
	for _, r := range p.Roles {
		if r == "" || strings.ContainsAny(r, ",\x00") {
			return false
		}
	}
	return true
}

// shard returns the shard of who: every decision of one call sits in one
// shard, so a call takes one lock.
func (c *cache) shard(who string) *cacheShard {
	return &c.shards[maphash.String(c.seed, who)%cacheShards]
}

// lookup fills out with the cached decisions of action a on fields and
// reports whether every one was cached. Entries not cached are left alone.
func (c *cache) lookup(who string, a custos.Action, fields []Field, out []custos.Form) bool {
	sh := c.shard(who)
	all := true
	sh.mu.RLock()
	for i, f := range fields {
		if v, ok := sh.m[cacheKey{who, a, f}]; ok {
			out[i] = v
		} else {
			all = false
		}
	}
	sh.mu.RUnlock()
	return all
}

// store caches the decisions of action a on fields. A call with more fields
// than a shard holds is not cached.
func (c *cache) store(who string, a custos.Action, fields []Field, forms []custos.Form) {
	if len(fields) > maxShardEntries {
		return
	}
	sh := c.shard(who)
	sh.mu.Lock()
	if len(sh.m)+len(fields) > maxShardEntries {
		sh.m = make(map[cacheKey]custos.Form)
	}
	for i, f := range fields {
		sh.m[cacheKey{who, a, f}] = forms[i]
	}
	sh.mu.Unlock()
}

// Bounds of the engine's caches of Cedar values.
const (
	maxPrincipals = 10000
	maxContexts   = 1000
	maxFields     = 10000
)

// bounded is a map of values built once per key, emptied when it would
// grow past max entries.
type bounded[K comparable, V any] struct {
	mu  sync.RWMutex
	m   map[K]V
	max int
}

// get returns the value of k, building it with build when absent.
func (b *bounded[K, V]) get(k K, build func() V) V {
	b.mu.RLock()
	v, ok := b.m[k]
	b.mu.RUnlock()
	if ok {
		return v
	}
	v = build()
	b.mu.Lock()
	if b.m == nil || len(b.m) >= b.max {
		b.m = make(map[K]V)
	}
	b.m[k] = v
	b.mu.Unlock()
	return v
}
