package decide

import (
	"context"
	"sync"
)

// Group makes concurrent identical questions share one ask: while a
// Question is being decided, a second caller with the same Question waits
// for the first one's answer instead of asking again. The zero Group is
// ready to use.
type Group struct {
	mu    sync.Mutex
	calls map[Question]*call
}

type call struct {
	done chan struct{}
	ans  Answer
	err  error
}

// Do asks d about q unless the same q is already being asked, in which case
// it waits for that answer (or for ctx to end, which is an error).
func (g *Group) Do(ctx context.Context, d Decider, q Question) (Answer, error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = make(map[Question]*call)
	}
	if c, ok := g.calls[q]; ok {
		g.mu.Unlock()
		select {
		case <-c.done:
			return c.ans, c.err
		case <-ctx.Done():
			return Answer{}, ctx.Err()
		}
	}
	c := &call{done: make(chan struct{})}
	g.calls[q] = c
	g.mu.Unlock()

	c.ans, c.err = safeDecide(ctx, d, q)
	g.mu.Lock()
	delete(g.calls, q)
	g.mu.Unlock()
	close(c.done)
	return c.ans, c.err
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

func (p *panicError) Error() string { return "the decider panicked" }
