package fsview

import (
	"errors"
	"strings"
)

// gitEntry is one variable of a git configuration file.
type gitEntry struct {
	Section    string // lower case
	Subsection string // as written ("" when none)
	Name       string // lower case
	Value      string // unquoted, escapes applied; "true" for a bare name
}

// errGitConfig is a configuration git itself would refuse. Planning then
// protects what it can without it (the file itself stays read-only).
var errGitConfig = errors.New("malformed git configuration")

// parseGitConfig parses a git configuration file (git-config(1) syntax:
// [section], [section "subsection"], name = value, comments with # or ;,
// quotes, backslash escapes and continuation lines). It keeps what it read
// before an error.
func parseGitConfig(data string) ([]gitEntry, error) {
	p := gitParser{s: data}
	for {
		p.skipSpaceAndComments()
		if p.i >= len(p.s) {
			return p.out, nil
		}
		var err error
		if p.s[p.i] == '[' {
			err = p.header()
		} else {
			err = p.variable()
		}
		if err != nil {
			return p.out, err
		}
	}
}

type gitParser struct {
	s              string
	i              int
	section, subse string
	out            []gitEntry
}

func (p *gitParser) skipSpaceAndComments() {
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			p.i++
		case c == '#' || c == ';':
			for p.i < len(p.s) && p.s[p.i] != '\n' {
				p.i++
			}
		default:
			return
		}
	}
}

func isGitNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
}

// header reads [section], [section "sub"] or the old [section.sub].
func (p *gitParser) header() error {
	p.i++ // '['
	start := p.i
	for p.i < len(p.s) && (isGitNameChar(p.s[p.i]) || p.s[p.i] == '.') {
		p.i++
	}
	name := p.s[start:p.i]
	if name == "" || p.i >= len(p.s) {
		return errGitConfig
	}
	sub := ""
	if p.s[p.i] == ' ' || p.s[p.i] == '\t' {
		for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
			p.i++
		}
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return errGitConfig
		}
		p.i++
		var b strings.Builder
		for {
			if p.i >= len(p.s) || p.s[p.i] == '\n' {
				return errGitConfig
			}
			c := p.s[p.i]
			p.i++
			if c == '"' {
				break
			}
			if c == '\\' {
				if p.i >= len(p.s) || p.s[p.i] == '\n' {
					return errGitConfig
				}
				c = p.s[p.i]
				p.i++
			}
			b.WriteByte(c)
		}
		sub = b.String()
	} else if dot := strings.IndexByte(name, '.'); dot >= 0 {
		name, sub = name[:dot], strings.ToLower(name[dot+1:])
	}
	if p.i >= len(p.s) || p.s[p.i] != ']' || strings.Contains(name, ".") {
		return errGitConfig
	}
	p.i++
	p.section, p.subse = strings.ToLower(name), sub
	return nil
}

// variable reads name [= value] up to the end of its (continued) line.
func (p *gitParser) variable() error {
	if p.section == "" {
		return errGitConfig
	}
	start := p.i
	for p.i < len(p.s) && isGitNameChar(p.s[p.i]) {
		p.i++
	}
	name := strings.ToLower(p.s[start:p.i])
	if name == "" || !(name[0] >= 'a' && name[0] <= 'z') {
		return errGitConfig
	}
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
	value := "true"
	switch {
	case p.i >= len(p.s) || p.s[p.i] == '\n' || p.s[p.i] == '\r' || p.s[p.i] == '#' || p.s[p.i] == ';':
	case p.s[p.i] == '=':
		p.i++
		v, err := p.value()
		if err != nil {
			return err
		}
		value = v
	default:
		return errGitConfig
	}
	p.out = append(p.out, gitEntry{Section: p.section, Subsection: p.subse, Name: name, Value: value})
	return nil
}

// value reads a value: quotes toggle, escapes apply, unquoted whitespace
// runs become one space and is trimmed at both ends, a comment ends it.
func (p *gitParser) value() (string, error) {
	var b strings.Builder
	quoted := false
	space := 0 // unquoted whitespace seen since the last character
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\n':
			if quoted {
				return "", errGitConfig
			}
			return b.String(), nil
		case !quoted && (c == '#' || c == ';'):
			for p.i < len(p.s) && p.s[p.i] != '\n' {
				p.i++
			}
			return b.String(), nil
		case !quoted && (c == ' ' || c == '\t' || c == '\r'):
			space++
			continue
		case c == '"':
			quoted = !quoted
		case c == '\\':
			if p.i >= len(p.s) {
				return "", errGitConfig
			}
			e := p.s[p.i]
			p.i++
			switch e {
			case '\n':
				continue // continuation line
			case 'n':
				e = '\n'
			case 't':
				e = '\t'
			case 'b':
				e = '\b'
			case '"', '\\':
			default:
				return "", errGitConfig
			}
			p.flushSpace(&b, &space)
			b.WriteByte(e)
		default:
			p.flushSpace(&b, &space)
			b.WriteByte(c)
		}
	}
	if quoted {
		return "", errGitConfig
	}
	return b.String(), nil
}

// flushSpace writes the whitespace that separated two characters of a
// value (none before the first).
func (p *gitParser) flushSpace(b *strings.Builder, n *int) {
	if *n > 0 && b.Len() > 0 {
		b.WriteString(strings.Repeat(" ", *n))
	}
	*n = 0
}
