//go:build !linux

package control

// Server serves one run's control socket; on this system there is none.
type Server struct{}

// Listen creates the run's control socket; on this system it fails with
// ErrUnsupported.
func Listen(opts Options) (*Server, error) { return nil, ErrUnsupported }

// Run returns the run's id.
func (s *Server) Run() string { return "" }

// Path returns the socket's path.
func (s *Server) Path() string { return "" }

// Serve accepts connections until Close.
func (s *Server) Serve() error { return ErrUnsupported }

// Close stops serving.
func (s *Server) Close() error { return nil }
