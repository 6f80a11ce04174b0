//go:build linux

package nftfw

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/internal/testnet"
	"github.com/sandgate/sandgate/netroute"
)

// counterRoleEnv turns the test binary into one of the two processes of
// TestCountersThroughTheInitsSocket: "parent:UID:HOW" or "init:HOW", where
// HOW is "open" (OpenCounterSocket) or "kept" (ApplySandboxCounters).
const counterRoleEnv = "SANDGATE_NFTFW_COUNTER_ROLE"

// maybeCounterRole runs the role the environment names, if any, and exits.
func maybeCounterRole() {
	role := os.Getenv(counterRoleEnv)
	switch {
	case role == "":
		return
	case strings.HasPrefix(role, "init:"):
		os.Exit(counterInit(role[len("init:"):]))
	default:
		os.Exit(counterParent(role))
	}
}

type counterReport struct {
	Refusals Refusals
	Err      string
}

// counterParent plays sandgate's parent: an ordinary user that starts the
// "init" in new user and network namespaces, takes the counter socket it
// sends, waits for it to end and reads the counters.
func counterParent(role string) int {
	uidText, how, _ := strings.Cut(role[len("parent:"):], ":")
	uid, err := strconv.Atoi(uidText)
	if err != nil {
		return 2
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fail("setgroups", err)
	}
	if err := syscall.Setresgid(uid, uid, uid); err != nil {
		return fail("setresgid", err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fail("setresuid", err)
	}
	// Changing uid made this process undumpable, which would keep it
	// from writing its child's uid_map.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
		return fail("dumpable", err)
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail("socketpair", err)
	}
	end := os.NewFile(uintptr(pair[1]), "init-end")
	// /proc/self/exe: the test binary's directory may be closed to this user.
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = []string{counterRoleEnv + "=init:" + how, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.ExtraFiles = []*os.File{end}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
	}
	if err := cmd.Start(); err != nil {
		return fail("starting the init", err)
	}
	end.Close()
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(pair[0], buf, oob, 0)
	if err != nil {
		return fail("receiving the socket", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return fail("the init's message", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return fail("the init's descriptor", err)
	}
	if err := cmd.Wait(); err != nil {
		return fail("the init", err)
	}
	r, err := ReadSandboxRefusals(os.NewFile(uintptr(fds[0]), "counters"))
	rep := counterReport{Refusals: r}
	if err != nil {
		rep.Err = err.Error()
	}
	json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

// counterInit plays the sandbox's init: it sets the transparent path up in
// its namespaces, sends the counter socket (opened after the table, or the
// one the table was installed through, as how says), has one datagram
// refused, drops every capability and ends.
func counterInit(how string) int {
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fail("lo up: "+string(out), err)
	}
	var f *os.File
	var err error
	if how == "kept" {
		f, err = ApplySandboxCounters("", SandboxPlan{TCPPort: 40001})
	} else if err = ApplySandbox("", SandboxPlan{TCPPort: 40001}); err == nil {
		f, err = OpenCounterSocket()
	}
	if err != nil {
		return fail("apply and counter socket", err)
	}
	if err := netroute.DefaultViaLoopback(""); err != nil {
		return fail("route", err)
	}
	if err := unix.Sendmsg(3, []byte{0}, unix.UnixRights(int(f.Fd())), nil, 0); err != nil {
		return fail("sending the socket", err)
	}
	c, err := net.Dial("udp", "192.0.2.1:443")
	if err == nil {
		_, err = c.Write([]byte("quic?"))
	}
	if err == nil {
		return fail("UDP was not refused", nil)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var none [2]unix.CapUserData
	if err := unix.Capset(&hdr, &none[0]); err != nil {
		return fail("dropping capabilities", err)
	}
	return 0
}

func fail(what string, err error) int {
	fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
	return 1
}

// TestCountersThroughTheInitsSocket plays the netns backend's two sides as
// an ordinary user: the init opens the counter socket in the sandbox's
// namespaces (or keeps the one it installed the table through) and hands
// it over; the parent, outside, reads the counters through it after the
// init has dropped its capabilities and ended.
func TestCountersThroughTheInitsSocket(t *testing.T) {
	testnet.RequirePrivileged(t)
	for _, how := range []string{"open", "kept"} {
		t.Run(how, func(t *testing.T) { testCountersThroughTheInitsSocket(t, how) })
	}
}

func testCountersThroughTheInitsSocket(t *testing.T, how string) {
	const uid = 4000311
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = []string{counterRoleEnv + "=parent:" + strconv.Itoa(uid) + ":" + how, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Dir = "/"
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%v: %s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the parent did not finish: %s", stderr.String())
	}
	var rep counterReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %q %s", err, stdout.String(), stderr.String())
	}
	if rep.Err != "" || rep.Refusals != (Refusals{UDP: 1}) {
		t.Errorf("the parent read %+v, %s; want one refused datagram", rep.Refusals, rep.Err)
	}
}
