package fsview

import "path"

// defaultHiddenHome are the credential stores hidden by default, relative
// to the home directory. A name ending in "*" matches every entry of its
// directory that starts with the rest.
var defaultHiddenHome = []string{
	".ssh",                               // ssh keys (--unhide ~/.ssh/known_hosts for git over ssh)
	".gnupg",                             // gpg keys
	".aws",                               // AWS credentials and config
	".azure",                             // Azure CLI tokens
	".kube",                              // Kubernetes contexts and tokens
	".docker/config.json",                // registry credentials
	".netrc",                             // passwords for curl, git, ftp
	".git-credentials",                   // git credential-store
	".npmrc",                             // npm tokens
	".yarnrc.yml",                        // Yarn Berry npmAuthToken
	".pypirc",                            // PyPI tokens
	".gem/credentials",                   // RubyGems API key
	".cargo/credentials*",                // crates.io tokens (credentials, credentials.toml)
	".password-store",                    // pass
	".pgpass",                            // PostgreSQL passwords
	".my.cnf",                            // MySQL passwords
	".vault-token",                       // HashiCorp Vault token
	".terraform.d/credentials.tfrc.json", // Terraform Cloud tokens
	".local/share/keyrings",              // GNOME keyring files
	".mozilla",                           // Firefox profiles (cookies, passwords)
	".thunderbird",                       // mail passwords
	"snap/firefox/common/.mozilla",       // Firefox as a snap
	".var/app/org.mozilla.firefox",       // Firefox as a flatpak
	".var/app/com.google.Chrome",         // Chrome as a flatpak
	".var/app/org.chromium.Chromium",     // Chromium as a flatpak
}

// defaultHiddenConfig are hidden by default, relative to the configuration
// directory ($XDG_CONFIG_HOME, else ~/.config).
var defaultHiddenConfig = []string{
	"gcloud",             // Google Cloud credentials
	"gh",                 // GitHub CLI token
	"hub",                // hub token
	"git/credentials",    // git credential-store's other file
	"op",                 // 1Password CLI
	"rclone/rclone.conf", // cloud storage credentials
	"doctl",              // DigitalOcean token
	"google-chrome",      // Chrome profiles
	"chromium",           // Chromium profiles
	"BraveSoftware",      // Brave profiles
	"microsoft-edge",     // Edge profiles
	"vivaldi",            // Vivaldi profiles
	"opera",              // Opera profiles
}

// DefaultHidden returns the credential stores hidden by default, as
// absolute paths (some ending in "*", a prefix of names in their
// directory). configHome "" means home/.config.
func DefaultHidden(home, configHome string) []string {
	if home == "" {
		return nil
	}
	if configHome == "" {
		configHome = path.Join(home, ".config")
	}
	var out []string
	for _, p := range defaultHiddenHome {
		out = append(out, path.Join(home, p))
	}
	for _, p := range defaultHiddenConfig {
		out = append(out, path.Join(configHome, p))
	}
	return out
}

// ShellStartupFiles are the files a shell (or a login session) runs code
// from, relative to a home directory. They are never writable at the top
// of a writable root, nor in the home directory.
var ShellStartupFiles = []string{
	".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile",
	".zshrc", ".zprofile", ".zshenv", ".zlogin", ".zlogout",
	".config/fish", // config.fish, conf.d/ and functions/ (autoloaded)
	".kshrc", ".mkshrc", ".cshrc", ".tcshrc", ".login", ".logout",
	".xprofile", ".xinitrc", ".xsession", ".xsessionrc",
	".config/autostart",     // desktop sessions start these at login
	".config/systemd/user",  // user services
	".config/environment.d", // the user session's environment
	".pam_environment",      // the same, older
	".ssh/rc",               // run by sshd at every login
}

// CodeFiles are names that make tools run code when the user next works in
// a directory outside the sandbox; they are never writable wherever they
// are found inside a writable root (at any depth). Git repositories are
// handled separately: their hooks, configuration (and what it includes,
// core.hooksPath, core.fsmonitor) and .git files.
var CodeFiles = []string{
	".envrc",                                                         // direnv runs it on cd
	".mise.toml", "mise.toml", ".mise.local.toml", "mise.local.toml", // mise [hooks] and [env] run on cd
	".vscode",                                             // tasks run on folder open, settings name programs
	".pre-commit-config.yaml",                             // pre-commit's hooks (local hooks are commands)
	".husky",                                              // husky's hooks
	"lefthook.yml", ".lefthook.yml", "lefthook-local.yml", // lefthook's hooks
}

// NotWalked are directory names the walk for git repositories and code
// files does not enter: package and build caches that are large, made by
// tools, and hold no repository a person works in. (What the command
// writes there is its own; a repository that already was inside one is not
// protected.)
var NotWalked = []string{"node_modules", ".venv", "__pycache__", ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".gradle"}

// hgFiles are the Mercurial files that run code (hooks), relative to a
// .hg directory.
var hgFiles = []string{"hgrc"}

// gitDirFiles are the files and directories of a git directory that make
// code run: hooks, and the configuration that can name hooks, an
// fsmonitor, pagers, editors and filters.
var gitDirFiles = []string{"hooks", "config", "config.worktree"}

// SystemFiles are read by sandgate itself (its resolver) during a run, and
// hold sandgate's state: they are never writable.
var SystemFiles = []string{
	"/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf",
	"/etc/passwd", "/etc/group",
	"/var/lib/sandgate", "/run/sandgate",
}

// devices are the device files the command may write (or open for
// writing): the null and random devices and its terminal.
var devices = []string{
	"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
	"/dev/tty", "/dev/ptmx", "/dev/pts",
}

// privateTmp are the shared, world-writable directories that get a private
// empty tmpfs per run (when they exist; /tmp must).
var privateTmp = []string{"/tmp", "/var/tmp", "/dev/shm"}
