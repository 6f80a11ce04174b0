//go:build linux

// Command floor is the smallest Go program of sandgate's shape, for the
// start-up benchmark (go run ./bench startup): it makes the namespaces a
// netns run makes (user, net, pid, mount, ipc, uts) and runs a command in
// them, either directly ("floor exec CMD...") or through a second start of
// itself as the namespaces' init, which mounts a fresh /proc, starts CMD
// and reaps it ("floor init CMD..."). It does nothing else (no proxy, no
// firewall, no view), so its time is what any Go launcher with a Go init
// costs before doing any of sandgate's work.
package main

import (
	"os"
	"syscall"
)

func main() {
	if len(os.Args) < 3 {
		os.Stderr.WriteString("usage: floor exec|init CMD [ARG...]\n")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "exec":
		os.Exit(launch(os.Args[2:]))
	case "init":
		os.Exit(launch(append([]string{"/proc/self/exe", "_init"}, os.Args[2:]...)))
	case "_init":
		os.Exit(initMain(os.Args[2:]))
	}
	os.Exit(2)
}

// launch starts argv in new namespaces (the caller's ids mapped to
// themselves) and returns its exit status.
func launch(argv []string) int {
	uid, gid := os.Getuid(), os.Getgid()
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
		Sys: &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET | syscall.CLONE_NEWPID |
				syscall.CLONE_NEWNS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}},
			Pdeathsig:   syscall.SIGKILL,
		},
	})
	if err != nil {
		os.Stderr.WriteString("floor: " + err.Error() + "\n")
		return 125
	}
	return wait(pid)
}

// initMain is the namespaces' init: a private /proc of the new PID
// namespace, then CMD, reaped.
func initMain(argv []string) int {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_SLAVE, ""); err != nil {
		os.Stderr.WriteString("floor: making mounts private: " + err.Error() + "\n")
		return 125
	}
	if err := syscall.Mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		os.Stderr.WriteString("floor: mounting /proc: " + err.Error() + "\n")
		return 125
	}
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}})
	if err != nil {
		os.Stderr.WriteString("floor: " + err.Error() + "\n")
		return 127
	}
	return wait(pid)
}

// wait reaps pid and returns its exit status (128+N for a signal).
func wait(pid int) int {
	for {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 125
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}
