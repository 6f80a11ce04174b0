// Package starttrace prints a timestamp per start-up phase of a run on
// stderr when the environment has SANDGATE_TRACE_STARTUP=1, so that the
// start-up cost of `sandgate run` can be attributed without a tracer:
//
//	SANDGATE_TRACE_STARTUP=1 sandgate run -- true
//
// Both the sandgate process and the sandbox's init (which inherits the
// variable, as CMD does) print one line per Mark: the wall-clock time (to
// compare the two processes), the time since this process's first
// package initialisation, the time since the previous mark, and the phase.
// When the variable is unset, Mark costs one load of a boolean.
package starttrace

import (
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// EnvVar is the variable that turns the trace on (value "1").
const EnvVar = "SANDGATE_TRACE_STARTUP"

var (
	on    = os.Getenv(EnvVar) == "1"
	start = time.Now()

	mu   sync.Mutex
	last           = start
	role           = "sandgate"
	out  io.Writer = os.Stderr
)

// Enabled reports whether the trace is on.
func Enabled() bool { return on }

// SetRole names this process in its trace lines ("sandgate" unless set;
// the sandbox's init says "init").
func SetRole(r string) {
	if !on {
		return
	}
	mu.Lock()
	role = r
	mu.Unlock()
}

// Mark prints one trace line for phase (which just ended) when the trace is on.
func Mark(phase string) {
	if !on {
		return
	}
	now := time.Now()
	mu.Lock()
	since, step := now.Sub(start), now.Sub(last)
	last = now
	line := make([]byte, 0, 96)
	line = append(line, "sandgate: trace "...)
	line = now.AppendFormat(line, "15:04:05.000000")
	line = append(line, ' ')
	line = append(line, role...)
	line = append(line, " +"...)
	line = appendMs(line, since)
	line = append(line, " (+"...)
	line = appendMs(line, step)
	line = append(line, ") "...)
	line = append(line, phase...)
	line = append(line, '\n')
	mu.Unlock()
	_, _ = out.Write(line)
}

// appendMs appends d in milliseconds with three decimals and "ms".
func appendMs(b []byte, d time.Duration) []byte {
	b = strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', 3, 64)
	return append(b, "ms"...)
}
