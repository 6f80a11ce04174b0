//go:build linux

package firewall

import (
	"github.com/sandgate/sandgate/nftfw"
	"github.com/sandgate/sandgate/ruleplan"
)

// ProxySocketMark is ruleplan.ProxySocketMark.
//
// Deprecated: use ruleplan.ProxySocketMark.
const ProxySocketMark = ruleplan.ProxySocketMark

// Remove is nftfw.Remove.
//
// Deprecated: use nftfw.Remove.
func Remove(netns string) error { return nftfw.Remove(netns) }
