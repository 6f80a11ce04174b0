package sandbox

import (
	"fmt"
	"net"

	"github.com/sandgate/sandgate/proxy"
	"github.com/sandgate/sandgate/proxyenv"
	"github.com/sandgate/sandgate/setup"
)

// This file is what the identity backends of every platform share: the
// repair of what earlier runs left behind, and the proxy of a run whose
// sandbox user shares the host's loopback with every other local user.

// credentialedEnv reserves the run's two proxy ports from the lease and
// makes its credentials, and returns env with the proxy settings that
// carry them (proxyenv.WithCredentials: NO_PROXY empty unless alb, exe
// for GIT_SSH_COMMAND; no JVM proxy properties when javaDirect: the
// transparent path decides the JVM's connections, which could not present
// the credentials) and the proxy's plan.
func credentialedEnv(lease *setup.Lease, env []string, alb bool, exe string, javaDirect bool) ([]string, runPlan, error) {
	listeners, err := lease.ReservePorts()
	if err != nil {
		return nil, runPlan{}, setupError(err)
	}
	fail := func(err error) ([]string, runPlan, error) {
		closeListeners(listeners)
		return nil, runPlan{}, err
	}
	ports := []uint16{listenerPort(listeners[0]), listenerPort(listeners[1])}
	if !lease.Covers(ports) { // cannot happen: the ports come from the marker
		return fail(&UnavailableError{Reason: fmt.Sprintf("the installed rules do not cover proxy ports %v", ports)})
	}
	pw, err := proxyenv.NewPassword()
	if err != nil {
		return fail(err)
	}
	creds := &proxy.Credentials{User: proxyenv.CredentialsUser, Password: pw}
	env, err = proxyenv.WithCredentials(env, proxyenv.CredentialedRun{
		HTTPPort: ports[0], SOCKSPort: ports[1], User: creds.User, Password: creds.Password,
		AllowLocalBinding: alb, Executable: exe, JavaDirect: javaDirect,
	})
	if err != nil {
		return fail(err)
	}
	return env, runPlan{listeners: listeners, creds: creds}, nil
}

// repairGrants takes back, first thing in a run, the directory grants that
// identity runs which did not end cleanly left behind (their records no
// run holds), wherever they are, and tells notify what it did.
func repairGrants(l setup.Leaser, notify func(string)) {
	for _, msg := range setup.RepairGrants(l.Options.GrantRecords()) {
		notify(msg)
	}
}

// listenerPort is the TCP port ln listens on.
func listenerPort(ln net.Listener) uint16 {
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}
