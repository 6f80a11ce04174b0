// Command sandgate runs commands whose network egress goes only through its policy proxy.
package main

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/spf13/cobra"
	_ "golang.org/x/net/idna"
	_ "golang.org/x/net/publicsuffix"
	_ "golang.org/x/sys/unix"
	_ "github.com/elastic/go-seccomp-bpf"
	_ "github.com/landlock-lsm/go-landlock/landlock"
	_ "github.com/google/nftables"
	_ "github.com/vishvananda/netlink"
	_ "github.com/vishvananda/netns"
	_ "github.com/creack/pty"
)

func main() {}
