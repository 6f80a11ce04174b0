// Package wiretest helps the tests of hand-written encodings (package
// wire's users) stay complete: a round-trip fixture must set every
// exported field of its type, so that a field added later without its
// encoding fails the round trip instead of being dropped in silence.
package wiretest

import (
	"reflect"
	"sort"
)

// Unset returns the exported fields of v's type (paths such as
// "Ops[].Owner.UID") that no part of v sets to a non-zero value; a field
// of a list's elements counts as set when any element sets it. Byte
// slices and maps are single values.
func Unset(v any) []string {
	all, set := map[string]bool{}, map[string]bool{}
	fieldPaths(reflect.TypeOf(v), "", all, map[reflect.Type]bool{})
	setPaths(reflect.ValueOf(v), "", set)
	var out []string
	for p := range all {
		if !set[p] {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// fieldPaths adds the path of every exported field reachable from t.
func fieldPaths(t reflect.Type, prefix string, all map[string]bool, inProgress map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if inProgress[t] {
			return
		}
		inProgress[t] = true
		defer delete(inProgress, t)
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			p := prefix + "." + f.Name
			all[p] = true
			fieldPaths(f.Type, p, all, inProgress)
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() != reflect.Uint8 {
			fieldPaths(t.Elem(), prefix+"[]", all, inProgress)
		}
	}
}

// setPaths adds the path of every exported field that v sets.
func setPaths(v reflect.Value, prefix string, set map[string]bool) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			if !t.Field(i).IsExported() {
				continue
			}
			p := prefix + "." + t.Field(i).Name
			if !v.Field(i).IsZero() {
				set[p] = true
			}
			setPaths(v.Field(i), p, set)
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		for i := range v.Len() {
			setPaths(v.Index(i), prefix+"[]", set)
		}
	}
}
