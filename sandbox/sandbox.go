// Package sandbox runs a command so that its network egress goes only through
// sandgate's policy-enforcing HTTP and SOCKS5 proxy, enforced by the kernel.
//
// On Linux the netns backend re-executes the sandgate binary as the first
// process (PID 1) of new user, network, PID, mount, IPC and UTS namespaces.
// That init brings up the namespace's private loopback, mounts a fresh /proc,
// creates the proxy's two listening sockets inside the namespace and hands
// them to the parent by fd passing, then starts the command with every
// capability dropped, no_new_privs set, a fresh empty session keyring and
// a seccomp filter that lets it create only AF_INET, AF_INET6 and
// NETLINK_ROUTE sockets (AF_UNIX with AllowUnixSockets; stream ones whose
// every connect the init decides and makes, with UnixSockets) and refuses io_uring
// and the keyrings its uid shares with other processes. The parent stays in the host's network
// namespace and serves the proxy on those sockets, so the command's only way
// out is through the proxy's policy.
//
// Every process of a run dies with the process that called Run, however
// that process dies (kill -9 included): the init, PID 1 of the run's PID
// namespace, has a parent-death signal, kept across the identity
// backend's credential change, and checks that its parent is still there
// each time that signal was not armed.
//
// A program using this package must call MaybeInit (or InitMain, to
// dispatch roles of its own too) first thing in main: Run re-executes the
// program as the sandbox's init (Linux) or launcher (Windows).
//
// Details of the netns backend:
//   - The caller's uid and gid are mapped to themselves inside a new user
//     namespace, root callers included; setgroups is denied.
//   - Only stdin, stdout and stderr reach the command: every other inherited
//     descriptor is closed on exec. When stdin is a terminal the command runs
//     on a pseudo-terminal of its own (new session, controlling terminal)
//     that sandgate relays (stdout and stderr too when they are terminals),
//     so the command cannot push input into the user's terminal. Otherwise
//     the streams are passed through untouched and the sandbox runs in a
//     process group of its own: terminal signals reach sandgate, which
//     forwards them once.
//   - socketpair(AF_UNIX) stays allowed: an anonymous pair reaches nothing
//     outside. Raw and packet sockets need CAP_NET_RAW, which the command
//     does not have, and in a network namespace with only lo they would have
//     nowhere to go anyway.
//   - NetworkFull keeps every other restriction (namespaces, capabilities,
//     seccomp) and the caller's environment unchanged.
//
// The identity backend (root callers, once `sandgate setup` has installed
// the sandbox users and their firewall rules) runs CMD as the offline
// sandbox user (NetworkProxy, NetworkNone), whose sockets the rules confine
// to the loopback proxy ports, or as the online user (NetworkFull), in new
// PID, mount, IPC and UTS namespaces but on the host's network. The proxy
// listens in sandgate on two free ports of the reserved set and requires
// per-run credentials, which the proxy URLs given to CMD carry. CMD has no
// supplementary groups, no capabilities and no_new_privs; Landlock (ABI 6)
// closes the host's abstract unix sockets and signals to processes outside
// the sandbox; the seccomp filter is the netns backend's. For the run, the
// sandbox group gets rwx on CMD's working directory through a POSIX ACL
// entry (Spec.KeepDirGrant keeps it); its parent directories must already
// let the sandbox user search them. Before it takes that grant, every
// identity run takes back the grants of runs that did not end cleanly
// (killed, or the machine stopped), wherever they are, and says so through
// Spec.Notify (setup.RepairGrants). A setup that does not fit the run (see
// setup.Drift, or rules missing after a reboot) is reconciled first and
// reported in one line (Spec.Notify); it is never bypassed. From before CMD
// starts until the run has ended, a run of the offline user keeps the
// rules under watch (nftfw.Watch, netlink notifications): rules that do not
// hold when the watch starts keep CMD from starting; rules deleted or
// changed while it runs get the sandbox killed at once, and the run fails
// with an *UnavailableError saying what changed (Spec.Notify is told
// first). Identity runs need root until sandgate has a privileged launcher.
package sandbox

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/fsview"
	"github.com/sandgate/sandgate/inspect"
	"github.com/sandgate/sandgate/proxy"
	"github.com/sandgate/sandgate/setup"
	"github.com/sandgate/sandgate/trustenv"
)

// Network selects what network the command gets.
type Network int

const (
	// NetworkProxy (the default) gives the command a private loopback and
	// sandgate's HTTP and SOCKS5 proxy on it; nothing else.
	NetworkProxy Network = iota
	// NetworkNone gives the command only a private loopback.
	NetworkNone
	// NetworkFull leaves the command on the host's network, without a
	// proxy; every other restriction still applies.
	NetworkFull
)

// String returns the name used on the command line ("proxy", "none", "full").
func (n Network) String() string {
	switch n {
	case NetworkProxy:
		return "proxy"
	case NetworkNone:
		return "none"
	case NetworkFull:
		return "full"
	}
	return "unknown"
}

// Backend selects how the sandbox is enforced.
type Backend int

const (
	// BackendAuto uses netns when the kernel lets it create the sandbox's
	// namespaces, else identity when it is set up (and the caller is
	// root), else fails with ErrUnavailable explaining both. The command
	// never runs twice: the fallback happens only before it started.
	BackendAuto Backend = iota
	// BackendNetns uses unprivileged Linux namespaces.
	BackendNetns
	// BackendIdentity uses the sandbox users and firewall rules installed
	// by `sandgate setup`; it needs root.
	BackendIdentity
)

// String returns the name used on the command line ("auto", "netns", "identity").
func (b Backend) String() string {
	switch b {
	case BackendAuto:
		return "auto"
	case BackendNetns:
		return "netns"
	case BackendIdentity:
		return "identity"
	}
	return "unknown"
}

// Spec describes one sandboxed run.
type Spec struct {
	// Args is the command and its arguments. Args[0] is looked up in the
	// PATH of Env when it contains no slash.
	Args []string
	// Env is the command's environment before the proxy variables are
	// merged (nil: os.Environ()). With NetworkProxy every inherited proxy
	// variable is replaced by sandgate's (see package proxyenv); with
	// NetworkNone inherited proxy variables are removed; with NetworkFull
	// Env is passed unchanged. The identity backend also sets HOME, USER
	// and LOGNAME to the sandbox user's, puts the proxy credentials in the
	// proxy URLs (and SANDGATE_SOCKS_USER, SANDGATE_SOCKS_PASSWORD), and
	// sets NO_PROXY and no_proxy empty unless AllowLocalBinding.
	Env []string
	// Dir is the working directory ("" = the current one).
	Dir string
	// Stdin, Stdout and Stderr are the command's standard streams (nil: the
	// process's own). When Stdin is a terminal (*os.File), the command runs
	// on a new pseudo-terminal in its own session, and Stdout/Stderr that
	// are terminals are served through it too; other streams are passed
	// straight through.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// InputHold, when set, pauses the relay of the user's terminal to
	// CMD's pseudo-terminal while it is locked (sandgate's --ask prompt
	// holds it and reads its answer from the terminal itself, so that no
	// key of the answer reaches CMD). nil: the relay never pauses.
	InputHold *sync.Mutex
	// Network selects the command's network.
	Network Network
	// Backend selects the enforcement mechanism.
	Backend Backend
	// Gate decides and dials for the proxy (required for NetworkProxy).
	//
	// For a policy that changes while the run goes on, set Gate.Live (an
	// egress.NewLive of the starting policy; Gate.Policy is then unused)
	// and keep it: its Allow and Deny are in force at once for every new
	// connection and DNS answer of the run, each change has a new
	// generation that later audit events carry (Event.Gen), and a Deny
	// cuts the run's open tunnels to what it now denies (audit reason
	// "cut-denied"). For a decision by the caller about destinations that
	// are merely not on the allow list, set Gate.Ask (an egress.Asker
	// whose Decider may be a decide.Func); an allow of scope "run" is
	// added to Gate.Live. `sandgate run --control` serves the same Live
	// on a control socket (package control). See ExampleRun_livePolicy.
	Gate *egress.Gate
	// Audit receives every proxy event (nil: none are recorded).
	Audit audit.Sink
	// ProxyLimits bounds the proxy's resources (zero fields: defaults).
	ProxyLimits proxy.Limits
	// Authority is the run's CA for TLS inspection of the hosts whose
	// requests the policy decides one by one (or Secrets binds); nil: a
	// connection to such a host is refused, never passed uninspected.
	Authority *inspect.Authority
	// UpstreamRoots verifies inspected hosts' certificates (nil: the
	// system pool).
	UpstreamRoots *x509.CertPool
	// Secrets rewrites or refuses requests that carry a secret's
	// placeholder (nil: none).
	Secrets proxy.Secrets
	// AllowLocalBinding lets the command reach local (loopback) services.
	// The netns backend's loopback is the sandbox's own and always open;
	// the identity backend needs setup rules installed with
	// allow_local_binding (reconciled for a root caller).
	AllowLocalBinding bool
	// KeepDirGrant leaves the identity backend's ACL grant on the working
	// directory in place after the run.
	KeepDirGrant bool
	// AllowUnixSockets lifts the seccomp rule that refuses
	// socket(AF_UNIX, ...). Unix path sockets lead out of the sandbox
	// (docker.sock, ssh-agent, other forwarders): use with care.
	AllowUnixSockets bool
	// UnixSockets (absolute paths, Linux) are the unix sockets the command
	// may connect to, and no other path, abstract or unnamed unix address
	// (--allow-unix-socket): the sandbox's init makes every connect(2) of
	// the command itself, to the socket each path named when the run
	// started. Ignored with AllowUnixSockets, which allows them all. On
	// both Linux backends the connection is made as the caller (on the
	// identity backend: uid 0 without capabilities).
	UnixSockets []string
	// Transparent gives a NetworkProxy run the transparent path (issue
	// 11): every TCP connection CMD makes to a non-local address and every
	// DNS query, whether or not CMD knows about the proxy, is decided by
	// Gate and recorded in Audit like a proxied one; other UDP is refused.
	// The identity backend needs a cgroup v2 of its own for the run, two
	// more reserved ports, and a route towards the synthetic range (a
	// default route), and the setup of version 3 or later (which lets the
	// redirected DNS over UDP reach the stub).
	Transparent bool

	// Executable is the sandgate binary re-executed as the sandbox's init
	// ("" = /proc/self/exe). It must call MaybeInit or InitMain first
	// thing in main.
	Executable string
	// Logf receives the proxy's log and a message when the proxy fails
	// during the run (nil: silent). The normal path logs nothing.
	Logf func(format string, args ...any)
	// Notify receives sandgate's own messages to the user, one line each
	// without a newline: why CMD could not be executed, the identity setup
	// reconciled for the run, a directory grant that could not be taken
	// back (nil: they are dropped). The library never writes them to CMD's
	// streams.
	Notify func(msg string)

	// View is the command's file system view, as the caller's profile
	// (package fsview; its paths absolute). nil, or Mode fsview.ModeHost,
	// means no file system restriction. Run plans it for the backend (the
	// identity backend gives the sandbox user a fresh private home of the
	// run's own): a path that cannot be planned fails the run with a
	// *fsview.PathError before anything starts. The init applies the plan
	// before CMD starts; a kernel that cannot enforce it fails the run
	// with an *UnavailableError (errors.Is(err, fsview.ErrUnavailable)
	// holds too): CMD never runs with a weaker view than asked. Result
	// says which never-writable paths changed during the run anyway.
	View *fsview.Profile

	// TrustPEM are extra CA certificates CMD must trust (PEM, certificates
	// only: a block of another type, a private key in particular, fails
	// the run). On Linux CMD sees the host's system trust bundles (and
	// JVM trust stores) with them added, read-only, and its environment
	// points the common tools at files holding them (package trustenv:
	// SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE, PIP_CERT,
	// CURL_CA_BUNDLE, GIT_SSL_CAINFO, CARGO_HTTP_CAINFO, AWS_CA_BUNDLE and
	// a trust store in JAVA_TOOL_OPTIONS), whatever the network mode.
	// Other platforms refuse it (*UnavailableError).
	TrustPEM []byte

	// leaser, for tests, says where the identity backend's setup lives
	// and how it is checked and reconciled (nil: the product's).
	leaser *setup.Leaser
}

// setupLeaser is the Leaser of the identity backend's setup.
func (spec Spec) setupLeaser() setup.Leaser {
	if spec.leaser == nil {
		return setup.Leaser{}
	}
	return *spec.leaser
}

// setupNeed is what the run needs of the identity backend's setup.
func (spec Spec) setupNeed() setup.Need {
	return setup.Need{Online: spec.Network == NetworkFull, AllowLocalBinding: spec.AllowLocalBinding}
}

// notifier is spec.Notify, or a function that drops the message.
func (spec Spec) notifier() func(string) {
	if spec.Notify == nil {
		return func(string) {}
	}
	return spec.Notify
}

// Result is the outcome of a run.
type Result struct {
	// ExitCode is the command's exit status: its own, 128+N if it died of
	// signal N, 126 if it could not be executed, 127 if it was not found.
	ExitCode int
	// ProxyErr is set when the proxy failed during the run; the command's
	// connections failed from then on.
	ProxyErr error
	// ViewChanged are the never-writable paths of the file system view
	// that the view could not pin and that changed during the run
	// (fsview.Plan.Changed): created where they did not exist, or
	// symbolic links replaced. The caller should warn about each.
	ViewChanged []string
	// ViewFindings are what CMD created in the writable roots that makes
	// code run outside the sandbox later and that the view could not
	// protect, not existing when it was planned (fsview.Plan.AfterRun):
	// executable hooks of new git directories, already made
	// non-executable (Disarmed), variables of new git configuration files
	// that run programs, new code files. The caller should warn about each
	// (Finding.String); ViewChanged does not repeat them.
	ViewFindings []fsview.Finding
}

// check validates the platform-neutral parts of a Spec.
func (spec Spec) check() error {
	switch spec.Network {
	case NetworkProxy:
		if spec.Gate == nil {
			return errors.New("NetworkProxy needs an egress Gate")
		}
	case NetworkNone, NetworkFull:
	default:
		return fmt.Errorf("unknown network mode %d", spec.Network)
	}
	if len(spec.Args) == 0 || spec.Args[0] == "" {
		return errors.New("no command given")
	}
	if len(spec.TrustPEM) > 0 {
		if !trustSupported {
			return &UnavailableError{Reason: "giving CMD extra CA certificates to trust (TLS inspection) is not supported on this platform yet", Fix: "inspect no host (no TLS inspection) on this platform"}
		}
		if _, err := trustenv.ParsePEM(spec.TrustPEM); err != nil {
			return fmt.Errorf("the certificates CMD must trust (TrustPEM): %w", err)
		}
	}
	if spec.View != nil && spec.View.Mode != fsview.ModeHost && !viewSupported {
		return &UnavailableError{Reason: "the file system view (--fs " + spec.View.Mode.String() + ") is not supported on this platform yet", Fix: "use --fs host"}
	}
	return nil
}
