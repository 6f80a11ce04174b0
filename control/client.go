package control

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// dialTimeout bounds connecting to a control socket.
const dialTimeout = 2 * time.Second

// requestTimeout bounds one request and its answer.
const requestTimeout = 30 * time.Second

// UnknownRunError says that no running sandbox has the run id asked for.
type UnknownRunError struct {
	Run   string
	Known []string // the ids of the runs that answer, sorted
}

func (e *UnknownRunError) Error() string {
	if len(e.Known) == 0 {
		return fmt.Sprintf("no running sandbox has the run id %q, and none has a control socket (start one with sandgate run --control)", e.Run)
	}
	return fmt.Sprintf("no running sandbox has the run id %q; running: %s", e.Run, strings.Join(e.Known, ", "))
}

// Client is one connection to a run's control socket.
type Client struct {
	c  net.Conn
	br *bufio.Reader
}

// Dial connects to run's socket in dir ("" = Dir()). A run with no socket,
// or whose socket no one answers on (a run that died), is an
// *UnknownRunError listing the runs that answer.
func Dial(dir, run string) (*Client, error) {
	dir, err := dirOrDefault(dir)
	if err != nil {
		return nil, err
	}
	if err := CheckRunID(run); err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("unix", filepath.Join(dir, run+sockSuffix), dialTimeout)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			known, _ := List(dir)
			return nil, &UnknownRunError{Run: run, Known: known}
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("connecting to run %s: %w (only the user who started a run, and root, may control it)", run, err)
		}
		return nil, fmt.Errorf("connecting to run %s: %w", run, err)
	}
	return &Client{c: c, br: bufio.NewReaderSize(c, 64<<10)}, nil
}

// Do sends req and returns the server's answer. A refused request is a
// Response with OK false, not an error; an error means the exchange itself
// failed.
func (cl *Client) Do(req Request) (Response, error) {
	line := req.String()
	if _, err := ParseRequest([]byte(line)); err != nil {
		return Response{}, err
	}
	cl.c.SetDeadline(time.Now().Add(requestTimeout))
	if _, err := cl.c.Write([]byte(line + "\n")); err != nil {
		return Response{}, fmt.Errorf("sending %q: %w", req.Op, err)
	}
	var buf []byte
	for {
		part, err := cl.br.ReadSlice('\n')
		buf = append(buf, part...)
		if len(buf) > MaxResponse {
			return Response{}, fmt.Errorf("the answer is longer than %d bytes", MaxResponse)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return Response{}, fmt.Errorf("reading the answer to %q: %w", req.Op, err)
		}
		break
	}
	return DecodeResponse(buf)
}

// Close closes the connection.
func (cl *Client) Close() error { return cl.c.Close() }

// List returns the ids of the runs in dir ("" = Dir()) whose sockets
// answer, sorted. Sockets no one answers on (left by runs that died) are
// removed. A missing directory is an empty list.
func List(dir string) ([]string, error) {
	dir, err := dirOrDefault(dir)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if errors.Is(err, os.ErrPermission) {
		return nil, fmt.Errorf("listing runs: %w (only the user who started a run, and root, may list it)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("listing runs: %w", err)
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), sockSuffix)
		if !ok || e.Type()&os.ModeSocket == 0 || CheckRunID(id) != nil {
			continue
		}
		p := filepath.Join(dir, e.Name())
		c, err := net.DialTimeout("unix", p, dialTimeout)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				os.Remove(p)
			}
			continue
		}
		c.Close()
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

func dirOrDefault(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	return Dir()
}
