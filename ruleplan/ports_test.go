package ruleplan

import (
	"slices"
	"strings"
	"testing"
)

func TestFormatPorts(t *testing.T) {
	for _, c := range []struct {
		in   []uint16
		want string
	}{
		{[]uint16{47100, 47101, 47102, 47103, 47104, 47105, 47106, 47107, 47108, 47109, 47110, 47111, 47112, 47113, 47114, 47115}, "47100-47115"},
		{[]uint16{1080, 3128}, "1080,3128"},
		{[]uint16{80, 81, 82, 443}, "80-82,443"},
		{[]uint16{47103, 47100, 47101, 47102, 8080, 3128, 3129}, "3128-3129,8080,47100-47103"},
		{[]uint16{3128, 3128, 8081, 8080}, "3128,8080-8081"},
		{[]uint16{65534, 65535}, "65534-65535"},
		{nil, ""},
	} {
		if got := FormatPorts(c.in); got != c.want {
			t.Errorf("FormatPorts(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParsePorts(t *testing.T) {
	for _, c := range []struct {
		in, want, err string
	}{
		{"47100-47115", "47100-47115", ""},
		{"3128,1080", "1080,3128", ""},
		{" 80 , 81-82 ", "80-82", ""},
		{"80,80,80", "80", ""},
		{"0080", "80", ""},
		{"1-1024", "1-1024", ""},
		{"", "", "empty entry"},
		{"1,", "", "empty entry"},
		{"0", "", `"0" is not a port (1-65535)`},
		{"65536", "", `"65536" is not a port (1-65535)`},
		{"+1", "", `"+1" is not a port (1-65535)`},
		{"-1", "", `"" is not a port (1-65535)`},
		{"1-", "", `"" is not a port (1-65535)`},
		{"1-2-3", "", `"2-3" is not a port (1-65535)`},
		{"5-3", "", "range 5-3 runs backwards"},
		{"1-1025", "", "more than 1024 ports"},
	} {
		got, err := ParsePorts(c.in)
		switch {
		case c.err != "":
			if err == nil || err.Error() != c.err || got != nil {
				t.Errorf("ParsePorts(%q) = %v, %v; want the error %q", c.in, got, err, c.err)
			}
		case err != nil || FormatPorts(got) != c.want:
			t.Errorf("ParsePorts(%q) = %v (%s), %v; want %s", c.in, got, FormatPorts(got), err, c.want)
		}
	}
}

func TestSummary(t *testing.T) {
	for _, c := range []struct {
		ports []uint16
		alb   bool
		want  string
	}{
		{[]uint16{47100, 47101, 47102}, false, "non-local destinations and local UDP blocked, local TCP only to proxy ports 47100-47102"},
		{[]uint16{3128, 1080}, false, "non-local destinations and local UDP blocked, local TCP only to proxy ports 1080,3128"},
		{[]uint16{3128}, true, "non-local destinations blocked, every local port open (allow_local_binding)"},
		{nil, false, "every destination blocked"},
	} {
		p, err := Build(c.ports, c.alb)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Summary(); got != c.want {
			t.Errorf("Build(%v, %v).Summary() = %q, want %q", c.ports, c.alb, got, c.want)
		}
	}
}

// FuzzParsePorts checks `sandgate setup --ports`: an accepted list is 1 to
// MaxPorts sorted, distinct ports, never 0; FormatPorts writes it so that
// it reads back the same; the order of the entries does not matter; and
// two lists joined give the union of their ports.
func FuzzParsePorts(f *testing.F) {
	seeds := []string{"47100-47115", "3128,1080", "3128,8080-8083", "1", "65535", "0", "65536", "", ",", "1,", "5-3",
		"1-1024", "1-1025", " 80 , 81-82 ", "80-80", "1-2-3", "+1", "0080", "-1", "1-", "80,80,80"}
	for i, s := range seeds {
		f.Add(s, seeds[(i+7)%len(seeds)])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		pa, err := ParsePorts(a)
		if err != nil {
			if pa != nil {
				t.Fatalf("ParsePorts(%q) = %v with error %v", a, pa, err)
			}
			return
		}
		if len(pa) == 0 || len(pa) > MaxPorts || pa[0] == 0 {
			t.Fatalf("ParsePorts(%q) = %v", a, pa)
		}
		for i := 1; i < len(pa); i++ {
			if pa[i] <= pa[i-1] {
				t.Fatalf("ParsePorts(%q) = %v: not sorted and distinct", a, pa)
			}
		}
		text := FormatPorts(pa)
		if strings.ContainsAny(text, " \t") {
			t.Fatalf("FormatPorts(%v) = %q", pa, text)
		}
		if again, err := ParsePorts(text); err != nil || !slices.Equal(again, pa) {
			t.Fatalf("ParsePorts(%q) = %v, formatted %q, parsed %v, %v", a, pa, text, again, err)
		}
		parts := strings.Split(a, ",")
		slices.Reverse(parts)
		if rev, err := ParsePorts(strings.Join(parts, ",")); err != nil || !slices.Equal(rev, pa) {
			t.Fatalf("ParsePorts(%q) = %v, but reversed %v, %v", a, pa, rev, err)
		}

		pb, err := ParsePorts(b)
		if err != nil {
			return
		}
		union := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(pa), pb...))))
		joined := a + "," + b
		pu, err := ParsePorts(joined)
		switch {
		case err == nil:
			if !slices.Equal(pu, union) {
				t.Fatalf("ParsePorts(%q) = %v, want the union %v", joined, pu, union)
			}
		case len(union) > MaxPorts:
		default:
			t.Fatalf("ParsePorts(%q): %v, though both halves parse", joined, err)
		}
	})
}
