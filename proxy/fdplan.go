package proxy

// Descriptor accounting. A Server never opens a descriptor it has not
// budgeted for, so it cannot meet EMFILE while serving: every client
// connection slot (MaxConns) is worth the two descriptors a connection can
// hold at once (the client socket and one upstream socket: the gate dials
// one address at a time), and the other holders are bounded pools of their
// own: splice pipes (two descriptors each), DNS lookups in flight (up to
// three each: the A and AAAA sockets and a file the resolver reads) and
// polite refusals of clients over the limit (one each). What is left of the
// process's limit after the descriptors already open and a margin (for
// listeners, the audit file, the runtime's poller, a refusal being accepted)
// decides how many connection slots there can be.
const (
	fdsPerConn    = 2
	fdsPerPipe    = 2
	fdsPerLookup  = 3
	fdsPerRefusal = 1
	fdMargin      = 64
)

// fdPlan is how a Server shares the descriptor limit of its process.
type fdPlan struct {
	limit    int // the soft RLIMIT_NOFILE in force, 0 when the system has none
	open     int // descriptors already open when the plan was made
	conns    int // connection slots (Limits.MaxConns after planning)
	pipes    int // splice pipes the pool may hold at once
	lookups  int // DNS lookups in flight at once
	refusals int // polite refusals in flight at once
	lowered  bool
}

// pipesFor, lookupsFor and refusalsFor size the pools for conns connection
// slots.
func pipesFor(conns int) int    { return clamp(conns/8, 16, 1024) }
func lookupsFor(conns int) int  { return clamp(conns/64, 16, 256) }
func refusalsFor(conns int) int { return clamp(conns/32, 32, 256) }

func clamp(v, lo, hi int) int {
	return min(max(v, lo), hi)
}

// fdCost is the number of descriptors a plan for conns slots can hold.
func fdCost(open, conns int) int {
	return open + fdMargin + fdsPerConn*conns + fdsPerPipe*pipesFor(conns) +
		fdsPerLookup*lookupsFor(conns) + fdsPerRefusal*refusalsFor(conns)
}

// planFDs fits want connection slots into limit descriptors, open of which
// are already in use; limit 0 means no limit is known. It lowers the slots
// (never below one) when they do not fit.
func planFDs(limit, open, want int) fdPlan {
	p := fdPlan{limit: limit, open: open, conns: want}
	if limit > 0 && fdCost(open, want) > limit {
		// The largest number of slots that fits; cost grows with conns.
		lo, hi := 1, want
		for lo < hi {
			mid := lo + (hi-lo+1)/2
			if fdCost(open, mid) <= limit {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		p.conns, p.lowered = lo, true
	}
	p.pipes, p.lookups, p.refusals = pipesFor(p.conns), lookupsFor(p.conns), refusalsFor(p.conns)
	return p
}
