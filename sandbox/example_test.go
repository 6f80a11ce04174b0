package sandbox_test

import (
	"context"
	"fmt"
	"os"

	"github.com/sandgate/sandgate/decide"
	"github.com/sandgate/sandgate/egress"
	"github.com/sandgate/sandgate/policy"
	"github.com/sandgate/sandgate/sandbox"
)

// A program embedding sandgate keeps a handle on the run's policy (an
// egress.Live) and changes it while the command runs; destinations that
// are merely not on the allow list go to its own decide callback. (The
// program's main must call sandbox.MaybeInit first.)
func ExampleRun_livePolicy() {
	start, err := policy.New(policy.Config{Allow: []string{"proxy.golang.org:443"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	live := egress.NewLive(start)
	ask := decide.Func(func(ctx context.Context, q decide.Question) (decide.Answer, error) {
		// Allow the module mirror's sibling for the rest of the run; deny the rest.
		if q.Host == "sum.golang.org" && q.Port == 443 {
			return decide.Answer{Allow: true, Scope: decide.ScopeRun}, nil
		}
		return decide.Answer{}, nil
	})
	spec := sandbox.Spec{
		Args:    []string{"go", "mod", "download"},
		Network: sandbox.NetworkProxy,
		Gate:    &egress.Gate{Live: live, Ask: &egress.Asker{Decider: ask, Run: "build-42"}},
	}
	go func() {
		// Later, from anywhere in the program: the change is in force at
		// once, and a deny cuts the open connections it now refuses.
		if gen, err := live.Deny("proxy.golang.org"); err == nil {
			fmt.Println("policy generation", gen)
		}
	}()
	res, err := sandbox.Run(context.Background(), spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	fmt.Println("exit status", res.ExitCode)
}
