package egress

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/sandgate/sandgate/decide"
	"github.com/sandgate/sandgate/policy"
)

// Live is a run's policy that can be changed while the run goes on. Each
// change compiles a new immutable *policy.Policy and swaps it in atomically
// with a new generation number, which the gate puts in its Results (and so
// in audit events). A Gate whose Live field is set decides with the Live's
// current policy instead of Gate.Policy. Safe for concurrent use.
type Live struct {
	mu       sync.Mutex // serialises changes
	cur      atomic.Pointer[liveState]
	watchers map[int]func(*policy.Policy, uint64)
	nextID   int
}

type liveState struct {
	p   *policy.Policy
	gen uint64
}

// NewLive returns a Live starting with p at generation 0 (a nil p refuses
// everything until an Allow).
func NewLive(p *policy.Policy) *Live {
	l := &Live{}
	if p == nil {
		p, _ = policy.New(policy.Config{})
	}
	l.cur.Store(&liveState{p: p})
	return l
}

// Current returns the policy in force and its generation.
func (l *Live) Current() (*policy.Policy, uint64) {
	s := l.cur.Load()
	return s.p, s.gen
}

// Allow adds entry (an --allow value such as "example.com" or
// "example.com:443") to the allow list and returns the new generation.
func (l *Live) Allow(entry string) (uint64, error) {
	return l.change(entry, (*policy.Policy).WithAllow)
}

// Deny adds entry (a --deny value) to the deny list and returns the new
// generation. Watchers are told, so that open connections to a destination
// that is now denied are cut.
func (l *Live) Deny(entry string) (uint64, error) {
	return l.change(entry, (*policy.Policy).WithDeny)
}

// Show returns the generation and the allow and deny entries in force.
func (l *Live) Show() (gen uint64, allow, deny []string) {
	p, gen := l.Current()
	allow, deny = p.Entries()
	return gen, allow, deny
}

// Watch calls f with each new policy after it is in force; the returned
// function stops the calls.
func (l *Live) Watch(f func(p *policy.Policy, gen uint64)) (stop func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.watchers == nil {
		l.watchers = make(map[int]func(*policy.Policy, uint64))
	}
	id := l.nextID
	l.nextID++
	l.watchers[id] = f
	return func() {
		l.mu.Lock()
		delete(l.watchers, id)
		l.mu.Unlock()
	}
}

// allowTarget allows t for the rest of the run unless the policy in force
// already does (another question about it, by another path or protocol,
// was answered meanwhile): one change, one generation, per destination.
func (l *Live) allowTarget(t policy.Target) (uint64, error) {
	return l.changeUnless(t.String(), (*policy.Policy).WithAllow, func(p *policy.Policy) bool { return p.CheckTarget(t).Allow })
}

// change applies one edit under the lock and tells the watchers.
func (l *Live) change(entry string, edit func(*policy.Policy, string) (*policy.Policy, error)) (uint64, error) {
	return l.changeUnless(entry, edit, nil)
}

// changeUnless is change, except that nothing changes when done (checked
// under the lock) says the policy in force needs no edit.
func (l *Live) changeUnless(entry string, edit func(*policy.Policy, string) (*policy.Policy, error), done func(*policy.Policy) bool) (uint64, error) {
	if entry == "" {
		return 0, errors.New("empty entry: name a host, as in example.com or example.com:443")
	}
	l.mu.Lock()
	old := l.cur.Load()
	if done != nil && done(old.p) {
		l.mu.Unlock()
		return old.gen, nil
	}
	p, err := edit(old.p, entry)
	if err != nil {
		l.mu.Unlock()
		return 0, fmt.Errorf("live policy: %w", err)
	}
	s := &liveState{p: p, gen: old.gen + 1}
	l.cur.Store(s)
	ws := make([]func(*policy.Policy, uint64), 0, len(l.watchers))
	for _, w := range l.watchers {
		ws = append(ws, w)
	}
	l.mu.Unlock()
	for _, w := range ws {
		w(s.p, s.gen)
	}
	return s.gen, nil
}

// PolicyNow returns the policy g decides with now: its Live's current one
// when Live is set, else Policy. Components that judge names outside
// Decide (the transparent path's DNS stub) use it so that a live change
// reaches them too.
func (g *Gate) PolicyNow() *policy.Policy {
	if g.Live != nil {
		p, _ := g.Live.Current()
		return p
	}
	return g.Policy
}

// Reasons of refusals that came from asking.
const (
	ReasonDeciderDenied = "decider-denied" // the decider answered deny
	ReasonDeciderFailed = "decider-failed" // the decider failed, timed out or answered malformed (a deny)
)

// DeciderFailedText is what the client is told of a decider's failure; the
// failure itself is in the Decision's Detail.
const DeciderFailedText = "the decider failed (see sandgate's log)"

// EntryDecider is the Decision.Entry of a destination a decider allowed.
const EntryDecider = "(decider)"

// Asker puts destinations that are merely not on the allow list (never a
// deny-list hit, an address-class or method/path refusal) to a Decider.
// Concurrent identical questions share one ask. An allow of scope "run" is
// added to the gate's Live policy (without a Live it counts once). A Gate
// copied by value shares its Asker.
type Asker struct {
	Decider decide.Decider
	Run     string // the run id put in each Question

	group decide.Group
}

// ask returns the policy to go on with, the decision and the generation.
// An allow yields a policy that allows exactly t, so the resolved-address
// checks still run; any failure is a refusal.
func (a *Asker) ask(ctx context.Context, live *Live, pol *policy.Policy, t policy.Target, gen uint64) (*policy.Policy, policy.Decision, uint64) {
	refuse := func(reason, text string) (*policy.Policy, policy.Decision, uint64) {
		return pol, policy.Decision{Block: policy.BlockAllowlist, Reason: reason, Text: text}, gen
	}
	// A failure's error stays in Detail (the audit, sandgate's stderr):
	// it can name the harness's paths, sockets or output, which CMD must
	// not learn from its refusal.
	failed := func(err error) (*policy.Policy, policy.Decision, uint64) {
		return pol, policy.Decision{Block: policy.BlockAllowlist, Reason: ReasonDeciderFailed,
			Text:   t.String() + " is refused: " + DeciderFailedText,
			Detail: t.String() + " is refused: " + oneLine(err.Error())}, gen
	}
	if t.IsIP() {
		// A literal in a special class is an address-class refusal, never a question.
		if c := policy.Classify(t.Addr); c != "" {
			return pol, pol.CheckTarget(t), gen
		}
	}
	proto, method, path := decide.RequestFrom(ctx)
	q := decide.Question{Run: a.Run, Protocol: proto, Host: t.Host, Port: t.Port, Method: method, Path: path}
	if a.Decider == nil {
		return refuse(ReasonDeciderFailed, t.String()+" is refused: no decider is configured")
	}
	ans, err := a.group.Do(ctx, a.Decider, q)
	if err != nil {
		return failed(err)
	}
	if !ans.Allow {
		return refuse(ReasonDeciderDenied, t.String()+" is refused by the decider")
	}
	if ans.Scope == decide.ScopeRun && live != nil {
		if _, err := live.allowTarget(t); err != nil {
			return failed(err)
		}
		pol, gen = live.Current()
		d := pol.CheckTarget(t)
		if d.Allow && d.Entry == t.String() {
			// Say who added the entry: the audit has no other trace of it.
			d.Text = fmt.Sprintf("%s is allowed for the rest of the run by the decider (allow entry %q added to the live policy)", t, d.Entry)
		}
		return pol, d, gen
	}
	if live != nil {
		// The policy in force now: a deny added while the question was
		// open wins over the answer.
		pol, gen = live.Current()
	}
	once, err := pol.WithAllow(t.String())
	if err != nil {
		return failed(err)
	}
	d := once.CheckTarget(t)
	if d.Allow {
		d.Entry, d.Text = EntryDecider, t.String()+" is allowed once by the decider"
	}
	return once, d, gen
}

// decideName is the decision about a name by the name alone, for an
// upstream that resolves it (SendName): the policy, then the Asker for a
// destination merely not on the allow list. Nothing is looked up here.
func (g *Gate) decideName(ctx context.Context, pol *policy.Policy, t policy.Target, gen uint64) Result {
	res := Result{Target: t, Decision: pol.CheckTarget(t), Gen: gen}
	if !res.Decision.Allow && res.Decision.Reason == policy.ReasonNotAllowed && g.Ask != nil {
		_, res.Decision, res.Gen = g.Ask.ask(ctx, g.Live, pol, t, gen)
	}
	return res
}
