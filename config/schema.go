package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// This file checks a decoded TOML document against File's tables and keys
// before the typed decode, so that an unknown table, an unknown key or a
// value of the wrong type is reported with the file, the line, the key and
// the expected type in plain words, not in the TOML library's terms.

// keyProblem is one problem found by checkSchema, with its line.
type keyProblem struct {
	line  int
	entry string
	err   error
}

// schemaTables lists File's tables and, for each, its keys with their Go types.
func schemaTables() map[string]map[string]reflect.Type {
	tables := map[string]map[string]reflect.Type{}
	ft := reflect.TypeOf(File{})
	for i := 0; i < ft.NumField(); i++ {
		f := ft.Field(i)
		name := tomlName(f)
		if name != "" && f.Type.Kind() == reflect.Map {
			tables[name] = nil // a table of the user's own keys, checked by its type
			continue
		}
		if name == "" || f.Type.Kind() != reflect.Struct {
			continue
		}
		keys := map[string]reflect.Type{}
		for j := 0; j < f.Type.NumField(); j++ {
			if k := tomlName(f.Type.Field(j)); k != "" {
				keys[k] = f.Type.Field(j).Type
			}
		}
		tables[name] = keys
	}
	return tables
}

// tomlName is a struct field's TOML key, "" when it has none.
func tomlName(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if !f.IsExported() || tag == "-" || tag == "" {
		return ""
	}
	return tag
}

// checkSchema reports the first (by line) unknown table, unknown key or
// value of the wrong type in doc, or nil.
func (f *File) checkSchema(doc map[string]any) error {
	tables := schemaTables()
	var probs []keyProblem
	for name, v := range doc {
		keys, known := tables[name]
		if !known {
			probs = append(probs, f.unknownTopLevel(name, v, tables))
			continue
		}
		tab, ok := v.(map[string]any)
		if !ok {
			probs = append(probs, keyProblem{line: f.lineOfKeyIn("", name), err: fmt.Errorf("%s must be a table ([%s] followed by its keys), got %s", name, name, describeValue(v))})
			continue
		}
		for k, val := range tab {
			if keys == nil {
				break // any key (a map table)
			}
			line := f.lineOfKeyIn(name, k)
			t, known := keys[k]
			if !known {
				probs = append(probs, keyProblem{line: line, entry: name + "." + k, err: errors.New("unknown key" + suggestKey(k, sortedKeys(keys), name+"."))})
				continue
			}
			if want, ok := typeMatches(t, val); !ok {
				probs = append(probs, keyProblem{line: line, err: fmt.Errorf("%s.%s must be %s, got %s", name, k, want, describeValue(val))})
			}
		}
	}
	if len(probs) == 0 {
		return nil
	}
	sort.Slice(probs, func(i, j int) bool { return lineOrder(probs[i].line) < lineOrder(probs[j].line) })
	p := probs[0]
	return &Error{Path: f.Path, Line: p.line, Entry: p.entry, Err: p.err}
}

// lineOrder sorts unknown lines (0) last.
func lineOrder(line int) int {
	if line == 0 {
		return int(^uint(0) >> 1)
	}
	return line
}

// unknownTopLevel describes a top-level name that is not one of File's tables.
func (f *File) unknownTopLevel(name string, v any, tables map[string]map[string]reflect.Type) keyProblem {
	names := sortedKeys(tables)
	if _, isTable := v.(map[string]any); isTable {
		line := f.lineOfTable(name)
		msg := fmt.Sprintf("unknown table [%s]", name)
		if s := closest(name, names); s != "" {
			msg += fmt.Sprintf(" (did you mean [%s]?)", s)
		}
		return keyProblem{line: line, err: fmt.Errorf("%s; the tables are %s", msg, "["+strings.Join(names, "], [")+"]")}
	}
	// A key outside any table: perhaps one that belongs in a table.
	msg := "unknown key at the top level, outside any table"
	for _, t := range names {
		if _, ok := tables[t][name]; ok {
			msg += fmt.Sprintf(" (it belongs in [%s]: put it below a [%s] line)", t, t)
			break
		}
	}
	return keyProblem{line: f.lineOfKeyIn("", name), entry: name, err: errors.New(msg)}
}

// suggestKey is " (did you mean PREFIXkey?)" for the closest known key, or "".
func suggestKey(k string, known []string, prefix string) string {
	if s := closest(k, known); s != "" {
		return fmt.Sprintf(" (did you mean %s%s?)", prefix, s)
	}
	return ""
}

// closest is the known name nearest to s by edit distance, when it is near
// enough to be a likely typo (at most a third of its length, at least 1), or "".
func closest(s string, known []string) string {
	best, bestD := "", -1
	for _, k := range known {
		d := editDistance(strings.ToLower(s), k)
		if bestD < 0 || d < bestD {
			best, bestD = k, d
		}
	}
	limit := len(best) / 3
	if limit < 1 {
		limit = 1
	}
	if bestD < 0 || bestD > limit {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var durationType = reflect.TypeOf(Duration{})

// typeMatches reports whether the decoded TOML value v fits the Go type t,
// and t in plain words.
func typeMatches(t reflect.Type, v any) (string, bool) {
	switch {
	case t == durationType:
		_, ok := v.(string)
		return `a duration string such as "10s" or "5m"`, ok
	case t.Kind() == reflect.String:
		_, ok := v.(string)
		return "a string", ok
	case t.Kind() == reflect.Bool:
		_, ok := v.(bool)
		return "true or false", ok
	case t.Kind() == reflect.Int:
		_, ok := v.(int64)
		return "a whole number", ok
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		list, ok := v.([]any)
		for _, e := range list {
			if _, isStr := e.(string); !isStr {
				ok = false
			}
		}
		return "a list of strings", ok
	}
	return "a value of type " + t.String(), true
}

// describeValue names the type of a decoded TOML value in plain words.
func describeValue(v any) string {
	switch x := v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64:
		return "a whole number"
	case float64:
		return "a decimal number"
	case time.Time:
		return "a date/time"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	case []any:
		for _, e := range x {
			if _, ok := e.(string); !ok {
				return "a list containing " + describeValue(e)
			}
		}
		return "a list of strings"
	}
	return fmt.Sprintf("a %T", v)
}

// lineOfTable finds the line of the [name] header.
func (f *File) lineOfTable(name string) int {
	for i, l := range f.raw {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") {
			h, _, _ := strings.Cut(strings.Trim(t, "[]"), "]")
			if strings.TrimSpace(strings.Trim(h, "[]")) == name {
				return i + 1
			}
		}
	}
	return f.lineOfKeyIn("", name)
}

// lineOfKeyIn finds the line assigning key inside table ("" for the top
// level), or a dotted "table.key =" line, falling back to any line
// assigning key.
func (f *File) lineOfKeyIn(table, key string) int {
	cur := ""
	for i, l := range f.raw {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") {
			h := strings.TrimSpace(strings.Trim(t, "[]"))
			if j := strings.Index(h, "]"); j >= 0 {
				h = strings.TrimSpace(h[:j])
			}
			cur = h
			continue
		}
		if cur == table && assigns(t, key) {
			return i + 1
		}
		if cur == "" && table != "" && assigns(t, table+"."+key) {
			return i + 1
		}
	}
	return f.lineOfKey(key)
}

// assigns reports whether the trimmed line t assigns key.
func assigns(t, key string) bool {
	for _, k := range []string{key, `"` + key + `"`} {
		if rest, ok := strings.CutPrefix(t, k); ok && strings.HasPrefix(strings.TrimSpace(rest), "=") {
			return true
		}
	}
	return false
}
