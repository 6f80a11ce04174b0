package control

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/audit"
	"github.com/sandgate/sandgate/egress"
)

// Limits of one server.
const (
	maxClients  = 16               // connections served at once; more are closed at once
	idleTimeout = 10 * time.Minute // a connection that sends nothing for this long is closed
)

// Server serves one run's control socket.
type Server struct {
	ln      *net.UnixListener
	path    string
	run     string
	live    *egress.Live
	command []string
	audit   audit.Sink
	logf    func(string, ...any)
	uid     int

	slots chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  bool
}

// Listen creates the run's socket, DIR/RUN.sock with mode 0600, in a
// directory EnsureDir accepts. A socket of that name that still answers is
// another run's (an error); one that does not is left over from a run that
// died, and is replaced.
func Listen(opts Options) (*Server, error) {
	if opts.Live == nil {
		return nil, errors.New("control socket: no live policy to control")
	}
	dir := opts.Dir
	if dir == "" {
		d, err := Dir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	run := opts.Run
	if run == "" {
		id, err := NewRunID()
		if err != nil {
			return nil, err
		}
		run = id
	} else if err := CheckRunID(run); err != nil {
		return nil, err
	}
	if err := EnsureDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, run+sockSuffix)
	if len(path) >= len(unix.RawSockaddrUnix{}.Path) {
		return nil, fmt.Errorf("control socket path %s is %d bytes, longer than unix sockets allow; set XDG_RUNTIME_DIR to a shorter directory", path, len(path))
	}
	if err := removeStale(path, run); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	s := &Server{ln: ln, path: path, run: run, live: opts.Live, command: opts.Command,
		audit: opts.Audit, logf: opts.Logf, uid: os.Geteuid(),
		slots: make(chan struct{}, maxClients), conns: make(map[net.Conn]struct{})}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	return s, nil
}

// removeStale removes the socket at path when no one answers on it.
func removeStale(path, run string) error {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("run id %q %w by a running sandbox: choose another, or let sandgate pick one (--control without --control-id)", run, ErrRunInUse)
	}
	if !errors.Is(err, unix.ECONNREFUSED) {
		return fmt.Errorf("control socket %s exists and does not answer: %w; remove it", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing the stale control socket: %w", err)
	}
	return nil
}

// Run returns the run's id.
func (s *Server) Run() string { return s.run }

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Serve accepts connections until Close; it returns nil after Close.
func (s *Server) Serve() error {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			s.mu.Lock()
			done := s.done
			s.mu.Unlock()
			if done {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("control socket: %w", err)
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.logf("control: %d connections are open already; closing a new one", maxClients)
			c.Close()
			continue
		}
		if !s.track(c) {
			<-s.slots
			c.Close()
			return nil
		}
		go s.serveConn(c)
	}
}

// Close stops serving, closes every connection, removes the socket and
// waits for the connections' goroutines. Closing twice does nothing more.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return nil
	}
	s.done = true
	cs := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	err := s.ln.Close() // removes the socket file
	for _, c := range cs {
		c.Close()
	}
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	return nil
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	<-s.slots
	s.wg.Done()
}

// serveConn checks the peer and answers its requests, one per line.
func (s *Server) serveConn(c *net.UnixConn) {
	defer s.untrack(c)
	defer c.Close()
	uid, pid, err := peerCred(c)
	if err != nil {
		s.logf("control: refused a connection whose peer cannot be identified: %v", err)
		return
	}
	if uid != s.uid && uid != 0 {
		s.logf("control: refused a connection from uid %d (pid %d): only uid %d and root may control run %s", uid, pid, s.uid, s.run)
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write(EncodeResponse(Response{Error: fmt.Sprintf("uid %d may not control run %s", uid, s.run), Kind: KindServer}))
		return
	}
	br := bufio.NewReaderSize(c, MaxLine)
	for {
		c.SetReadDeadline(time.Now().Add(idleTimeout))
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			_, gen := s.live.Current()
			c.Write(EncodeResponse(Response{Gen: gen, Error: fmt.Sprintf("request line longer than %d bytes", MaxLine), Kind: KindRequest}))
			return
		}
		if err != nil {
			return // EOF, idle or closed: a partial last line is not a request
		}
		resp := s.handle(line)
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(EncodeResponse(resp)); err != nil {
			return
		}
	}
}

// handle answers one request line.
func (s *Server) handle(line []byte) Response {
	req, err := ParseRequest(line)
	if err != nil {
		_, gen := s.live.Current()
		return Response{Gen: gen, Error: err.Error(), Kind: KindRequest}
	}
	switch req.Op {
	case OpShow:
		gen, allow, deny := s.live.Show()
		return Response{OK: true, Gen: gen, Run: s.run, PID: os.Getpid(), Command: s.command, Allow: allow, Deny: deny}
	case OpAllow, OpDeny:
		change, reason := s.live.Allow, ReasonAllowAdded
		if req.Op == OpDeny {
			change, reason = s.live.Deny, ReasonDenyAdded
		}
		gen, err := change(req.Entry)
		if err != nil {
			_, cur := s.live.Current()
			return Response{Gen: cur, Error: err.Error(), Kind: KindEntry}
		}
		if s.audit != nil {
			s.audit.Record(audit.Event{Time: time.Now(), Proto: ProtoControl, Host: req.Entry,
				Decision: DecisionUpdate, Reason: reason, Gen: gen,
				Text: fmt.Sprintf("%s %s added through the control socket (generation %d)", req.Op, req.Entry, gen)})
		}
		return Response{OK: true, Gen: gen}
	}
	_, gen := s.live.Current()
	return Response{Gen: gen, Error: "unknown request", Kind: KindRequest}
}

// peerCred returns the uid and pid of the process at the other end of c, as
// the kernel recorded them when it connected.
func peerCred(c *net.UnixConn) (uid, pid int, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *unix.Ucred
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		cred, gerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, 0, err
	}
	if gerr != nil {
		return 0, 0, fmt.Errorf("SO_PEERCRED: %w", gerr)
	}
	return int(cred.Uid), int(cred.Pid), nil
}
