package starttrace

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// trace turns the trace on into a buffer for the test.
func trace(t *testing.T) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	oldOn, oldOut, oldRole := on, out, role
	on, out = true, &buf
	t.Cleanup(func() { on, out, role = oldOn, oldOut, oldRole })
	return &buf
}

func TestMarkOff(t *testing.T) {
	buf := trace(t)
	on = false
	SetRole("init")
	Mark("nothing")
	if buf.Len() != 0 || Enabled() {
		t.Errorf("with the trace off: %q written, Enabled %v", buf.String(), Enabled())
	}
	if role == "init" {
		t.Error("SetRole changed the role with the trace off")
	}
}

func TestMarkLines(t *testing.T) {
	buf := trace(t)
	SetRole("init")
	Mark("first phase")
	time.Sleep(2 * time.Millisecond)
	Mark("second")
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines: %q", len(lines), buf.String())
	}
	re := regexp.MustCompile(`^sandgate: trace \d\d:\d\d:\d\d\.\d{6} init \+(\d+\.\d{3})ms \(\+(\d+\.\d{3})ms\) (.+)$`)
	for i, want := range []string{"first phase", "second"} {
		m := re.FindStringSubmatch(lines[i])
		if m == nil || m[3] != want {
			t.Errorf("line %d = %q, want the format of a trace line for %q", i, lines[i], want)
		}
	}
	if m := re.FindStringSubmatch(lines[1]); m != nil {
		if step, _ := strconv.ParseFloat(m[2], 64); step < 2 {
			t.Errorf("the second step took %sms, want at least the 2 ms slept", m[2])
		}
	}
}

func TestAppendMs(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0.000ms"},
		{999 * time.Nanosecond, "0.000ms"},
		{1500 * time.Microsecond, "1.500ms"},
		{12*time.Millisecond + 345*time.Microsecond, "12.345ms"},
		{2 * time.Second, "2000.000ms"},
	} {
		if got := string(appendMs(nil, tc.d)); got != tc.want {
			t.Errorf("appendMs(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
