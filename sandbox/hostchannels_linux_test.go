//go:build linux

package sandbox

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The host channels besides the network that the lock-down closes on both
// backends: the caller's keyrings, and every socket family but the few a
// sandboxed command needs.

// keyringHelper is the "keyring" helper: args are the caller's session
// keyring serial, the description of a key in it and that key's serial.
func keyringHelper(args []string) int {
	if len(args) != 3 {
		fmt.Println("usage: keyring SESSION DESC KEY")
		return 2
	}
	callerSession, desc := args[0], args[1]
	key, _ := strconv.Atoi(args[2])
	sess, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false)
	switch {
	case err != nil:
		fmt.Printf("session %s\n", errName(err))
	case strconv.Itoa(sess) == callerSession:
		fmt.Println("session the-callers")
	default:
		fmt.Println("session new")
	}
	buf := make([]byte, 256)
	n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, unix.KEY_SPEC_SESSION_KEYRING, buf, 0)
	fmt.Printf("session-keys %d %s\n", n/4, errName(err))
	_, err = unix.KeyctlSearch(unix.KEY_SPEC_SESSION_KEYRING, "user", desc, 0)
	fmt.Printf("search-caller-key %s\n", errName(err))
	n, err = unix.KeyctlBuffer(unix.KEYCTL_READ, key, buf, 0)
	if err == nil && strings.Contains(string(buf[:n]), "s3cret") {
		fmt.Println("read-caller-key leaked")
	} else {
		fmt.Printf("read-caller-key %s\n", errName(err))
	}
	_, err = unix.KeyctlGetKeyringID(unix.KEY_SPEC_USER_KEYRING, false)
	fmt.Printf("user-keyring %s\n", errName(err))
	_, err = unix.KeyctlGetKeyringID(unix.KEY_SPEC_USER_SESSION_KEYRING, true)
	fmt.Printf("user-session-keyring %s\n", errName(err))
	_, err = unix.AddKey("user", "sgtest-plant", []byte("x"), unix.KEY_SPEC_USER_KEYRING)
	fmt.Printf("add-user-keyring %s\n", errName(err))
	_, err = unix.KeyctlJoinSessionKeyring("sgtest-named")
	fmt.Printf("join-named %s\n", errName(err))
	_, err = unix.RequestKey("user", desc, "", unix.KEY_SPEC_SESSION_KEYRING)
	fmt.Printf("request-key %s\n", errName(err))
	// The command's own keyring works.
	own, err := unix.AddKey("user", "sgtest-own", []byte("mine"), unix.KEY_SPEC_SESSION_KEYRING)
	if err == nil {
		n, err = unix.KeyctlBuffer(unix.KEYCTL_READ, own, buf, 0)
		if err == nil && string(buf[:n]) != "mine" {
			err = fmt.Errorf("read back %q", buf[:n])
		}
	}
	fmt.Printf("own-key %s\n", errName(err))
	return 0
}

// familiesHelper is the "families" helper: it tries one socket of each
// family and prints the outcome.
func familiesHelper() int {
	for _, c := range []struct {
		name           string
		family, typ, p int
	}{
		{"inet", unix.AF_INET, unix.SOCK_STREAM, 0},
		{"inet6", unix.AF_INET6, unix.SOCK_DGRAM, 0},
		{"netlink-route", unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE},
		{"netlink-audit", unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT},
		{"netlink-uevent", unix.AF_NETLINK, unix.SOCK_DGRAM, unix.NETLINK_KOBJECT_UEVENT},
		{"vsock", unix.AF_VSOCK, unix.SOCK_STREAM, 0},
		{"packet", unix.AF_PACKET, unix.SOCK_DGRAM, 0},
		{"alg", unix.AF_ALG, unix.SOCK_SEQPACKET, 0},
		{"xdp", unix.AF_XDP, unix.SOCK_RAW, 0},
		{"bluetooth", unix.AF_BLUETOOTH, unix.SOCK_RAW, 0},
		{"can", unix.AF_CAN, unix.SOCK_RAW, 1},
		{"tipc", unix.AF_TIPC, unix.SOCK_RDM, 0},
		{"rds", unix.AF_RDS, unix.SOCK_SEQPACKET, 0},
		{"key", unix.AF_KEY, unix.SOCK_RAW, 2},
	} {
		fmt.Printf("%s %s\n", c.name, errName(closeFD(unix.Socket(c.family, c.typ, c.p))))
	}
	// The address family as the kernel reads it (a 32-bit int) with junk
	// in the high half that reads as AF_INET.
	fd, _, e := unix.RawSyscall(unix.SYS_SOCKET, unix.AF_INET<<32|unix.AF_VSOCK, unix.SOCK_STREAM, 0)
	if e == 0 {
		unix.Close(int(fd))
		fmt.Println("vsock-highbits ok")
	} else {
		fmt.Printf("vsock-highbits %s\n", errName(e))
	}
	return 0
}

// wantFamilies is what familiesHelper prints inside every sandbox.
var wantFamilies = []string{
	"inet ok\n", "inet6 ok\n", "netlink-route ok\n",
	"netlink-audit EAFNOSUPPORT\n", "netlink-uevent EAFNOSUPPORT\n",
	"vsock EAFNOSUPPORT\n", "packet EAFNOSUPPORT\n", "alg EAFNOSUPPORT\n", "xdp EAFNOSUPPORT\n",
	"bluetooth EAFNOSUPPORT\n", "can EAFNOSUPPORT\n", "tipc EAFNOSUPPORT\n", "rds EAFNOSUPPORT\n",
	"key EAFNOSUPPORT\n", "vsock-highbits EAFNOSUPPORT\n",
}

// wantKeyring is what keyringHelper prints inside every sandbox.
var wantKeyring = []string{
	"session new\n", "session-keys 0 ok\n", "search-caller-key ENOKEY\n",
	"read-caller-key EACCES\n", "user-keyring EPERM\n", "user-session-keyring EPERM\n", "add-user-keyring EPERM\n",
	"join-named EPERM\n", "request-key EPERM\n", "own-key ok\n",
}

// callerKey puts a key holding "s3cret" in the session keyring that every
// thread of the test process possesses (its own, or the user-session
// keyring when it has none) and returns the helper's arguments. The key is
// invalidated when the test ends.
func callerKey(t *testing.T) []string {
	t.Helper()
	desc := "sgtest-caller-" + randHex(4)
	// The session keyring every thread has: the process's, or (when it has
	// none) the user-session keyring; add_key(KEY_SPEC_SESSION_KEYRING)
	// would instead give the calling thread alone a new one.
	sess, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false)
	if err != nil {
		t.Fatal(err)
	}
	key, err := unix.AddKey("user", desc, []byte("s3cret"), sess)
	if err != nil {
		t.Fatalf("add_key: %v", err)
	}
	t.Cleanup(func() {
		if _, err := unix.KeyctlInt(unix.KEYCTL_INVALIDATE, key, 0, 0, 0); err != nil {
			t.Errorf("invalidating the test key: %v", err)
		}
	})
	// The key is found from here: the sandbox must not find it.
	if _, err := unix.KeyctlSearch(unix.KEY_SPEC_SESSION_KEYRING, "user", desc, 0); err != nil {
		t.Fatalf("the caller cannot find its own key: %v", err)
	}
	return []string{strconv.Itoa(sess), desc, strconv.Itoa(key)}
}

func TestKeyringIsolation(t *testing.T) {
	args := callerKey(t)
	spec := helperSpec("keyring", args...)
	spec.Network = NetworkNone
	o := sandboxRun(t, spec)
	if o.err != nil || o.res.ExitCode != 0 {
		t.Fatalf("Run: %+v %v stderr %q", o.res, o.err, o.stderr)
	}
	mustContain(t, o.stdout, wantKeyring...)
	if strings.Contains(o.stdout, "leaked") {
		t.Errorf("the sandbox read the caller's key:\n%s", o.stdout)
	}
}

func TestSocketFamilies(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprintf("AllowUnixSockets=%v", allow), func(t *testing.T) {
			spec := helperSpec("families")
			spec.Network = NetworkNone
			spec.AllowUnixSockets = allow
			o := sandboxRun(t, spec)
			if o.err != nil || o.res.ExitCode != 0 {
				t.Fatalf("Run: %+v %v stderr %q", o.res, o.err, o.stderr)
			}
			mustContain(t, o.stdout, wantFamilies...)
		})
	}
}

func (w *idWorld) testHostChannels(t *testing.T) {
	o := sandboxRun(t, w.spec("keyring", callerKey(t)...))
	mustContain(t, o.stdout, wantKeyring...)
	if strings.Contains(o.stdout, "leaked") {
		t.Errorf("the sandbox read the caller's key:\n%s", o.stdout)
	}
	o = sandboxRun(t, w.spec("families"))
	mustContain(t, o.stdout, wantFamilies...)
}
