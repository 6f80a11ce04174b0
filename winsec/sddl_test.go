package winsec

import (
	"strings"
	"testing"
)

const testSID = "S-1-5-21-3623811015-3361044348-30300820-1013"

func TestValidSID(t *testing.T) {
	good := []string{testSID, "S-1-5-18", "s-1-5-32-544", "S-1-1-0", "S-1-5-21-1-2-3-4-5-6-7-8-9-10-11-12"}
	for _, s := range good {
		if err := ValidSID(s); err != nil {
			t.Errorf("ValidSID(%q) = %v", s, err)
		}
	}
	bad := []string{"", "S-1", "S-1-5", "S-2-5-18", "X-1-5-18", "S-1-5-", "S-1-5-18-", "S-1--5-18",
		"S-1-5-4294967296", "S-1-5-+1", "S-1-5-1 ", "SY", "S-1-5-21-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16",
		"S-1-5-18)(A;;CC;;;WD", "S-1-281474976710656-1"}
	for _, s := range bad {
		if err := ValidSID(s); err == nil {
			t.Errorf("ValidSID(%q) accepted", s)
		}
	}
}

func TestUserMatchSDDL(t *testing.T) {
	got, err := UserMatchSDDL(strings.ToLower(testSID))
	if err != nil {
		t.Fatal(err)
	}
	if want := "D:(A;;CC;;;" + testSID + ")"; got != want {
		t.Errorf("UserMatchSDDL = %q, want %q", got, want)
	}
	if err := CheckUserMatch(got, testSID); err != nil {
		t.Errorf("CheckUserMatch of our own SDDL: %v", err)
	}
	// An injected second ACE must be impossible.
	if _, err := UserMatchSDDL("S-1-5-18)(A;;CC;;;WD"); err == nil {
		t.Error("UserMatchSDDL accepted SDDL injection")
	}
}

func TestCheckUserMatch(t *testing.T) {
	other := "S-1-5-21-1-2-3-1001"
	tests := []struct {
		sddl string
		ok   bool
	}{
		{"D:(A;;CC;;;" + testSID + ")", true},
		{"d:(a;;cc;;;" + strings.ToLower(testSID) + ")", true},
		{"D:(A;;0x1;;;" + testSID + ")", true},
		{"O:SYD:(A;;CC;;;" + testSID + ")", true},
		{" D: ( A;;CC;;;" + testSID + " ) ", true},
		{"D:(A;;CC;;;" + other + ")", false},
		{"D:(A;;CC;;;" + testSID + ")(A;;CC;;;" + other + ")", false},
		{"D:(A;;CC;;;" + testSID + ")(D;;CC;;;" + testSID + ")", false},
		{"D:(D;;CC;;;" + testSID + ")", false},
		{"D:(A;;RC;;;" + testSID + ")", false},
		{"D:", false},
		{"", false},
		{"O:SY", false},
		{"D:(A;;CC;;;WD)", false},
		{"D:(A;;CC;;" + testSID + ")", false},
		{"D:(A;;ZZ;;;" + testSID + ")", false},
	}
	for _, tt := range tests {
		err := CheckUserMatch(tt.sddl, testSID)
		if (err == nil) != tt.ok {
			t.Errorf("CheckUserMatch(%q) = %v, want ok=%v", tt.sddl, err, tt.ok)
		}
	}
}

func TestParseDACL(t *testing.T) {
	d, err := ParseDACL(StateDirSDDL)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Protected || len(d.ACEs) != 3 {
		t.Fatalf("state dir DACL = %+v", d)
	}
	want := []ACE{
		{"A", "OICI", RightFileAll, SIDSystem},
		{"A", "OICI", RightFileAll, SIDAdministrators},
		{"A", "OICI", RightFileRead, SIDUsers},
	}
	for i, a := range d.ACEs {
		if a != want[i] {
			t.Errorf("ACE %d = %+v, want %+v", i, a, want[i])
		}
	}
	d, err = ParseDACL("O:BAG:SYD:AI(A;ID;FA;;;SY)(D;;GW;;;WD)S:(ML;;NW;;;LW)")
	if err != nil {
		t.Fatal(err)
	}
	if d.Protected || len(d.ACEs) != 2 || d.ACEs[1] != (ACE{"D", "", 0x40000000, "S-1-1-0"}) {
		t.Errorf("DACL with SACL after it = %+v", d)
	}
}

func TestSecretsFileSDDL(t *testing.T) {
	s, err := SecretsFileSDDL(testSID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "O:"+testSID+"D:P") {
		t.Errorf("secrets SDDL %q: want owner %s and a protected DACL", s, testSID)
	}
	d, err := ParseDACL(s)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Protected || len(d.ACEs) != 2 {
		t.Fatalf("secrets DACL = %+v", d)
	}
	seen := map[string]bool{}
	for _, a := range d.ACEs {
		if a.Type != "A" || a.Rights != RightFileAll || a.Flags != "" {
			t.Errorf("secrets ACE %+v", a)
		}
		seen[a.SID] = true
	}
	if !seen[SIDSystem] || !seen[testSID] {
		t.Errorf("secrets DACL lets in %v, want SYSTEM and the installer only", seen)
	}
	if _, err := SecretsFileSDDL("BA"); err == nil {
		t.Error("SecretsFileSDDL accepted an alias")
	}
}

func TestDirGrantSDDLACE(t *testing.T) {
	s, err := DirGrantSDDLACE(testSID)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDACL("D:" + s)
	if err != nil {
		t.Fatal(err)
	}
	a := d.ACEs[0]
	if a.Type != "A" || a.Flags != "OICI" || a.SID != testSID || a.Rights != RightFileModify {
		t.Errorf("grant ACE %+v", a)
	}
	// Modify, not full control: no WRITE_DAC, WRITE_OWNER.
	if a.Rights&(0x40000|0x80000) != 0 {
		t.Errorf("grant includes permission changes: %#x", a.Rights)
	}
}
