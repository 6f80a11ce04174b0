package fsview

import (
	"fmt"

	"github.com/sandgate/sandgate/internal/wire"
)

// The plan as the init gets it (Marshal, UnmarshalPlan): its exported
// fields in the compact encoding of package wire, in declaration order.
// Both ends are the same sandgate binary; the init decodes it on every
// run's critical path, where a first JSON decoding costs a few tenths of
// a millisecond in reflection caches.

// maxPlanList bounds every list of a decoded plan (ops, nodes of one op,
// paths): far above what a plan holds, far below what memory allows.
const maxPlanList = 1 << 16

// encodePlan encodes p's exported fields; a list over maxPlanList (which
// decodePlan would refuse) is an error.
func encodePlan(p *Plan) ([]byte, error) {
	long := len(p.Ops) > maxPlanList || len(p.Watch) > maxPlanList
	for i := range p.Ops {
		long = long || len(p.Ops[i].Nodes) > maxPlanList
	}
	if long {
		return nil, fmt.Errorf("the file system plan has a list of more than %d entries", maxPlanList)
	}
	e := wire.NewEncoder(256 + 64*len(p.Ops))
	e.Int(int(p.Mode))
	e.Uint(uint64(len(p.Ops)))
	for i := range p.Ops {
		encodeOp(e, &p.Ops[i])
	}
	e.Strings(p.Writable)
	e.Strings(p.NeverWritable)
	e.Strings(p.Hidden)
	e.Uint(uint64(len(p.Watch)))
	for _, w := range p.Watch {
		e.String(w.Path)
		e.String(w.Link)
		e.String(w.Why)
	}
	e.Int(p.Scanned)
	return e.Bytes(), nil
}

// encodeOp encodes one operation.
func encodeOp(e *wire.Encoder, op *Op) {
	e.String(string(op.Kind))
	e.String(op.Path)
	e.Int(op.ID)
	e.Int(op.From)
	e.Uint(uint64(op.Mode))
	e.Bool(op.Owner != nil)
	if op.Owner != nil {
		e.Int(op.Owner.UID)
		e.Int(op.Owner.GID)
	}
	e.Bool(op.ReadOnly)
	e.Uint(uint64(len(op.Nodes)))
	for _, n := range op.Nodes {
		e.String(n.Path)
		e.String(string(n.Type))
		e.String(n.Target)
	}
	e.String(op.Why)
}

// decodePlan decodes what encodePlan encoded; empty lists decode as nil.
func decodePlan(b []byte) (*Plan, error) {
	d := wire.NewDecoder(b)
	p := &Plan{Mode: Mode(d.Int())}
	if p.Mode < ModeWorkspace || p.Mode > ModeHost {
		d.Fail(fmt.Errorf("unknown mode %d", int(p.Mode)))
	}
	if n := d.Count(maxPlanList); n > 0 {
		p.Ops = make([]Op, n)
		for i := range p.Ops {
			decodeOp(d, &p.Ops[i])
		}
	}
	p.Writable, p.NeverWritable, p.Hidden = d.Strings(), d.Strings(), d.Strings()
	if n := d.Count(maxPlanList); n > 0 {
		p.Watch = make([]Watch, n)
		for i := range p.Watch {
			p.Watch[i] = Watch{Path: d.String(), Link: d.String(), Why: d.String()}
		}
	}
	p.Scanned = d.Int()
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("bad file system plan: %w", err)
	}
	return p, nil
}

// decodeOp decodes one operation into op.
func decodeOp(d *wire.Decoder, op *Op) {
	op.Kind, op.Path = OpKind(d.String()), d.String()
	op.ID, op.From, op.Mode = d.Int(), d.Int(), d.Uint32()
	if d.Bool() {
		op.Owner = &Owner{UID: d.Int(), GID: d.Int()}
	}
	op.ReadOnly = d.Bool()
	if n := d.Count(maxPlanList); n > 0 {
		op.Nodes = make([]Node, n)
		for i := range op.Nodes {
			op.Nodes[i] = Node{Path: d.String(), Type: NodeType(d.String()), Target: d.String()}
		}
	}
	op.Why = d.String()
}
