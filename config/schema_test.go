package config

import (
	"errors"
	"testing"
)

// TestSchemaErrors: unknown tables and keys and wrong types name the file,
// the line, the key and the expected type in plain words.
func TestSchemaErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // the whole error text
	}{
		{"unknown table", "# sandgate\n\n[netwrok]\nallowed_domains = [\"a.test\"]\n",
			"config.toml:3: unknown table [netwrok] (did you mean [network]?); the tables are [environment], [filesystem], [network], [proxy], [secrets]"},
		{"unknown table far off", "[network]\n[logging]\nlevel = 1\n",
			"config.toml:2: unknown table [logging]; the tables are [environment], [filesystem], [network], [proxy], [secrets]"},
		{"unknown key", "[network]\nallowed_domains = []\nalow_local_binding = true\n",
			`config.toml:3: entry "network.alow_local_binding": unknown key (did you mean network.allow_local_binding?)`},
		{"unknown key no suggestion", "[proxy]\ncolour = \"blue\"\n",
			`config.toml:2: entry "proxy.colour": unknown key`},
		{"key outside a table", "allowed_domains = [\"a.test\"]\n",
			`config.toml:1: entry "allowed_domains": unknown key at the top level, outside any table (it belongs in [network]: put it below a [network] line)`},
		{"string for list", "[network]\n\nallowed_domains = \"example.com\"\n",
			"config.toml:3: network.allowed_domains must be a list of strings, got a string"},
		{"list with a number", "[filesystem]\nwrite = [\"/a\", 3]\n",
			"config.toml:2: filesystem.write must be a list of strings, got a list containing a whole number"},
		{"string for bool", "[network]\nallow_local_binding = \"yes\"\n",
			"config.toml:2: network.allow_local_binding must be true or false, got a string"},
		{"string for int", "[proxy]\nmax_conns = \"10\"\n",
			"config.toml:2: proxy.max_conns must be a whole number, got a string"},
		{"number for duration", "[proxy]\nidle_timeout = 30\n",
			`config.toml:2: proxy.idle_timeout must be a duration string such as "10s" or "5m", got a whole number`},
		{"table is a value", "network = 1\n",
			"config.toml:1: network must be a table ([network] followed by its keys), got a whole number"},
		{"dotted key", "network.allowed_domain = [\"a.test\"]\n",
			`config.toml:1: entry "network.allowed_domain": unknown key (did you mean network.allowed_domains?)`},
		{"first by line", "[proxy]\nmax_conns = \"x\"\n[network]\nallowed_domains = 1\n",
			"config.toml:2: proxy.max_conns must be a whole number, got a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("config.toml", []byte(tt.src))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Parse error %v is not a *config.Error", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %q\nwant %q", err.Error(), tt.want)
			}
		})
	}
}

func TestClosest(t *testing.T) {
	known := []string{"allowed_domains", "denied_domains", "allow_local_binding"}
	for _, tt := range []struct{ in, want string }{
		{"allowed_domain", "allowed_domains"},
		{"ALLOWED_DOMAINS", "allowed_domains"},
		{"deny_domains", "denied_domains"},
		{"colour", ""},
		{"", ""},
	} {
		if got := closest(tt.in, known); got != tt.want {
			t.Errorf("closest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if d := editDistance("kitten", "sitting"); d != 3 {
		t.Errorf("editDistance = %d, want 3", d)
	}
}
