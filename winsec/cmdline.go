package winsec

import "strings"

// QuoteArg quotes one argument so that CommandLineToArgvW (and the C
// runtime's parser) reads it back unchanged: arguments without spaces,
// tabs or quotes are left alone; otherwise the argument is put in double
// quotes, with each quote escaped and the backslashes that precede a quote
// (or the closing quote) doubled.
func QuoteArg(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n\v\"") {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	slashes := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			slashes++
			continue
		case '"':
			b.WriteString(strings.Repeat(`\`, 2*slashes+1))
			b.WriteByte('"')
		default:
			b.WriteString(strings.Repeat(`\`, slashes))
			b.WriteByte(c)
		}
		slashes = 0
	}
	b.WriteString(strings.Repeat(`\`, 2*slashes))
	b.WriteByte('"')
	return b.String()
}

// ComposeCommandLine joins args into a Windows command line, each argument
// quoted by QuoteArg.
func ComposeCommandLine(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = QuoteArg(a)
	}
	return strings.Join(q, " ")
}

// SplitCommandLine splits a command line the way CommandLineToArgvW splits
// the arguments after the program name (the rules of the Microsoft C
// runtime since 2008): white space separates arguments outside quotes; 2N
// backslashes before a quote are N backslashes and the quote toggles
// quoting; 2N+1 backslashes before a quote are N backslashes and a literal
// quote; other backslashes are literal; "" inside quotes is a literal quote.
// It is the inverse of ComposeCommandLine and is used to test it.
func SplitCommandLine(s string) []string {
	var args []string
	var cur strings.Builder
	inArg, quoted := false, false
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			n := 0
			for i < len(s) && s[i] == '\\' {
				n++
				i++
			}
			if i < len(s) && s[i] == '"' {
				cur.WriteString(strings.Repeat(`\`, n/2))
				if n%2 == 1 {
					cur.WriteByte('"')
					i++
				}
			} else {
				cur.WriteString(strings.Repeat(`\`, n))
			}
			inArg = true
			continue
		case c == '"':
			if quoted && i+1 < len(s) && s[i+1] == '"' {
				cur.WriteByte('"')
				i += 2
				inArg = true
				continue
			}
			quoted = !quoted
			inArg = true
		case (c == ' ' || c == '\t') && !quoted:
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(c)
			inArg = true
		}
		i++
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}
