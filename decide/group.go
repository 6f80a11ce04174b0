package decide

import (
	"context"
	"fmt"
	"sync"
)

// Group makes concurrent identical questions share one ask: while a
// Question is being decided, a second caller with the same Question waits
// for the first one's answer instead of asking again. The ask goes on while
// any caller still waits for it, and is cancelled when the last one leaves,
// so that one client going away does not deny the others. The zero Group
// is ready to use.
type Group struct {
	mu    sync.Mutex
	calls map[Question]*call
}

type call struct {
	done    chan struct{}
	ans     Answer
	err     error
	waiters int                // callers still waiting; guarded by Group.mu
	cancel  context.CancelFunc // ends the ask when no one waits any more
}

// Do asks d about q unless the same q is already being asked, in which case
// it waits for that answer. A caller whose ctx ends gets ctx's error (a
// deny); the ask itself ends only when every caller has left. A panic in d
// is an error, never an allow.
func (g *Group) Do(ctx context.Context, d Decider, q Question) (Answer, error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = make(map[Question]*call)
	}
	c, ok := g.calls[q]
	if !ok {
		// The ask keeps the first caller's values (and deadline) but not its
		// cancellation, which is counted below instead.
		actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		if dl, has := ctx.Deadline(); has {
			actx, cancel = context.WithDeadline(context.WithoutCancel(ctx), dl)
		}
		c = &call{done: make(chan struct{}), cancel: cancel}
		g.calls[q] = c
		go g.run(actx, c, d, q)
	}
	c.waiters++
	g.mu.Unlock()

	select {
	case <-c.done:
		return c.ans, c.err
	case <-ctx.Done():
		g.mu.Lock()
		c.waiters--
		if c.waiters == 0 {
			c.cancel()
		}
		g.mu.Unlock()
		return Answer{}, ctx.Err()
	}
}

// run asks d once for every caller of c.
func (g *Group) run(ctx context.Context, c *call, d Decider, q Question) {
	ans, err := safeDecide(ctx, d, q)
	g.mu.Lock()
	delete(g.calls, q)
	c.ans, c.err = ans, err
	g.mu.Unlock()
	c.cancel()
	close(c.done)
}

// safeDecide calls d, turning a panic into an error (a deny).
func safeDecide(ctx context.Context, d Decider, q Question) (ans Answer, err error) {
	defer func() {
		if r := recover(); r != nil {
			ans, err = Answer{}, &panicError{r}
		}
	}()
	return d.Decide(ctx, q)
}

type panicError struct{ v any }

func (p *panicError) Error() string { return fmt.Sprintf("the decider panicked: %v", p.v) }
