//go:build windows

package winfw

// Windows Firewall through its COM API, INetFwPolicy2 ("HNetCfg.FwPolicy2")
// and INetFwRule3, reached by late binding (IDispatch) with
// github.com/go-ole/go-ole v1.3.0. Why this and not WFP: the rules sandgate
// needs (outbound block by protocol, remote addresses, remote ports, and a
// local-user condition given as an SDDL string) are exactly what Windows
// Firewall rules express; they show up in the firewall console where an
// administrator expects them, persist across reboots by themselves, and
// Windows Firewall reports whether Group Policy lets local rules take
// effect (LocalPolicyModifyState), which a WFP sublayer of our own could
// not tell us. go-ole is the long-standing, widely used Go COM binding;
// late binding by documented property names avoids hand-written vtable
// offsets that could not be tested without a Windows host.

import (
	"errors"
	"fmt"
	"runtime"
	"strings"

	ole "github.com/go-ole/go-ole"
	"github.com/go-ole/go-ole/oleutil"
)

// COM identifiers of the Windows Firewall API (netfw.h).
var (
	iidINetFwPolicy2 = ole.NewGUID("{98325047-C671-4174-8D81-DEFCD3F03186}")
	iidINetFwRule3   = ole.NewGUID("{B21563FF-D696-4222-AB46-4E89B73AB34A}")
)

// HRESULTs the firewall code tells apart.
const (
	hrFileNotFound = 0x80070002 // HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND): no rule of that name
	hrSFalse       = 0x00000001 // S_FALSE: COM already initialised on this thread
	hrChangedMode  = 0x80010106 // RPC_E_CHANGED_MODE: initialised in the other model
)

// NET_FW_MODIFY_STATE values of INetFwPolicy2.LocalPolicyModifyState.
const (
	modifyStateOK             = 0
	modifyStateGPOverride     = 1
	modifyStateInboundBlocked = 2
)

// Firewall is a session with Windows Firewall. It holds its goroutine's
// OS thread (COM objects belong to the thread that made them): use it from
// one goroutine and Close it there.
type Firewall struct {
	policy *ole.IDispatch
	rules  *ole.IDispatch
	uninit bool
}

// Open starts a session. Reading rules works unelevated; adding and
// removing them needs an elevated administrator.
func Open() (*Firewall, error) {
	runtime.LockOSThread()
	f := &Firewall{}
	if err := ole.CoInitializeEx(0, ole.COINIT_APARTMENTTHREADED); err != nil {
		switch hresult(err) {
		case hrSFalse:
			f.uninit = true
		case hrChangedMode:
		default:
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("windows firewall: initialising COM: %w", err)
		}
	} else {
		f.uninit = true
	}
	unk, err := oleutil.CreateObject("HNetCfg.FwPolicy2")
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("windows firewall: creating HNetCfg.FwPolicy2 (is the Windows Defender Firewall service running?): %w", err)
	}
	f.policy, err = unk.QueryInterface(iidINetFwPolicy2)
	unk.Release()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("windows firewall: INetFwPolicy2: %w", err)
	}
	v, err := f.policy.GetProperty("Rules")
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("windows firewall: reading the rule collection: %w", err)
	}
	f.rules = v.ToIDispatch()
	if f.rules == nil {
		f.Close()
		return nil, errors.New("windows firewall: the rule collection is not an object")
	}
	return f, nil
}

// Close ends the session and releases the thread.
func (f *Firewall) Close() {
	if f.rules != nil {
		f.rules.Release()
		f.rules = nil
	}
	if f.policy != nil {
		f.policy.Release()
		f.policy = nil
	}
	if f.uninit {
		ole.CoUninitialize()
		f.uninit = false
	}
	runtime.UnlockOSThread()
}

// CheckInEffect returns an error unless rules added to the local firewall
// policy take effect: the firewall must be on in the domain, private and
// public profiles (sandgate's rules apply to all three, and a machine
// changes profile when it changes network), and Group Policy must not
// override local rules. Each is an error, not a warning: with it, the
// offline user's block rules would silently do nothing.
func (f *Firewall) CheckInEffect() error {
	var problems []string
	for _, p := range []struct {
		bit  int32
		name string
	}{{1, "domain"}, {2, "private"}, {4, "public"}} {
		v, err := f.policy.GetProperty("FirewallEnabled", p.bit)
		if err != nil {
			return fmt.Errorf("windows firewall: reading whether the %s profile is on: %w", p.name, err)
		}
		on := v.VT == ole.VT_BOOL && v.Val != 0
		v.Clear()
		if !on {
			problems = append(problems, "the firewall is off in the "+p.name+" profile")
		}
	}
	v, err := f.policy.GetProperty("LocalPolicyModifyState")
	if err != nil {
		return fmt.Errorf("windows firewall: reading LocalPolicyModifyState: %w", err)
	}
	state, _ := toInt32(v)
	v.Clear()
	switch state {
	case modifyStateOK, modifyStateInboundBlocked:
		// Inbound-blocked only concerns inbound rules; sandgate's are outbound.
	case modifyStateGPOverride:
		problems = append(problems, "Group Policy overrides the local firewall policy, so local rules (sandgate's) would not take effect; an administrator must allow local rule merging or deploy the rules through Group Policy")
	default:
		problems = append(problems, fmt.Sprintf("unknown LocalPolicyModifyState %d", state))
	}
	if len(problems) > 0 {
		return fmt.Errorf("windows firewall rules would not be enforced: %s", strings.Join(problems, "; "))
	}
	return nil
}

// List returns every rule whose name IsOurs, with the fields Compare looks
// at, as Windows reports them now.
func (f *Firewall) List() ([]Observed, error) {
	var out []Observed
	err := oleutil.ForEach(f.rules, func(item *ole.VARIANT) error {
		defer item.Clear()
		d := item.ToIDispatch()
		if d == nil {
			return errors.New("a rule of the collection is not an object")
		}
		name, err := getString(d, "Name")
		if err != nil {
			return err
		}
		if !IsOurs(name) {
			return nil
		}
		o, err := readRule(d)
		if err != nil {
			return fmt.Errorf("reading rule %s: %w", name, err)
		}
		out = append(out, o)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("windows firewall: listing rules: %w", err)
	}
	return out, nil
}

// Add adds r as a new rule, every field set on the rule object before the
// object is added, so the rule never exists half-configured.
func (f *Firewall) Add(r Rule) error {
	unk, err := oleutil.CreateObject("HNetCfg.FWRule")
	if err != nil {
		return fmt.Errorf("windows firewall: creating a rule object: %w", err)
	}
	defer unk.Release()
	d, err := unk.QueryInterface(iidINetFwRule3)
	if err != nil {
		return fmt.Errorf("windows firewall: INetFwRule3 (needs Windows 8 or later): %w", err)
	}
	defer d.Release()
	if err := writeRule(d, r); err != nil {
		return fmt.Errorf("windows firewall: rule %s: %w", r.Name, err)
	}
	if _, err := f.rules.CallMethod("Add", d); err != nil {
		return fmt.Errorf("windows firewall: adding rule %s: %w", r.Name, err)
	}
	return nil
}

// Refresh sets every field of the installed rule named r.Name again.
// PlanSteps uses it only for rules that already match r, so no field
// passes through a looser value.
func (f *Firewall) Refresh(r Rule) error {
	v, err := f.rules.CallMethod("Item", r.Name)
	if err != nil {
		return fmt.Errorf("windows firewall: finding rule %s: %w", r.Name, err)
	}
	defer v.Clear()
	item := v.ToIDispatch()
	if item == nil {
		return fmt.Errorf("windows firewall: rule %s is not an object", r.Name)
	}
	d, err := item.QueryInterface(iidINetFwRule3)
	if err != nil {
		return fmt.Errorf("windows firewall: INetFwRule3 of %s: %w", r.Name, err)
	}
	defer d.Release()
	if err := writeRule(d, r); err != nil {
		return fmt.Errorf("windows firewall: refreshing rule %s: %w", r.Name, err)
	}
	return nil
}

// Remove removes every rule named name (INetFwRules.Remove removes one
// rule per call when several share a name; it is called until none is
// left).
func (f *Firewall) Remove(name string) error {
	for i := 0; i < 1000; i++ {
		v, err := f.rules.CallMethod("Item", name)
		if err != nil {
			if hresult(err) == hrFileNotFound {
				return nil
			}
			return fmt.Errorf("windows firewall: finding rule %s: %w", name, err)
		}
		v.Clear()
		if _, err := f.rules.CallMethod("Remove", name); err != nil {
			return fmt.Errorf("windows firewall: removing rule %s: %w", name, err)
		}
	}
	return fmt.Errorf("windows firewall: rule %s is still there after 1000 removals", name)
}

// writeRule sets every field sandgate manages, in an order Windows
// accepts: the protocol before ports and ICMP types (those fields are only
// valid for their protocols).
func writeRule(d *ole.IDispatch, r Rule) error {
	type prop struct {
		name string
		val  any
	}
	props := []prop{
		{"Name", r.Name},
		{"Description", r.Description},
		{"Grouping", r.Grouping},
		{"Direction", r.Direction},
		{"Protocol", r.Protocol},
	}
	if hasPorts(r.Protocol) {
		props = append(props, prop{"LocalPorts", "*"}, prop{"RemotePorts", orAny(r.RemotePorts)})
	}
	if isICMP(r.Protocol) {
		props = append(props, prop{"IcmpTypesAndCodes", orAny(r.IcmpTypesAndCodes)})
	}
	props = append(props,
		prop{"LocalAddresses", "*"},
		prop{"RemoteAddresses", r.RemoteAddresses},
		prop{"InterfaceTypes", r.InterfaceTypes},
		prop{"Profiles", r.Profiles},
		prop{"LocalUserAuthorizedList", r.LocalUserAuthorizedList},
		prop{"Action", r.Action},
		prop{"Enabled", r.Enabled},
	)
	for _, p := range props {
		if _, err := d.PutProperty(p.name, p.val); err != nil {
			return fmt.Errorf("setting %s: %w", p.name, err)
		}
	}
	return nil
}

// readRule reads every field Compare looks at. A field that cannot be read
// is an error: an unread field could hide a narrowing condition.
func readRule(item *ole.IDispatch) (Observed, error) {
	d, err := item.QueryInterface(iidINetFwRule3)
	if err != nil {
		return Observed{}, fmt.Errorf("INetFwRule3: %w", err)
	}
	defer d.Release()
	var o Observed
	strs := []struct {
		name string
		dst  *string
	}{
		{"Name", &o.Name}, {"Description", &o.Description}, {"Grouping", &o.Grouping},
		{"RemoteAddresses", &o.RemoteAddresses}, {"LocalAddresses", &o.LocalAddresses},
		{"LocalUserAuthorizedList", &o.LocalUserAuthorizedList}, {"InterfaceTypes", &o.InterfaceTypes},
		{"ApplicationName", &o.ApplicationName}, {"ServiceName", &o.ServiceName},
		{"LocalAppPackageId", &o.LocalAppPackageID}, {"LocalUserOwner", &o.LocalUserOwner},
		{"RemoteMachineAuthorizedList", &o.RemoteMachineAuthorizedList},
		{"RemoteUserAuthorizedList", &o.RemoteUserAuthorizedList},
	}
	for _, s := range strs {
		if *s.dst, err = getString(d, s.name); err != nil {
			return Observed{}, err
		}
	}
	ints := []struct {
		name string
		dst  *int32
	}{
		{"Direction", &o.Direction}, {"Action", &o.Action}, {"Protocol", &o.Protocol},
		{"Profiles", &o.Profiles}, {"SecureFlags", &o.SecureFlags},
	}
	for _, n := range ints {
		if *n.dst, err = getInt32(d, n.name); err != nil {
			return Observed{}, err
		}
	}
	if o.Enabled, err = getBool(d, "Enabled"); err != nil {
		return Observed{}, err
	}
	if o.EdgeTraversal, err = getBool(d, "EdgeTraversal"); err != nil {
		return Observed{}, err
	}
	if hasPorts(o.Protocol) {
		if o.RemotePorts, err = getString(d, "RemotePorts"); err != nil {
			return Observed{}, err
		}
		if o.LocalPorts, err = getString(d, "LocalPorts"); err != nil {
			return Observed{}, err
		}
	}
	if isICMP(o.Protocol) {
		if o.IcmpTypesAndCodes, err = getString(d, "IcmpTypesAndCodes"); err != nil {
			return Observed{}, err
		}
	}
	v, err := d.GetProperty("Interfaces")
	if err != nil {
		return Observed{}, fmt.Errorf("reading Interfaces: %w", err)
	}
	defer v.Clear()
	switch {
	case v.VT == ole.VT_EMPTY || v.VT == ole.VT_NULL:
	case v.VT&ole.VT_ARRAY != 0:
		n, err := v.ToArray().TotalElements(0)
		if err != nil {
			return Observed{}, fmt.Errorf("reading Interfaces: %w", err)
		}
		o.Interfaces = n > 0
	default:
		o.Interfaces = true
	}
	return o, nil
}

func getString(d *ole.IDispatch, name string) (string, error) {
	v, err := d.GetProperty(name)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", name, err)
	}
	defer v.Clear()
	switch v.VT {
	case ole.VT_EMPTY, ole.VT_NULL:
		return "", nil
	case ole.VT_BSTR:
		return v.ToString(), nil
	}
	return "", fmt.Errorf("reading %s: unexpected variant type %d", name, v.VT)
}

func getInt32(d *ole.IDispatch, name string) (int32, error) {
	v, err := d.GetProperty(name)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", name, err)
	}
	defer v.Clear()
	n, ok := toInt32(v)
	if !ok {
		return 0, fmt.Errorf("reading %s: unexpected variant type %d", name, v.VT)
	}
	return n, nil
}

func toInt32(v *ole.VARIANT) (int32, bool) {
	switch x := v.Value().(type) {
	case int8:
		return int32(x), true
	case int16:
		return int32(x), true
	case int32:
		return x, true
	case int64:
		return int32(x), true
	case uint8:
		return int32(x), true
	case uint16:
		return int32(x), true
	case uint32:
		return int32(x), true
	case uint64:
		return int32(x), true
	}
	return 0, false
}

func getBool(d *ole.IDispatch, name string) (bool, error) {
	v, err := d.GetProperty(name)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", name, err)
	}
	defer v.Clear()
	if v.VT != ole.VT_BOOL {
		return false, fmt.Errorf("reading %s: unexpected variant type %d", name, v.VT)
	}
	return v.Val != 0, nil
}

// hresult returns the HRESULT of a go-ole error: the SCODE of the
// exception for DISP_E_EXCEPTION, else the call's own.
func hresult(err error) uint32 {
	var oe *ole.OleError
	if !errors.As(err, &oe) {
		return 0
	}
	if ex, ok := oe.SubError().(ole.EXCEPINFO); ok && ex.SCODE() != 0 {
		return ex.SCODE()
	}
	return uint32(oe.Code())
}

// ApplyRules opens a session, checks that local rules take effect, and
// applies want with Apply (see PlanSteps for the order).
func ApplyRules(want []Rule, transition Rule, logf func(string, ...any)) ([]Step, error) {
	f, err := Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := f.CheckInEffect(); err != nil {
		return nil, err
	}
	return Apply(f, want, transition, logf)
}

// VerifyRules opens a session and requires the installed rules of ours to
// be exactly want, and in effect.
func VerifyRules(want []Rule) error {
	f, err := Open()
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.CheckInEffect(); err != nil {
		return err
	}
	return Verify(f, want)
}

// InstalledDifferences opens a session and lists how the installed rules
// of ours differ from want, plus any reason the rules would not be in
// effect, in words.
func InstalledDifferences(want []Rule) ([]string, error) {
	f, err := Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var d []string
	if err := f.CheckInEffect(); err != nil {
		d = append(d, err.Error())
	}
	got, err := f.List()
	if err != nil {
		return nil, err
	}
	return append(d, Differences(got, want)...), nil
}

// RemoveAll opens a session and removes every rule of ours: the loopback
// rules first, then the non-loopback block, then a leftover transition
// rule (see PlanSteps). It does not require the rules to be in effect, so
// it also cleans up where Group Policy or a disabled firewall made them
// moot.
func RemoveAll(logf func(string, ...any)) ([]Step, error) {
	f, err := Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Apply(f, nil, Rule{Name: TransitionName}, logf)
}
