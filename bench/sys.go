//go:build linux

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard limit and says what
// the limits are. Child processes inherit the raised limit.
func raiseNoFile(w io.Writer) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintf(w, "RLIMIT_NOFILE: cannot read: %v\n", err)
		return
	}
	old := lim.Cur
	lim.Cur = lim.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintf(w, "RLIMIT_NOFILE: cannot raise soft limit %d to hard limit %d: %v\n", old, lim.Max, err)
		return
	}
	fmt.Fprintf(w, "RLIMIT_NOFILE: soft %d (was %d), hard %d; every process of this benchmark gets the same\n", lim.Cur, old, lim.Max)
}

// noFileLimit returns the current soft RLIMIT_NOFILE (0 if unknown).
func noFileLimit() uint64 {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) != nil {
		return 0
	}
	return lim.Cur
}

func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "linux"
	}
	return "linux " + unix.ByteSliceToString(u.Release[:])
}

// procMem is the memory figures of a process from /proc/PID/status, in KiB.
type procMem struct {
	RSS, Anon, Threads int64
}

func readProcMem(pid int) (procMem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMem{}, err
	}
	defer f.Close()
	var m procMem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			m.RSS = n
		case "RssAnon":
			m.Anon = n
		case "Threads":
			m.Threads = n
		}
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return m, sc.Err()
}

// fdCounts is what the open file descriptors of a process are.
type fdCounts struct {
	Total, Sockets, Pipes, Other int
}

func (c fdCounts) String() string {
	return fmt.Sprintf("%d fds (%d sockets, %d pipes, %d other)", c.Total, c.Sockets, c.Pipes, c.Other)
}

func readFDs(pid int) (fdCounts, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fdCounts{}, err
	}
	var c fdCounts
	for _, e := range ents {
		c.Total++
		l, err := os.Readlink(dir + "/" + e.Name())
		switch {
		case err != nil:
			c.Other++
		case strings.HasPrefix(l, "socket:"):
			c.Sockets++
		case strings.HasPrefix(l, "pipe:"):
			c.Pipes++
		default:
			c.Other++
		}
	}
	return c, nil
}

// procNoFile returns the soft RLIMIT_NOFILE of another process.
func procNoFile(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("Max open files")) {
			f := strings.Fields(string(line[len("Max open files"):]))
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// limitOf names the resource limit err reports, or "" when it is not one.
func limitOf(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, syscall.EMFILE):
		return "EMFILE: the process ran out of file descriptors (RLIMIT_NOFILE)"
	case errors.Is(err, syscall.ENFILE):
		return "ENFILE: the system-wide file table is full"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "EADDRNOTAVAIL: out of local ephemeral ports (TIME_WAIT?)"
	case errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.ENOMEM):
		return "ENOBUFS/ENOMEM: the kernel is out of memory for sockets"
	}
	s := err.Error()
	for _, k := range []string{"too many open files", "cannot assign requested address"} {
		if strings.Contains(s, k) {
			return k
		}
	}
	return ""
}

// loadAvg returns the 1, 5 and 15 minute load averages.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// cpuSelf returns the user+system CPU seconds this process used so far.
func cpuSelf() float64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// cpuOf returns the user+system CPU seconds process pid used so far, from
// /proc/PID/stat (in USER_HZ = 100 ticks per second), or 0.
func cpuOf(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	// After the command: state is field 3, utime field 14, stime field 15.
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(ut+st) / 100
}
