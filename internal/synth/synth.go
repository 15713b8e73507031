// Package synth generates a synthetic short-video platform: users, the
// videos some of them make, and the events of users watching videos, in the
// shape of the starter schema's collections users, videos and watch_events.
//
// Guarantees:
//
//   - A platform is a function of its Config: equal configs give identical
//     users, videos and events in every run. Nothing depends on the clock,
//     the environment or the order items are read in.
//   - Every value passes the starter schema's checks for its field.
//   - Everything is synthetic: names come from small lists in this package,
//     email domains are the reserved example.com, .org and .net, phone
//     numbers are in the range 555-0100 to 555-0199 kept for fiction, and
//     addresses are in the ranges kept for documentation (192.0.2.0/24,
//     198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32).
//   - Events are made one at a time: a platform holds a few bytes per video
//     and none per user or event, so millions of events can be made and
//     written without being held.
//
// The platform has a shape a recommender can learn: each video belongs to
// one of a few topics, each user prefers one or two of them and watches
// mostly those, and within a topic popularity follows a power law.
//
// The package does no I/O of its own: Load writes a platform through a
// Writer, such as custos' HTTP API, each record after those it names.
package synth

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"
)

// Config describes a platform.
type Config struct {
	// Seed chooses the platform; the same seed gives the same platform.
	Seed uint64
	// Users, Videos and Events are how many of each to make: at least one
	// user and one video, at most MaxItems of each.
	Users, Videos, Events int
	// Topics is how many topics videos belong to, default 8; a platform of
	// fewer videos has one topic per video.
	Topics int
	// Days is how many days the events are spread over; default 14.
	Days int
	// End is when the events end and what ages are counted from; default
	// DefaultEnd.
	End time.Time
	// Jurisdiction is where every user resides (an ISO 3166-1 alpha-2
	// code); default "US". In the US, a small share of users have the code
	// of a territory as their country; elsewhere, every user has the
	// jurisdiction's (and a phone number of the US still).
	Jurisdiction string
}

// MaxItems bounds each of Users, Videos and Events.
const MaxItems = 1 << 30

// The default sizes, those of the demo: 6,600 records, which custos on
// SQLite stores through its API in 11 to 28 seconds on two cores busy with
// other work too.
const (
	DefaultUsers  = 500
	DefaultVideos = 100
	DefaultEvents = 6000
)

// DefaultEnd is the end of the events of a Config without one.
var DefaultEnd = time.Date(2026, time.December, 1, 0, 0, 0, 0, time.UTC)

// creatorShare is one in how many users make videos.
const creatorShare = 20

// preferred is the share of a user's events, in percent, that go to the
// topics they prefer; the others go to any topic.
const preferred = 85

// zipfS is the exponent of popularity within a topic.
const zipfS = 1.1

// A User is a record of the collection users; the user is its subject.
type User struct {
	ID, Handle, Email, Phone string
	// Birthdate is YYYY-MM-DD.
	Birthdate string
	// IP is in canonical form.
	IP string
	// Country is an ISO 3166-1 alpha-2 code.
	Country string
}

// A Video is a record of the collection videos; its creator is its subject.
type Video struct {
	ID, Creator, Title string
	DurationMS         int64
	// Topic is not part of the record.
	Topic int
}

// An Event is a record of the collection watch_events: User watched Video
// for WatchedMS, at most its duration, at At (to the millisecond, UTC).
// The user is its subject.
type Event struct {
	ID, User, Video string
	WatchedMS       int64
	At              time.Time
}

// A Platform makes the users, videos and events of a Config. Its methods
// are safe for concurrent use.
type Platform struct {
	cfg Config
	// Creator k is one of the users [k*stride, (k+1)*stride).
	creators, stride int
	// topics holds each topic's videos, most popular first.
	topics  [][]int32
	topicOf []int32
	// widths are the digits of the users', videos' and events' ids.
	userWidth, videoWidth, eventWidth int
}

// New returns the platform cfg describes.
func New(cfg Config) (*Platform, error) {
	if cfg.Topics == 0 {
		cfg.Topics = 8
	}
	if cfg.Days == 0 {
		cfg.Days = 14
	}
	if cfg.End.IsZero() {
		cfg.End = DefaultEnd
	}
	if cfg.Jurisdiction == "" {
		cfg.Jurisdiction = "US"
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg.End = cfg.End.UTC().Truncate(time.Millisecond)
	cfg.Topics = min(cfg.Topics, cfg.Videos)
	p := &Platform{cfg: cfg, creators: max(1, cfg.Users/creatorShare)}
	p.stride = cfg.Users / p.creators
	p.userWidth = max(6, len(strconv.Itoa(cfg.Users)))
	p.videoWidth = max(5, len(strconv.Itoa(cfg.Videos)))
	p.eventWidth = max(7, len(strconv.Itoa(cfg.Events)))
	// Videos are dealt to topics in a random order, which is also their
	// order of popularity, so that every topic has one.
	p.topics = make([][]int32, cfg.Topics)
	p.topicOf = make([]int32, cfg.Videos)
	for j, v := range p.rand(streamTopics, 0).Perm(cfg.Videos) {
		t := j % cfg.Topics
		p.topics[t] = append(p.topics[t], int32(v))
		p.topicOf[v] = int32(t)
	}
	return p, nil
}

func (cfg Config) check() error {
	for _, n := range []struct {
		what     string
		n, least int
	}{{"users", cfg.Users, 1}, {"videos", cfg.Videos, 1}, {"events", cfg.Events, 0}} {
		if n.n < n.least || n.n > MaxItems {
			return fmt.Errorf("%s must be between %d and %d", n.what, n.least, MaxItems)
		}
	}
	switch {
	case cfg.Topics < 1 || cfg.Topics > 1000:
		return errors.New("topics must be between 1 and 1000")
	case cfg.Days < 1 || cfg.Days > 3660:
		return errors.New("days must be between 1 and 3660")
	case len(cfg.Jurisdiction) != 2 || !isUpper(cfg.Jurisdiction[0]) || !isUpper(cfg.Jurisdiction[1]):
		return errors.New("the jurisdiction must be an ISO 3166-1 alpha-2 code such as US")
	}
	return nil
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

// Config returns the platform's configuration, defaults filled in.
func (p *Platform) Config() Config { return p.cfg }

// Size returns how many records the platform has: its users, videos and
// events.
func (p *Platform) Size() int { return p.cfg.Users + p.cfg.Videos + p.cfg.Events }

// The streams of random numbers: each kind of item draws from its own, and
// each item from its own part of it.
const (
	streamUser = iota + 1
	streamVideo
	streamDuration
	streamCreator
	streamTaste
	streamTopics
	streamEvents
)

// rand returns the generator of item i of a stream.
func (p *Platform) rand(stream, i uint64) *rand.Rand {
	return rand.New(rand.NewPCG(mix(p.cfg.Seed), mix(stream<<56^i)))
}

// hash returns a random number for item i of a stream, cheaper than rand.
func (p *Platform) hash(stream, i uint64) uint64 {
	return mix(mix(p.cfg.Seed) ^ mix(stream<<56^i))
}

// mix is SplitMix64's finalizer: a bijection that scatters nearby inputs.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// id returns prefix and n, zero-padded to width digits.
func id(prefix byte, n, width int) string {
	b := make([]byte, 1, 1+width)
	b[0] = prefix
	for d := len(strconv.Itoa(n)); d < width; d++ {
		b = append(b, '0')
	}
	return string(strconv.AppendInt(b, int64(n), 10))
}

// UserID returns the id of user i, counted from 0: u000001 for the first.
func (p *Platform) UserID(i int) string { return id('u', i+1, p.userWidth) }

// VideoID returns the id of video i, counted from 0: v00001 for the first.
func (p *Platform) VideoID(i int) string { return id('v', i+1, p.videoWidth) }

// EventID returns the id of event i, counted from 0: w0000001 for the first.
func (p *Platform) EventID(i int) string { return id('w', i+1, p.eventWidth) }

// Users returns the users, in order of their ids.
func (p *Platform) Users() iter.Seq[User] { return seq(p.cfg.Users, p.User) }

// Videos returns the videos, in order of their ids.
func (p *Platform) Videos() iter.Seq[Video] { return seq(p.cfg.Videos, p.Video) }

func seq[T any](n int, item func(int) T) iter.Seq[T] {
	return func(yield func(T) bool) {
		for i := range n {
			if !yield(item(i)) {
				return
			}
		}
	}
}

// User returns user i, counted from 0.
func (p *Platform) User(i int) User {
	r := p.rand(streamUser, uint64(i))
	first, word := pick(r, firstNames), pick(r, words)
	n := strconv.Itoa(i + 1)
	country := p.country(r)
	return User{
		ID:        p.UserID(i),
		Handle:    first + "_" + word + n,
		Email:     first + "." + word + n + "@" + pick(r, domains),
		Phone:     phone(r, country),
		Birthdate: p.birthdate(r).Format(time.DateOnly),
		IP:        ip(r).String(),
		Country:   country,
	}
}

// country returns a user's country: in the US, mostly US, else the
// jurisdiction.
func (p *Platform) country(r *rand.Rand) string {
	if p.cfg.Jurisdiction != "US" {
		return p.cfg.Jurisdiction
	}
	n := r.IntN(10000)
	for _, c := range usCountries {
		if n < c.per10k {
			return c.code
		}
		n -= c.per10k
	}
	return "US"
}

// phone returns a number of the range kept for fiction: +1 AAA 555 01XX.
func phone(r *rand.Rand, country string) string {
	codes, ok := areaCodes[country]
	if !ok {
		codes = areaCodes["US"]
	}
	return fmt.Sprintf("+1 %s 555 01%02d", pick(r, codes), r.IntN(100))
}

// birthdate returns a day on which a user aged 13 to 80 at the end of the
// events was born.
func (p *Platform) birthdate(r *rand.Rand) time.Time {
	end := p.cfg.End
	first := time.Date(end.Year()-81, end.Month(), end.Day()+1, 0, 0, 0, 0, time.UTC)
	last := time.Date(end.Year()-13, end.Month(), end.Day(), 0, 0, 0, 0, time.UTC)
	days := int(last.Sub(first).Hours() / 24)
	return first.AddDate(0, 0, r.IntN(days+1))
}

// ip returns an address of the ranges kept for documentation; one in ten
// is IPv6.
func ip(r *rand.Rand) netip.Addr {
	if r.IntN(10) == 0 {
		a := [16]byte{0x20, 0x01, 0x0d, 0xb8}
		for i := 4; i < 16; i++ {
			a[i] = byte(r.Uint32())
		}
		return netip.AddrFrom16(a)
	}
	n := docNets[r.IntN(len(docNets))]
	return netip.AddrFrom4([4]byte{n[0], n[1], n[2], byte(1 + r.IntN(254))})
}

var docNets = [][3]byte{{192, 0, 2}, {198, 51, 100}, {203, 0, 113}}

// Video returns video i, counted from 0.
func (p *Platform) Video(i int) Video {
	r := p.rand(streamVideo, uint64(i))
	t := int(p.topicOf[i])
	subjects := topicSubjects[t%len(topicSubjects)]
	return Video{
		ID:         p.VideoID(i),
		Creator:    p.UserID(p.creator(r.IntN(p.creators))),
		Title:      pick(r, openers) + " " + pick(r, subjects),
		DurationMS: p.duration(i),
		Topic:      t,
	}
}

// creator returns the index of the user who is creator k.
func (p *Platform) creator(k int) int {
	return k*p.stride + int(p.hash(streamCreator, uint64(k))%uint64(p.stride))
}

// duration returns video i's duration in milliseconds: 5 s to 3 min, most
// of them short.
func (p *Platform) duration(i int) int64 {
	u := float64(p.hash(streamDuration, uint64(i))>>11) / (1 << 53)
	d := 5000 - 30000*math.Log1p(-u)
	return int64(min(d, 180000))
}

// taste returns the topics user u prefers: one or two, a == b when one.
func (p *Platform) taste(u int) (a, b int) {
	h := p.hash(streamTaste, uint64(u))
	t := uint64(p.cfg.Topics)
	a = int(h % t)
	if h>>63 == 0 || t == 1 {
		return a, a
	}
	return a, int((uint64(a) + 1 + (h>>32)%(t-1)) % t)
}

// Events returns the events, in order of their ids and of time. Each call
// makes them anew, one at a time.
func (p *Platform) Events() iter.Seq[Event] {
	return func(yield func(Event) bool) {
		r := p.rand(streamEvents, 0)
		zipf := make([]*rand.Zipf, len(p.topics))
		for t, vs := range p.topics {
			zipf[t] = rand.NewZipf(r, zipfS, 1, uint64(len(vs)-1))
		}
		window := time.Duration(p.cfg.Days) * 24 * time.Hour
		start := p.cfg.End.Add(-window)
		step := float64(window) / float64(p.cfg.Events)
		for j := range p.cfg.Events {
			u := r.IntN(p.cfg.Users)
			t := p.topic(r, u)
			v := int(p.topics[t][zipf[t].Uint64()])
			d := p.duration(v)
			watched := d
			if r.IntN(3) > 0 { // two in three stop before the end
				watched = 1 + r.Int64N(d)
			}
			at := start.Add(time.Duration((float64(j) + r.Float64()) * step)).Truncate(time.Millisecond)
			if !yield(Event{ID: p.EventID(j), User: p.UserID(u), Video: p.VideoID(v), WatchedMS: watched, At: at}) {
				return
			}
		}
	}
}

// topic returns the topic of one of user u's events.
func (p *Platform) topic(r *rand.Rand, u int) int {
	if r.IntN(100) >= preferred {
		return r.IntN(p.cfg.Topics)
	}
	a, b := p.taste(u)
	if r.IntN(2) == 0 {
		return a
	}
	return b
}

func pick(r *rand.Rand, list []string) string { return list[r.IntN(len(list))] }
