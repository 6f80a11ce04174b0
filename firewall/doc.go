// Package firewall is the former name of package nftfw, kept only so that
// the sandbox tests, which another change is splitting, still build; it
// goes once they import nftfw and ruleplan. Nothing else may use it.
//
// Deprecated: use nftfw, and ruleplan.ProxySocketMark for the socket mark.
package firewall
