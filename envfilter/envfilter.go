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
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
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

// tokenFormats match values that are tokens by their own format
// (compiled on first use: every process of sandgate, the sandbox's init
// too, would otherwise compile it at start).
var tokenFormats = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|glpat-[A-Za-z0-9_-]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|npm_[A-Za-z0-9]{36}|sk-ant-[A-Za-z0-9_-]{20,}|(AKIA|ASIA)[A-Z0-9]{16})$`)
})

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
	if tokenFormats().MatchString(v) {
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
