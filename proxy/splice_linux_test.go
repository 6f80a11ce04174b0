package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPipePool(t *testing.T) {
	p := newPipePool(2, 100*time.Millisecond)
	defer p.close()
	a, b := p.get(), p.get()
	if a == nil || b == nil {
		t.Fatal("pool of 2 gave no pipe")
	}
	idA, idB := pipeID(a.r), pipeID(b.r)
	if idA == 0 || idB == 0 || idA == idB {
		t.Fatalf("pipe identities %d, %d", idA, idB)
	}
	if a.size < 64<<10 {
		t.Errorf("pipe capacity %d", a.size)
	}
	if c := p.get(); c != nil {
		t.Fatal("pool of 2 gave a third pipe")
	}
	p.put(a, true)
	if c := p.get(); c != a {
		t.Error("an idle pipe was not reused")
	}
	p.put(a, false) // may hold bytes: closed, not kept
	if open, idle := p.stats(); open != 1 || idle != 0 {
		t.Errorf("after giving back a used pipe: %d open, %d idle; want 1, 0", open, idle)
	}
	if pipeID(a.r) == idA {
		t.Error("a pipe given back with bytes in it is still open")
	}
	p.put(b, true)
	if open, idle := p.stats(); open != 1 || idle != 1 {
		t.Errorf("%d open, %d idle; want 1, 1", open, idle)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if open, _ := p.stats(); open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an idle pipe was not closed after the trim interval")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pipeID(b.r) == idB {
		t.Error("trimmed pipe still open")
	}
	// After close, nothing is handed out and returns are closed.
	c := p.get()
	p.close()
	if p.get() != nil {
		t.Error("closed pool gave a pipe")
	}
	p.put(c, true)
	if open, idle := p.stats(); open != 0 || idle != 0 {
		t.Errorf("after close: %d open, %d idle", open, idle)
	}
}

// pipeID identifies the pipe behind fd (its inode), or 0 when fd is closed.
func pipeID(fd int) uint64 {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return 0
	}
	return st.Ino
}

// bulkThrough sends size bytes each way through a CONNECT tunnel to an echo
// server and checks that what comes back is what went out.
func bulkThrough(t *testing.T, e *env, port uint16, size int) {
	t.Helper()
	c := dial(t, e.httpAddr)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "CONNECT allowed.test:"+portString(port)+" HTTP/1.1\r\n\r\n")
	if resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	want := sha256.Sum256(data)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := c.Write(data); err != nil {
			t.Errorf("write: %v", err)
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	h := sha256.New()
	n, err := io.Copy(h, br)
	wg.Wait()
	if err != nil || n != int64(len(data)) {
		t.Fatalf("read back %d of %d bytes: %v", n, len(data), err)
	}
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("bytes changed on the way")
	}
	ev := e.log.wait(t, "allowed.test", port)
	if ev.BytesUp != int64(len(data)) || ev.BytesDown != int64(len(data)) {
		t.Errorf("event counts %d up, %d down; want %d each", ev.BytesUp, ev.BytesDown, len(data))
	}
}

// TestTunnelSplicesThroughBoundedPool moves data through tunnels with
// splice: the pool's pipes are used, never more than its bound, and closed
// once idle.
func TestTunnelSplicesThroughBoundedPool(t *testing.T) {
	e := newEnv(t)
	e.srv.pipes = newPipePool(2, 100*time.Millisecond)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	most := 0
	var mu sync.Mutex
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			open, _ := e.srv.pipes.stats()
			mu.Lock()
			most = max(most, open)
			mu.Unlock()
		}
	}()
	for i := 0; i < 4; i++ {
		port := echoServer(t, "tcp4", "127.0.0.1:0")
		wg.Add(1)
		go func() {
			defer wg.Done()
			bulkThrough(t, e, port, 8<<20)
		}()
	}
	wg.Wait()
	close(stop)
	mu.Lock()
	defer mu.Unlock()
	if most == 0 {
		t.Error("no splice pipe was used")
	}
	if most > 2 {
		t.Errorf("%d pipes open at once, over the bound of 2", most)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if open, _ := e.srv.pipes.stats(); open == 0 {
			break
		}
		if time.Now().After(deadline) {
			open, idle := e.srv.pipes.stats()
			t.Fatalf("%d pipes (%d idle) still open after the load", open, idle)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTunnelWithoutPipes copies through buffers when the pool has none.
func TestTunnelWithoutPipes(t *testing.T) {
	e := newEnv(t)
	e.srv.pipes = newPipePool(0, time.Second)
	port := echoServer(t, "tcp4", "127.0.0.1:0")
	bulkThrough(t, e, port, 4<<20)
	if open, _ := e.srv.pipes.stats(); open != 0 {
		t.Errorf("%d pipes from an empty pool", open)
	}
}
