package synth

// The lists synthetic values are drawn from.

var firstNames = []string{
	"ada", "alan", "amara", "ben", "chen", "dara", "eli", "emma", "farah", "gus",
	"hana", "ivan", "jo", "kai", "lena", "luis", "maya", "nia", "omar", "priya",
	"quinn", "rosa", "sam", "tariq", "uma", "vera", "wes", "yara", "zoe", "noor",
}

var words = []string{
	"river", "maple", "comet", "otter", "pixel", "cedar", "harbor", "lark", "ember",
	"fern", "quartz", "willow", "echo", "falcon", "juniper", "meadow", "nova", "pebble",
	"sparrow", "tide", "violet", "wren", "birch", "coral",
}

var domains = []string{"example.com", "example.org", "example.net"}

// areaCodes are telephone area codes of the US and its territories; numbers
// are made in their 555-01XX range, kept for fiction. Users of a country
// not listed get a code of the US.
var areaCodes = map[string][]string{
	"US": {"202", "206", "212", "213", "303", "305", "312", "404", "415", "503",
		"512", "602", "615", "617", "646", "702", "704", "713", "808", "907"},
	"PR": {"787", "939"},
	"GU": {"671"},
	"VI": {"340"},
	"AS": {"684"},
	"MP": {"670"},
}

// usCountries are the country codes of users of the US other than US
// itself, per 10,000 users: territories with codes of their own, so that
// some groups of an aggregate by country are small.
var usCountries = []struct {
	code   string
	per10k int
}{{"PR", 120}, {"GU", 40}, {"VI", 30}, {"AS", 15}, {"MP", 15}}

var openers = []string{
	"Trying", "Day 12 of", "How to nail", "Reacting to", "The best", "My first",
	"A quick guide to", "Rating",
}

// topicSubjects are what the videos of each topic are about, for titles.
var topicSubjects = [][]string{
	{"street tacos", "ramen at home", "sourdough", "dumplings", "one-pan pasta"},
	{"kickflips", "a mini ramp", "street lines", "old decks", "the bowl"},
	{"a bass line", "the ukulele", "beat making", "piano covers", "a drum fill"},
	{"cat zoomies", "puppy training", "a parrot duet", "the laziest dog", "hamster mazes"},
	{"speedruns", "retro games", "boss fights", "level design", "pixel art"},
	{"night markets", "train journeys", "hidden beaches", "mountain huts", "city walks"},
	{"office pranks", "bad puns", "sitcom bits", "dad jokes", "improv games"},
	{"volcano models", "tiny robots", "cloud types", "magnets", "the night sky"},
}
