// Package envfilter removes secret-looking variables from a command's
// environment, unless the user keeps them by name, and says which it
// removed.
//
// The rule, in order:
//
//  1. Kept: a name matching a keep pattern (--env NAME, or NAME* for every
//     name starting with NAME).
//  2. Kept: names that look like secrets but are not: NotSecret (SSH_AUTH_SOCK,
//     GPG_TTY, GPG_KEY, PWD, XAUTHORITY, TOKENIZERS_PARALLELISM, the
//     *_ASKPASS programs, AWS_CA_BUNDLE (a certificate path), ...).
//  3. Dropped: every AWS_* variable (credentials, session tokens, and the
//     profile and region that only matter with them), and the names in
//     SecretNames (DOCKER_AUTH_CONFIG, ...).
//  4. Dropped: names whose words (split at "_", other punctuation and
//     lower-to-upper case changes, compared in upper case) say secret: a
//     word containing SECRET, PASSWORD, PASSWD, PASSPHRASE, CREDENTIAL or
//     PRIVATEKEY; a word ending in TOKEN or TOKENS (GITHUB_TOKEN, GH_TOKEN,
//     NPM_TOKEN, npm_config__authToken, but not TOKENIZERS_...); a word
//     that is PASS, PWD (DB_PASS, MYSQL_PWD; PWD alone is the working
//     directory), APIKEY, AUTHKEY, SECRETKEY, ACCESSKEY, COOKIE or CREDS; a
//     last word that is KEY or KEYS (OPENAI_API_KEY, STRIPE_KEY; not
//     KEYBOARD, not PUBLIC_KEY), PAT (a personal access token: GITHUB_PAT)
//     or AUTH (NPM_CONFIG__AUTH, BASIC_AUTH; not SSH_AUTH_SOCK).
//  5. Dropped: values that are secrets whatever the name: a URL with a
//     password in it (postgres://user:pw@host/db,
//     https://user:token@index/simple), a private key in PEM form, and the
//     token formats that announce themselves (GitHub ghp_, gho_, ghu_,
//     ghs_, ghr_ and github_pat_, GitLab glpat-, Slack xox?-, npm npm_,
//     Anthropic sk-ant-, AWS access key ids AKIA.../ASIA...).
//  6. Everything else is kept.
//
// False positives cost one --env NAME; false negatives are what the file
// system view (hidden credential stores) and the network policy are for.
package envfilter

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"unicode"
)

// NotSecret are names that the word rules would drop but that hold no
// secret (sockets, terminals, directories, programs that ask for one).
var NotSecret = []string{
	"SSH_AUTH_SOCK", "GPG_TTY", "GPG_AGENT_INFO", "PWD", "OLDPWD", "XAUTHORITY",
	"TOKENIZERS_PARALLELISM", "GIT_ASKPASS", "SSH_ASKPASS", "SSH_ASKPASS_REQUIRE", "SUDO_ASKPASS",
	"PASSWORD_STORE_DIR", "KEYTIMEOUT",
	"GPG_KEY", "GPG_KEYS", // public key fingerprints (official Docker images set them)
	"AWS_CA_BUNDLE", // a path to trusted CA certificates, set by some hosts for every tool
}

// SecretNames are dropped by name, whatever the word rules say.
var SecretNames = []string{"DOCKER_AUTH_CONFIG", "KUBE_CONFIG_DATA", "SENTRY_DSN"}

// secretWordParts make a word secret wherever they occur in it.
var secretWordParts = []string{"SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "CREDENTIAL", "PRIVATEKEY"}

// secretWords are secret as whole words.
var secretWords = []string{"PASS", "PWD", "APIKEY", "AUTHKEY", "SECRETKEY", "ACCESSKEY", "COOKIE", "CREDS"}

// secretLastWords are secret as the last word.
var secretLastWords = []string{"KEY", "KEYS", "PAT", "AUTH"}

// tokenFormat is a token format that announces itself: one of the
// prefixes, then only letters, digits and the extra characters (upper-case
// letters only with upperOnly), at least n of them, exactly n with exact.
// They are matched by hand rather than by a regular expression: compiling
// one took ~0.1 ms and ~70 KB at every start of `sandgate run`.
type tokenFormat struct {
	prefixes  []string
	extra     string
	upperOnly bool
	n         int
	exact     bool
}

// tokenFormats are the token formats of rule 5: GitHub, GitLab, Slack, npm,
// Anthropic, AWS access key ids.
var tokenFormats = []tokenFormat{
	{prefixes: []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}, n: 36},
	{prefixes: []string{"github_pat_"}, extra: "_", n: 22},
	{prefixes: []string{"glpat-"}, extra: "_-", n: 20},
	{prefixes: []string{"xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-"}, extra: "-", n: 10},
	{prefixes: []string{"npm_"}, n: 36, exact: true},
	{prefixes: []string{"sk-ant-"}, extra: "_-", n: 20},
	{prefixes: []string{"AKIA", "ASIA"}, upperOnly: true, n: 16, exact: true},
}

// matches reports whether v is a token of format f.
func (f tokenFormat) matches(v string) bool {
	for _, p := range f.prefixes {
		rest, ok := strings.CutPrefix(v, p)
		if !ok {
			continue
		}
		if len(rest) < f.n || f.exact && len(rest) != f.n {
			return false
		}
		for i := 0; i < len(rest); i++ {
			c := rest[i]
			ok := 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || !f.upperOnly && 'a' <= c && c <= 'z' ||
				strings.IndexByte(f.extra, c) >= 0
			if !ok {
				return false
			}
		}
		return true
	}
	return false
}

// isToken reports whether v is a token of one of tokenFormats.
func isToken(v string) bool {
	for _, f := range tokenFormats {
		if f.matches(v) {
			return true
		}
	}
	return false
}

// words splits a variable name into upper-case words: at every character
// that is not a letter or digit, and where a lower-case letter is followed
// by an upper-case one.
func words(name string) []string {
	var out []string
	var cur strings.Builder
	var prev rune
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, strings.ToUpper(cur.String()))
			cur.Reset()
		}
	}
	for _, r := range name {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
		case unicode.IsUpper(r) && unicode.IsLower(prev):
			flush()
			cur.WriteRune(r)
		default:
			cur.WriteRune(r)
		}
		prev = r
	}
	flush()
	return out
}

// Secret reports whether NAME=VALUE looks like a secret, and the reason
// ("" when it does not).
func Secret(name, value string) (bool, string) {
	if slices.Contains(NotSecret, name) {
		return false, ""
	}
	if strings.HasPrefix(strings.ToUpper(name), "AWS_") {
		return true, "AWS_* variable"
	}
	if slices.Contains(SecretNames, name) {
		return true, "a credential by name"
	}
	ws := words(name)
	for i, w := range ws {
		for _, part := range secretWordParts {
			if strings.Contains(w, part) {
				return true, "name contains " + part
			}
		}
		if strings.HasSuffix(w, "TOKEN") || strings.HasSuffix(w, "TOKENS") {
			return true, "name contains a token"
		}
		if slices.Contains(secretWords, w) && !(w == "PWD" && len(ws) == 1) {
			return true, "name contains " + w
		}
		if i == len(ws)-1 && i > 0 && slices.Contains(secretLastWords, w) {
			if (w == "KEY" || w == "KEYS") && (ws[i-1] == "PUBLIC" || ws[i-1] == "PUB") {
				return false, ""
			}
			return true, "name ends in _" + w
		}
	}
	return secretValue(value)
}

// secretValue reports values that are secrets whatever their name.
func secretValue(v string) (bool, string) {
	if strings.Contains(v, "-----BEGIN") && strings.Contains(v, "PRIVATE KEY") {
		return true, "value is a private key"
	}
	if isToken(v) {
		return true, "value is an access token"
	}
	if strings.Contains(v, "://") && strings.Contains(v, "@") {
		if u, err := url.Parse(v); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				return true, "value is a URL with a password"
			}
		}
	}
	return false, ""
}

// CheckKeep validates a keep pattern: a variable name, or a name prefix
// followed by "*".
func CheckKeep(pattern string) error {
	name := strings.TrimSuffix(pattern, "*")
	if name == "" || strings.ContainsAny(name, "=*\x00") {
		return fmt.Errorf("invalid variable name %q (want NAME or PREFIX*)", pattern)
	}
	return nil
}

// kept reports whether name matches one of the keep patterns.
func kept(name string, keep []string) bool {
	for _, k := range keep {
		if p, ok := strings.CutSuffix(k, "*"); ok {
			if strings.HasPrefix(name, p) {
				return true
			}
		} else if k == name {
			return true
		}
	}
	return false
}

// Filter returns env (KEY=VALUE entries, order kept) without the
// secret-looking variables that no keep pattern matches, and the names it
// dropped (sorted, each once). Entries without "=" are kept as they are.
func Filter(env, keep []string) (out, dropped []string) {
	seen := map[string]bool{}
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || kept(name, keep) {
			out = append(out, kv)
			continue
		}
		if s, _ := Secret(name, value); !s {
			out = append(out, kv)
			continue
		}
		if !seen[name] {
			seen[name] = true
			dropped = append(dropped, name)
		}
	}
	sort.Strings(dropped)
	return out, dropped
}

// Summary is the one line the exit summary prints about dropped variables
// ("" when none were dropped).
func Summary(dropped []string) string {
	switch len(dropped) {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf("did not pass the secret-looking variable %s to the command; to pass it, add --env %s", dropped[0], dropped[0])
	}
	return fmt.Sprintf("did not pass %d secret-looking variables to the command: %s; to pass one, add --env NAME (e.g. --env %s)",
		len(dropped), strings.Join(dropped, ", "), dropped[0])
}
