package fsview

import (
	"bytes"
	"encoding/json"
	"github.com/sandgate/sandgate/internal/wire/wiretest"
	"reflect"
	"strings"
	"testing"
)

// fullPlan is a plan with every field of every type set.
func fullPlan() *Plan {
	return &Plan{
		Mode: ModeReadonly,
		Ops: []Op{
			{Kind: OpCapture, Path: "/home/u", ID: 1, Why: "home"},
			{Kind: OpTmpfs, Path: "/tmp", Mode: 0o1777, Owner: &Owner{UID: 1000, GID: -1}, ReadOnly: true,
				Nodes: []Node{{Path: "/tmp/a", Type: NodeDir}, {Path: "/tmp/l", Type: NodeSymlink, Target: "../x"}, {Path: "/tmp/f", Type: NodeFile}},
				Why:   "private /tmp"},
			{Kind: OpBind, Path: "/home/u/proj", From: 1, ReadOnly: true},
			{Kind: OpOverlay, ID: 2, From: 1},
		},
		Writable:      []string{"/home/u/proj", "/tmp"},
		NeverWritable: []string{"/home/u/proj/.git/hooks"},
		Hidden:        []string{"/home/u/.ssh", "/home/u/.aws"},
		Watch:         []Watch{{Path: "/home/u/proj/.envrc", Why: "direnv"}, {Path: "/home/u/proj/l", Link: "/etc", Why: "link"}},
		Scanned:       42,
	}
}

// jsonRoundTrip is what the JSON encoding of the plan (before the binary
// one) gave the init.
func jsonRoundTrip(t *testing.T, p *Plan) *Plan {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var q Plan
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatal(err)
	}
	return &q
}

// TestPlanEncodingRoundTrip: the init gets the same plan as with JSON,
// for a plan with every field set, an empty one, a host one and a
// planned one.
func TestPlanEncodingRoundTrip(t *testing.T) {
	planned, err := NewPlan(homeProfile(), homeSystem())
	if err != nil {
		t.Fatal(err)
	}
	empty := &Plan{Ops: []Op{{Nodes: []Node{}}}, Writable: []string{}}
	for name, p := range map[string]*Plan{"full": fullPlan(), "empty": empty, "host": {Mode: ModeHost}, "planned": planned} {
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalPlan(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := jsonRoundTrip(t, p); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: decoded\n%+v\nwant (as with JSON)\n%+v", name, got, want)
		}
	}
}

// TestPlanEncodingMalformed: a cut, grown or corrupted plan is an error,
// never a panic.
func TestPlanEncodingMalformed(t *testing.T) {
	b, err := fullPlan().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(b) {
		if _, err := UnmarshalPlan(b[:n]); err == nil {
			t.Errorf("the plan cut to %d of %d bytes was accepted", n, len(b))
		}
	}
	if _, err := UnmarshalPlan(append(bytes.Clone(b), 0)); err == nil || !strings.Contains(err.Error(), "bad file system plan") {
		t.Errorf("a plan with a byte more: %v", err)
	}
	bad := bytes.Clone(b)
	bad[0] = 0x7f // mode -64
	if _, err := UnmarshalPlan(bad); err == nil || !strings.Contains(err.Error(), "unknown mode") {
		t.Errorf("a plan with mode -64: %v", err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0xff
		_, _ = UnmarshalPlan(c) // must not panic
	}
}

// TestPlanEncodingBounds: what UnmarshalPlan would refuse, Marshal does
// not make.
func TestPlanEncodingBounds(t *testing.T) {
	for name, p := range map[string]*Plan{
		"ops":   {Ops: make([]Op, maxPlanList+1)},
		"nodes": {Ops: []Op{{Kind: OpTmpfs, Nodes: make([]Node, maxPlanList+1)}}},
		"watch": {Watch: make([]Watch, maxPlanList+1)},
	} {
		if _, err := p.Marshal(); err == nil {
			t.Errorf("a plan with more than %d %s was marshalled", maxPlanList, name)
		}
	}
	p := &Plan{Ops: make([]Op, maxPlanList)}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if q, err := UnmarshalPlan(b); err != nil || len(q.Ops) != maxPlanList {
		t.Errorf("a plan of %d ops: %v", maxPlanList, err)
	}
}

// FuzzUnmarshalPlan: whatever the init gets as its view, decoding never
// panics, and what it accepts encodes and decodes to itself.
func FuzzUnmarshalPlan(f *testing.F) {
	for _, p := range []*Plan{fullPlan(), {Mode: ModeHost}, {}} {
		b, _ := p.Marshal()
		f.Add(b)
	}
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := UnmarshalPlan(raw)
		if err != nil {
			return
		}
		again, _ := p.Marshal()
		q, err := UnmarshalPlan(again)
		if err != nil {
			t.Fatalf("decoding the re-encoded %q: %v", again, err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("%q decoded to %+v, re-encoded to %+v", raw, p, q)
		}
	})
}

// TestFullPlanSetsEveryField: fullPlan sets every exported field, so that
// a field added to Plan (or Op, Node, Watch, Owner) without its binary
// encoding fails the round trip instead of being dropped in silence.
func TestFullPlanSetsEveryField(t *testing.T) {
	if unset := wiretest.Unset(fullPlan()); len(unset) > 0 {
		t.Errorf("fullPlan leaves %v unset: set them (and encode them in encode.go)", unset)
	}
}
