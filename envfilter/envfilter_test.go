package envfilter

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestSecret(t *testing.T) {
	tests := []struct {
		name, value string
		secret      bool
	}{
		// Named secrets.
		{"GITHUB_TOKEN", "x", true},
		{"GH_TOKEN", "x", true},
		{"NPM_TOKEN", "x", true},
		{"CI_JOB_TOKEN", "x", true},
		{"HF_TOKEN", "x", true},
		{"npm_config__authToken", "x", true},
		{"npm_config_//registry.npmjs.org/:_authToken", "x", true},
		{"NPM_CONFIG__AUTH", "x", true},
		{"githubToken", "x", true},
		{"AWS_SECRET_ACCESS_KEY", "x", true},
		{"AWS_ACCESS_KEY_ID", "x", true},
		{"AWS_SESSION_TOKEN", "x", true},
		{"AWS_PROFILE", "dev", true},
		{"AWS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt", false},
		{"aws_region", "eu-west-1", true},
		{"OPENAI_API_KEY", "x", true},
		{"ANTHROPIC_API_KEY", "x", true},
		{"STRIPE_KEY", "x", true},
		{"SIGNING_KEYS", "x", true},
		{"APIKEY", "x", true},
		{"MY_APIKEY", "x", true},
		{"DB_PASSWORD", "x", true},
		{"PGPASSWORD", "x", true},
		{"MYSQL_PWD", "x", true},
		{"SMTP_PASS", "x", true},
		{"REDIS_PASSWD", "x", true},
		{"SSH_PASSPHRASE", "x", true},
		{"CLIENT_SECRET", "x", true},
		{"AZURE_CLIENT_SECRET", "x", true},
		{"GOOGLE_APPLICATION_CREDENTIALS", "/k.json", true},
		{"DOCKER_CREDS", "x", true},
		{"GITHUB_PAT", "x", true},
		{"BASIC_AUTH", "u:p", true},
		{"SESSION_COOKIE", "x", true},
		{"TLS_PRIVATE_KEY", "x", true},
		{"DOCKER_AUTH_CONFIG", "{}", true},
		{"SENTRY_DSN", "https://k@o.ingest.sentry.io/1", true},
		// Secrets by value.
		{"DATABASE_URL", "postgres://app:hunter2@db:5432/app", true},
		{"PIP_INDEX_URL", "https://user:tok@pypi.example/simple", true},
		{"MY_VAR", "ghp_" + strings.Repeat("a", 36), true},
		{"MY_VAR", "github_pat_" + strings.Repeat("A", 40), true},
		{"MY_VAR", "glpat-" + strings.Repeat("x", 20), true},
		{"MY_VAR", "npm_" + strings.Repeat("Z", 36), true},
		{"MY_VAR", "AKIA" + strings.Repeat("A", 16), true},
		{"MY_VAR", "xoxb-1234567890-abcdef", true},
		{"MY_VAR", "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n", true},
		// Not secrets.
		{"SSH_AUTH_SOCK", "/run/user/1000/ssh", false},
		{"GPG_TTY", "/dev/pts/1", false},
		{"GPG_KEY", "A035C8C19219BA821ECEA86B64E628F8D684696D", false},
		{"TERM", "xterm", false},
		{"KEYBOARD", "us", false},
		{"XKB_KEYMAP", "us", false},
		{"PWD", "/home/u", false},
		{"OLDPWD", "/", false},
		{"PATH", "/usr/bin", false},
		{"HOME", "/home/u", false},
		{"XAUTHORITY", "/run/user/1000/xauth", false},
		{"TOKENIZERS_PARALLELISM", "false", false},
		{"GIT_ASKPASS", "/usr/bin/ksshaskpass", false},
		{"PASSWORD_STORE_DIR", "/home/u/.pw", false},
		{"SENTRY_PUBLIC_KEY", "x", false},
		{"GOOGLE_OAUTH", "x", false},
		{"DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/1000/bus", false},
		{"GOPRIVATE", "example.com", false},
		{"GIT_CONFIG_KEY_0", "user.name", false},
		{"HTTPS_PROXY", "http://proxy:3128", false},
		{"REPO_URL", "ssh://git@github.com/x/y", false},
		{"MY_VAR", "ghp_short", false},
		{"PATCH_LEVEL", "3", false},
		{"KEY", "x", false},
	}
	for _, tt := range tests {
		got, why := Secret(tt.name, tt.value)
		if got != tt.secret {
			t.Errorf("Secret(%q, %q) = %v (%s), want %v", tt.name, tt.value, got, why, tt.secret)
		}
		if got && why == "" {
			t.Errorf("Secret(%q) gives no reason", tt.name)
		}
	}
}

func TestFilter(t *testing.T) {
	env := []string{
		"PATH=/usr/bin", "GITHUB_TOKEN=t1", "HOME=/home/u", "AWS_REGION=eu", "AWS_ACCESS_KEY_ID=a",
		"NPM_TOKEN=n", "GITHUB_TOKEN=t2", "MALFORMED", "DB_PASSWORD=p", "SSH_AUTH_SOCK=/s",
	}
	out, dropped := Filter(env, []string{"NPM_TOKEN", "AWS_*"})
	wantOut := []string{"PATH=/usr/bin", "HOME=/home/u", "AWS_REGION=eu", "AWS_ACCESS_KEY_ID=a", "NPM_TOKEN=n", "MALFORMED", "SSH_AUTH_SOCK=/s"}
	if !slices.Equal(out, wantOut) {
		t.Errorf("kept %q, want %q", out, wantOut)
	}
	if want := []string{"DB_PASSWORD", "GITHUB_TOKEN"}; !slices.Equal(dropped, want) {
		t.Errorf("dropped %q, want %q", dropped, want)
	}
	if _, d := Filter(env, nil); len(d) != 5 {
		t.Errorf("without keeps dropped %q", d)
	}
}

func TestCheckKeep(t *testing.T) {
	for _, ok := range []string{"GITHUB_TOKEN", "AWS_*", "npm_config__authToken"} {
		if err := CheckKeep(ok); err != nil {
			t.Errorf("CheckKeep(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "*", "A=B", "A*B*", "A\x00"} {
		if err := CheckKeep(bad); err == nil {
			t.Errorf("CheckKeep(%q) accepted", bad)
		}
	}
}

func TestSummary(t *testing.T) {
	if s := Summary(nil); s != "" {
		t.Errorf("Summary(nil) = %q", s)
	}
	if s := Summary([]string{"GH_TOKEN"}); !strings.Contains(s, "GH_TOKEN") || !strings.Contains(s, "--env GH_TOKEN") {
		t.Errorf("Summary one = %q", s)
	}
	s := Summary([]string{"A_TOKEN", "B_KEY"})
	if !strings.Contains(s, "2 secret-looking variables") || !strings.Contains(s, "A_TOKEN, B_KEY") || !strings.Contains(s, "--env") {
		t.Errorf("Summary two = %q", s)
	}
}

func FuzzFilter(f *testing.F) {
	f.Add("GITHUB_TOKEN", "ghp_x", "AWS_*")
	f.Add("npm_config__authToken", "x", "npm_*")
	f.Add("DATABASE_URL", "postgres://a:b@c/d", "")
	f.Fuzz(func(t *testing.T, name, value, keep string) {
		if strings.Contains(name, "=") {
			return
		}
		kv := name + "=" + value
		var keeps []string
		if CheckKeep(keep) == nil {
			keeps = []string{keep}
		}
		out, dropped := Filter([]string{kv, "PATH=/bin"}, keeps)
		secret, _ := Secret(name, value)
		wantDropped := secret && !kept(name, keeps)
		if wantDropped != (len(dropped) == 1) || (len(dropped) == 1 && dropped[0] != name) {
			t.Fatalf("Filter(%q, %q) dropped %q, Secret = %v", kv, keeps, dropped, secret)
		}
		if len(out)+len(dropped) != 2 || !slices.Contains(out, "PATH=/bin") {
			t.Fatalf("Filter(%q) = %q, %q", kv, out, dropped)
		}
	})
}

// tokenRE is the regular expression the token formats were written as,
// kept here as the reference the hand-written matcher must agree with.
var tokenRE = regexp.MustCompile(`^(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|glpat-[A-Za-z0-9_-]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|npm_[A-Za-z0-9]{36}|sk-ant-[A-Za-z0-9_-]{20,}|(AKIA|ASIA)[A-Z0-9]{16})$`)

// TestTokenFormatsAgreeWithRegexp tries every prefix with bodies around the
// length bounds, made of each allowed and several refused characters.
func TestTokenFormatsAgreeWithRegexp(t *testing.T) {
	prefixes := []string{"", "gh", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "ghx_", "github_pat_", "github_pat",
		"glpat-", "glpat_", "xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-", "xoxz-", "npm_", "NPM_", "sk-ant-", "sk-ant_",
		"AKIA", "ASIA", "akia", "AKIB", "x ghp_"}
	chars := []string{"a", "Z", "7", "_", "-", ".", " ", "é", "\n", "\x00"}
	lengths := []int{0, 1, 9, 10, 11, 15, 16, 17, 19, 20, 21, 22, 23, 35, 36, 37, 40}
	matched := 0
	for _, p := range prefixes {
		for _, c := range chars {
			for _, n := range lengths {
				for _, v := range []string{
					p + strings.Repeat(c, n),
					p + strings.Repeat("A", n) + c,
					p + c + strings.Repeat("b", n),
					p + strings.Repeat("9", n/2) + c + strings.Repeat("Q", n-n/2),
				} {
					want := tokenRE.MatchString(v)
					if got := isToken(v); got != want {
						t.Errorf("isToken(%q) = %v, the regexp says %v", v, got, want)
					}
					if want {
						matched++
					}
				}
			}
		}
	}
	if matched < 100 {
		t.Errorf("only %d generated values are tokens: the test tries too little", matched)
	}
}

func FuzzTokenFormats(f *testing.F) {
	f.Add("ghp_" + strings.Repeat("a", 36))
	f.Add("AKIA" + strings.Repeat("B", 16))
	f.Add("xoxb-123-456")
	f.Add("npm_" + strings.Repeat("z", 37))
	f.Fuzz(func(t *testing.T, v string) {
		if got, want := isToken(v), tokenRE.MatchString(v); got != want {
			t.Fatalf("isToken(%q) = %v, the regexp says %v", v, got, want)
		}
	})
}
