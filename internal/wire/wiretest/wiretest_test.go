package wiretest

import (
	"reflect"
	"testing"
)

type inner struct {
	A int
	B string
}

type outer struct {
	X      int
	Items  []inner
	Ptr    *inner
	Raw    []byte
	hidden int
}

func TestUnset(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    any
		want []string
	}{
		{"empty", outer{}, []string{".Items", ".Items[].A", ".Items[].B", ".Ptr", ".Ptr.A", ".Ptr.B", ".Raw", ".X"}},
		{"union over elements", &outer{X: 1, Items: []inner{{A: 1}, {B: "b"}}, Ptr: &inner{A: 2, B: "c"}, Raw: []byte{0}}, nil},
		{"one element field missing", outer{X: 1, Items: []inner{{A: 1}}, Ptr: &inner{A: 2, B: "c"}, Raw: []byte{0}, hidden: 0}, []string{".Items[].B"}},
	} {
		if got := Unset(tc.v); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: Unset = %q, want %q", tc.name, got, tc.want)
		}
	}
}
