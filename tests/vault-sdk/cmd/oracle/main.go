// Command oracle writes differential test cases for the Rust framework, each
// with the result HashiCorp's own code computes for it, as one JSON document
// on stdout. tests/sdk_oracle/main.rs (cargo test --test sdk_oracle) runs it
// and compares every case with the Rust implementation.
//
// Three oracles, all pure functions of the MPL-2.0 vault/sdk v0.25.1 and
// go-secure-stdlib/parseutil:
//
//   - ttl: framework.CalculateTTL with a logical.StaticSystemView.
//   - duration: parseutil.ParseDurationSecond on a value decoded by
//     encoding/json, exactly as a plugin decodes request data.
//   - field: framework.FieldData{Raw, Schema}.GetOkErr for every field type
//     the Rust framework has, with Raw decoded by json.Unmarshal (numbers are
//     float64, as in pb.ProtoRequestToLogicalRequest; a plugin never sees a
//     json.Number, so that decoding is not exercised).
//
// Cases are generated from a fixed seed plus hand-picked edge cases, so the
// output is the same on every run except for the wall-clock instants of the
// ttl cases (CalculateTTL reads time.Now itself; each case records the
// second it ran in).
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-secure-stdlib/parseutil"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Seed is the fixed seed of every generated case.
const Seed = 16

type output struct {
	Seed     uint64         `json:"seed"`
	TTL      []ttlCase      `json:"ttl"`
	Duration []durationCase `json:"duration"`
	Field    []fieldCase    `json:"field"`
}

// ttlCase holds CalculateTTL's inputs (durations in nanoseconds, never
// negative: the Rust inputs are std::time::Duration) and its result.
type ttlCase struct {
	Name           string `json:"name"`
	MountDefault   int64  `json:"mount_default"`
	MountMax       int64  `json:"mount_max"`
	Increment      int64  `json:"increment"`
	BackendTTL     int64  `json:"backend_ttl"`
	Period         int64  `json:"period"`
	BackendMaxTTL  int64  `json:"backend_max_ttl"`
	ExplicitMaxTTL int64  `json:"explicit_max_ttl"`
	// StartUnixNano is the lease's start time, or null for "now" (Go's zero time).
	StartUnixNano *int64 `json:"start_unix_nano"`
	// NowUnixNano is time.Now() just before the call; the call is repeated
	// until the instants before and after it fall in the same second, so it
	// is the "now" CalculateTTL used, up to the truncation to the second.
	NowUnixNano int64    `json:"now_unix_nano"`
	TTL         int64    `json:"ttl"`
	Warnings    []string `json:"warnings"`
	Error       *string  `json:"error"`
}

// durationCase is ParseDurationSecond on the JSON text Input.
type durationCase struct {
	Input string `json:"input"`
	// JSONError is set when encoding/json refuses Input (then Rust's
	// serde_json must refuse it too).
	JSONError *string `json:"json_error"`
	Nanos     int64   `json:"nanos"`
	Error     *string `json:"error"`
}

// fieldCase is FieldData.GetOkErr for a field of type Type whose raw value
// is the JSON text Input.
type fieldCase struct {
	Type      string  `json:"type"`
	Input     string  `json:"input"`
	JSONError *string `json:"json_error"`
	// Set is GetOkErr's ok: false means "not provided" (a null).
	Set bool `json:"set"`
	// Value is the decoded value in a canonical JSON form: string, integer,
	// bool, {"bits": "<IEEE-754 bits in hex>", "text": ...} for a float,
	// whole seconds for a duration, a list of strings, an object of strings,
	// the object itself for TypeMap.
	Value any     `json:"value"`
	Error *string `json:"error"`
}

var fieldTypes = []struct {
	name string
	typ  framework.FieldType
}{
	{"string", framework.TypeString},
	{"int", framework.TypeInt},
	{"bool", framework.TypeBool},
	{"float", framework.TypeFloat},
	{"duration", framework.TypeDurationSecond},
	{"comma_string_slice", framework.TypeCommaStringSlice},
	{"kv_pairs", framework.TypeKVPairs},
	{"object", framework.TypeMap},
}

func main() {
	rng := rand.New(rand.NewPCG(Seed, Seed))
	out := output{Seed: Seed}
	out.TTL = ttlCases(rng)
	inputs := valueInputs(rng)
	for _, in := range inputs {
		// null is not a duration for ParseDurationSecond's callers: FieldData
		// treats it as "not provided" (covered by the field oracle).
		if in != "null" {
			out.Duration = append(out.Duration, durationOracle(in))
		}
	}
	for _, ft := range fieldTypes {
		for _, in := range inputs {
			out.Field = append(out.Field, fieldOracle(ft.name, ft.typ, in))
		}
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "oracle:", err)
		os.Exit(1)
	}
}

func errText(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}

// ---------------------------------------------------------------- ttl

const (
	sec    = int64(time.Second)
	minute = int64(time.Minute)
	hour   = int64(time.Hour)
)

// interesting durations: zero, sub-second, boundaries of humanDuration's
// trimming, Vault's defaults, and the largest time.Duration.
var ttlPool = []int64{
	0, 1, 999, int64(time.Millisecond), 500 * int64(time.Millisecond), sec, 59 * sec, minute, 90 * sec,
	30 * minute, hour - sec, hour, hour + sec, hour + minute, hour + minute + sec, hour + sec/2, 2 * hour,
	2*hour + 30*minute, 24 * hour, 768 * hour, 87600 * hour, math.MaxInt64 / 2, math.MaxInt64,
}

func pickTTL(rng *rand.Rand) int64 {
	switch rng.IntN(4) {
	case 0:
		return 0
	case 1:
		return rng.Int64N(3*hour/sec) * sec
	case 2:
		return rng.Int64N(48 * hour)
	default:
		return ttlPool[rng.IntN(len(ttlPool))]
	}
}

func ttlCases(rng *rand.Rand) []ttlCase {
	var cases []ttlCase
	add := func(name string, c ttlCase, startAgo *int64) {
		c.Name = name
		cases = append(cases, runTTL(c, startAgo))
	}
	ago := func(ns int64) *int64 { return &ns }
	// Hand-picked: the same shapes as lease.rs's unit table, plus the edges.
	mount := ttlCase{MountDefault: 768 * hour, MountMax: 768 * hour}
	short := ttlCase{MountDefault: hour, MountMax: 2 * hour}
	with := func(base ttlCase, f func(*ttlCase)) ttlCase { f(&base); return base }
	add("default from mount", short, nil)
	add("backend ttl", with(short, func(c *ttlCase) { c.BackendTTL = 30 * minute }), nil)
	add("increment wins", with(short, func(c *ttlCase) { c.Increment = 10 * minute; c.BackendTTL = 30 * minute }), nil)
	add("increment above mount max", with(mount, func(c *ttlCase) { c.Increment = 87600 * hour }), nil)
	add("mount max 60s", ttlCase{MountDefault: hour, MountMax: minute}, nil)
	add("backend max lowers", with(short, func(c *ttlCase) { c.Increment = hour; c.BackendMaxTTL = 90 * sec }), nil)
	add("explicit max lowers", with(short, func(c *ttlCase) { c.BackendTTL = hour; c.BackendMaxTTL = 50 * minute; c.ExplicitMaxTTL = 20 * minute }), nil)
	add("renew capped", with(mount, func(c *ttlCase) { c.Increment = 10 * hour; c.BackendMaxTTL = 2 * minute }), ago(30*sec))
	add("renew past max", with(mount, func(c *ttlCase) { c.Increment = 10 * hour; c.BackendMaxTTL = 2 * minute }), ago(3*minute))
	add("renew exactly at max", with(mount, func(c *ttlCase) { c.BackendMaxTTL = 2 * minute }), ago(2*minute))
	add("renew one second before max", with(mount, func(c *ttlCase) { c.BackendMaxTTL = 2 * minute }), ago(2*minute-sec))
	add("zero mount max", ttlCase{MountDefault: hour, BackendMaxTTL: hour}, nil)
	add("all zero", ttlCase{}, nil)
	add("zero default", ttlCase{MountMax: hour}, nil)
	add("period", with(short, func(c *ttlCase) { c.Period = 30 * minute; c.Increment = 5 * minute }), nil)
	add("period capped", with(short, func(c *ttlCase) { c.Period = 3 * hour }), nil)
	add("period renews forever", with(short, func(c *ttlCase) { c.Period = hour }), ago(100*hour))
	add("period explicit max remaining", with(short, func(c *ttlCase) { c.Period = hour; c.ExplicitMaxTTL = 2 * hour }), ago(90*minute))
	add("period explicit max past", with(short, func(c *ttlCase) { c.Period = hour; c.ExplicitMaxTTL = hour }), ago(2*hour))
	add("huge max", ttlCase{MountDefault: hour, MountMax: math.MaxInt64}, nil)
	add("huge everything", ttlCase{MountDefault: math.MaxInt64, MountMax: math.MaxInt64, Increment: math.MaxInt64, BackendTTL: math.MaxInt64, BackendMaxTTL: math.MaxInt64, ExplicitMaxTTL: math.MaxInt64}, ago(hour))
	add("warning at 1h+1s", ttlCase{MountDefault: 2 * hour, MountMax: hour + sec}, nil)
	add("warning at 1h+0.5s", ttlCase{MountDefault: 2 * hour, MountMax: hour + sec/2}, nil)
	add("warning 1h1m", ttlCase{MountDefault: 2 * hour, MountMax: hour + minute}, nil)
	add("warning sub-second", ttlCase{MountDefault: sec, MountMax: 1500}, nil)
	add("period warning at 2h+30s", ttlCase{MountDefault: hour, MountMax: 2*hour + 30*sec, Period: 3 * hour}, nil)
	add("start in the future", with(short, func(c *ttlCase) { c.Increment = 3 * hour }), ago(-hour))
	add("start 1ns in the past", with(short, func(c *ttlCase) { c.Increment = 3 * hour }), ago(1))

	// Generated.
	for i := 0; i < 2000; i++ {
		c := ttlCase{
			MountDefault:   pickTTL(rng),
			MountMax:       pickTTL(rng),
			Increment:      pickTTL(rng),
			BackendTTL:     pickTTL(rng),
			BackendMaxTTL:  pickTTL(rng),
			ExplicitMaxTTL: pickTTL(rng),
		}
		// A zero mount max is always an error: keep it rare.
		for c.MountMax == 0 && rng.IntN(20) != 0 {
			c.MountMax = pickTTL(rng)
		}
		if rng.IntN(4) == 0 {
			c.Period = pickTTL(rng)
		}
		var startAgo *int64
		switch rng.IntN(3) {
		case 0:
		case 1:
			// Whole seconds in the past, up to a little beyond the max.
			startAgo = ago(rng.Int64N(3*hour/sec) * sec)
		default:
			// Arbitrary nanoseconds, so truncation of the start matters.
			startAgo = ago(rng.Int64N(3*hour) - minute)
		}
		add(fmt.Sprintf("generated %d", i), c, startAgo)
	}
	return cases
}

// runTTL runs CalculateTTL until a call begins and ends in the same second.
func runTTL(c ttlCase, startAgo *int64) ttlCase {
	sys := logical.StaticSystemView{
		DefaultLeaseTTLVal: time.Duration(c.MountDefault),
		MaxLeaseTTLVal:     time.Duration(c.MountMax),
	}
	var fixedStart time.Time
	for {
		before := time.Now()
		var start time.Time
		if startAgo != nil {
			if fixedStart.IsZero() {
				fixedStart = time.Unix(0, before.UnixNano()-*startAgo)
			}
			start = fixedStart
			n := start.UnixNano()
			c.StartUnixNano = &n
		}
		ttl, warnings, err := framework.CalculateTTL(sys, time.Duration(c.Increment), time.Duration(c.BackendTTL),
			time.Duration(c.Period), time.Duration(c.BackendMaxTTL), time.Duration(c.ExplicitMaxTTL), start)
		after := time.Now()
		if before.Unix() != after.Unix() {
			continue
		}
		c.NowUnixNano = before.UnixNano()
		c.TTL = int64(ttl)
		c.Warnings = warnings
		if c.Warnings == nil {
			c.Warnings = []string{}
		}
		c.Error = errText(err)
		return c
	}
}

// ---------------------------------------------------------------- values

// valueInputs returns the JSON texts every duration and field case is built
// from: hand-picked edge cases, then generated ones.
func valueInputs(rng *rand.Rand) []string {
	var texts []string
	seen := map[string]bool{}
	add := func(t string) {
		if !seen[t] {
			seen[t] = true
			texts = append(texts, t)
		}
	}
	str := func(s string) {
		b, err := json.Marshal(s)
		if err != nil {
			panic(err)
		}
		add(string(b))
	}
	for _, s := range handStrings {
		str(s)
	}
	for _, t := range handJSON {
		add(t)
	}
	for len(texts) < 1500 {
		switch rng.IntN(6) {
		case 0, 1:
			str(genDuration(rng))
		case 2:
			add(genNumber(rng))
		case 3:
			str(genNumber(rng))
		case 4:
			str(genList(rng))
		default:
			add(genCompound(rng))
		}
	}
	return texts
}

var handStrings = []string{
	"", " ", "0", "-0", "+0", "00", "1", "90", "-5", "+5", " 90 ", "90 ", " 90", "010", "089", "0x10", "0o17", "0b101",
	"1_000", "1e3", "1E3", "1.5", "1.", ".5", ".", "-", "+", "--5", "+-5", "2.0", "1.5e2", "-1.5", "-0.",
	"90s", "1h30m", "1h 30m", "1h30m ", "2d", "-2d", "+2d", "0d", "-0d", "1.5d", "1d12h", "12h1d", "d", "1D",
	"1.5h", "0.5s", "1.333h", ".5m", "5.s", "5.", "250ms", "1.5ns", "3us", "3\u00b5s", "3\u03bcs", "1h1h",
	"+5s", "-5s", "-0s", "-0.5s", "-1ns", "1.0000000001s", "0.9999999999s", "2562047h", "2562048h",
	"9223372036854775807ns", "9223372036854775808ns", "9223372036s", "9223372037s", "9223372036", "9223372037",
	"106751d", "106752d", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
	"99999999999999999999999999999999999999999d", "18446744073709551616", "1H", "1M", "1m", "1w", "1y",
	"1min", "1hour", "2 days", "1sec", "5x", "abc", "1h-5m", "nan", "NaN", "inf", "-Inf", "Infinity",
	"1e999", "0x1p-2", "true", "false", "True", "TRUE", "tRUE", "t", "f", "T", "F", "yes", " true",
	"a,b", " a , b ,, ", "a,,b", ",", "single", "a=1", "a=1,b=2", "a=1, b = 2 ,", "a=1,a=2", "empty=",
	"=v", "k", "a==b", "a=1,b", " a = 1 ", "x=y=z", "\u00e9=\u00fc", "\t5\n", "1\u00a0", "\u0661",
	`{"a":1}`, `{"a":[1,{"b":null}]}`, "[1]", `{"a":`,
}

var handJSON = []string{
	"null", "true", "false", "0", "-0", "0.0", "-0.0", "1", "-1", "1.5", "-0.5", "0.9", "-1.5", "2.5", "2.0",
	"1e3", "1E3", "1.5e2", "1e-7", "5e-324", "1e21", "1e20", "1e19", "1e300", "1e400", "-1e400",
	"9007199254740992", "9007199254740993", "9223372036", "9223372036.5", "9223372037",
	"9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
	"18446744073709551615", "18446744073709551616", "1.7976931348623157e308",
	"383242.62783479155", "7.828931440787822e+14", // serde_json: 1 ULP off; a formatting tie
	"[]", "[\"a\"]", "[\"a, b\"]", "[\" a \", \"\", \"b,c\", 3, 1.5]", "[\"a\", true]", "[1]", "[true]",
	"[\"1s\"]", "[\"a=1\", \"b=x=y\"]", "[\"a=1\", \"nope\"]", "[\"a=1\", 2]", "[[\"b\"]]", "[null]",
	"[{\"a\":1}]", "[\"a\", null]", "[1e21]", "[-0.0]", "[\"=v\"]", "[\"k=\"]",
	"{}", "{\"team\":\"ml\",\"n\":2,\"on\":true}", "{\"a\":{\"b\":1}}", "{\"a\":[1]}", "{\"\":\"v\"}",
	"{\"a\":true,\"b\":383242.62783479155}", "{\"a\":null}", "{\"a\":1.5}", "{\"a\":1e21}", "{\"a\":false}", "{\"a\":\"\"}", "{\"a\":\"1\",\"b\":\"2\"}",
}

var units = []string{"ns", "us", "\u00b5s", "\u03bcs", "ms", "s", "m", "h", "d", "", "", "w", "M", "y", "x", "S", "min", "sec", "hr"}

func genDigits(rng *rand.Rand, max int) string {
	n := 1 + rng.IntN(max)
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteByte(byte('0' + rng.IntN(10)))
	}
	return b.String()
}

func genDecimal(rng *rand.Rand) string {
	switch rng.IntN(8) {
	case 0:
		return genDigits(rng, 3) + "." + genDigits(rng, 4)
	case 1:
		return "." + genDigits(rng, 3)
	case 2:
		return genDigits(rng, 2) + "."
	case 3:
		return genDigits(rng, 20)
	default:
		return strconv.Itoa(rng.IntN(200))
	}
}

func genDuration(rng *rand.Rand) string {
	var b strings.Builder
	switch rng.IntN(10) {
	case 0:
		b.WriteByte('-')
	case 1:
		b.WriteByte('+')
	case 2:
		b.WriteByte(' ')
	}
	segments := 1 + rng.IntN(3)
	for i := 0; i < segments; i++ {
		b.WriteString(genDecimal(rng))
		b.WriteString(units[rng.IntN(len(units))])
		if rng.IntN(12) == 0 {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

func genNumber(rng *rand.Rand) string {
	sign := ""
	if rng.IntN(4) == 0 {
		sign = "-"
	}
	switch rng.IntN(6) {
	case 0:
		return sign + strconv.FormatInt(rng.Int64N(1<<62), 10)
	case 1:
		return sign + strconv.FormatFloat(rng.Float64()*1e6, 'f', -1, 64)
	case 2:
		return sign + strconv.FormatFloat(rng.Float64()*math.Pow(10, float64(rng.IntN(40)-10)), 'g', -1, 64)
	case 3:
		return sign + genDigits(rng, 3) + "e" + strconv.Itoa(rng.IntN(25))
	default:
		return sign + strconv.Itoa(rng.IntN(100000))
	}
}

var words = []string{"a", "b", "team", "ml", " x ", "", "1", "true", "k=v", "a=1", "=", "é"}

func genList(rng *rand.Rand) string {
	n := rng.IntN(5)
	parts := make([]string, n)
	for i := range parts {
		w := words[rng.IntN(len(words))]
		if rng.IntN(2) == 0 {
			w = words[rng.IntN(len(words))] + "=" + words[rng.IntN(len(words))]
		}
		parts[i] = w
	}
	sep := ","
	if rng.IntN(3) == 0 {
		sep = ", "
	}
	return strings.Join(parts, sep)
}

func genScalar(rng *rand.Rand) any {
	switch rng.IntN(6) {
	case 0:
		return words[rng.IntN(len(words))]
	case 1:
		return genList(rng)
	case 2:
		// genNumber may give invalid JSON ("06e5"); inside a compound that is a string.
		n := genNumber(rng)
		if json.Valid([]byte(n)) {
			return json.RawMessage(n)
		}
		return n
	case 3:
		return rng.IntN(2) == 0
	case 4:
		return nil
	default:
		return genDuration(rng)
	}
}

func genCompound(rng *rand.Rand) string {
	var v any
	if rng.IntN(2) == 0 {
		items := make([]any, rng.IntN(4))
		for i := range items {
			items[i] = genScalar(rng)
		}
		v = items
	} else {
		m := map[string]any{}
		for i := rng.IntN(4); i > 0; i-- {
			m[words[rng.IntN(len(words))]] = genScalar(rng)
		}
		v = m
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// ---------------------------------------------------------------- oracles

func decode(in string) (any, *string) {
	var v any
	if err := json.Unmarshal([]byte(in), &v); err != nil {
		return nil, errText(err)
	}
	return v, nil
}

func durationOracle(in string) durationCase {
	c := durationCase{Input: in}
	v, jerr := decode(in)
	if jerr != nil {
		c.JSONError = jerr
		return c
	}
	d, err := parseutil.ParseDurationSecond(v)
	c.Nanos = int64(d)
	c.Error = errText(err)
	return c
}

func fieldOracle(name string, typ framework.FieldType, in string) fieldCase {
	c := fieldCase{Type: name, Input: in}
	// The whole request body goes through json.Unmarshal, as in
	// pb.ProtoRequestToLogicalRequest.
	var raw map[string]any
	if err := json.Unmarshal([]byte(`{"f":`+in+`}`), &raw); err != nil {
		c.JSONError = errText(err)
		return c
	}
	fd := framework.FieldData{Raw: raw, Schema: map[string]*framework.FieldSchema{"f": {Type: typ}}}
	v, ok, err := fd.GetOkErr("f")
	if err != nil {
		c.Error = errText(err)
		return c
	}
	c.Set = ok
	if ok {
		c.Value = canonical(v)
	}
	return c
}

// canonical turns GetOkErr's value into the JSON form fieldCase documents:
// only floats need care (NaN and infinities have no JSON form).
func canonical(v any) any {
	if f, ok := v.(float64); ok {
		return map[string]string{"bits": strconv.FormatUint(math.Float64bits(f), 16), "text": strconv.FormatFloat(f, 'g', -1, 64)}
	}
	return v
}
