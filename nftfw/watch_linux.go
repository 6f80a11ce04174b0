//go:build linux

package nftfw

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/sandgate/sandgate/ruleplan"
)

// Watch keeps sandgate's table in the network namespace at netns ("" is
// the caller's own) under watch while runs depend on it: it subscribes to
// the namespace's nftables notifications (netlink, not polling) first, then
// verifies the table against plan and offlineUID once, and returns an error
// (wrapping ErrDrift when the table does not match) if that fails, so there
// is no moment between "checked" and "watched". From then on, after every
// change that touches the table (a rule, chain, set or element of it
// deleted, added or replaced, the table deleted, the ruleset flushed) it
// verifies the table again and, when enforcement no longer matches the
// plan, calls onBreak with the reason in plain words ("sandgate's nftables
// table (inet sandgate) was deleted", "sandgate's nftables rules changed:
// rule ... is missing"). A change that leaves the table as it should be,
// such as Apply of the same plan, does not call it. onBreak is called once
// per break (again only after the table was repaired and broken anew), and
// also when the watch itself fails, since nothing watches the table then.
//
// onBreak runs on the watch's own goroutine, one call at a time. The watch
// ends when ctx ends or stop is called; stop returns once it has ended (at
// once when called while onBreak runs), and no onBreak call begins after
// it has returned. Watching needs CAP_NET_ADMIN in the namespace.
func Watch(ctx context.Context, netns string, plan ruleplan.Plan, offlineUID uint32, onBreak func(reason string)) (stop func(), err error) {
	sub, err := subscribe(netns)
	if err != nil {
		return nil, err
	}
	return watch(ctx, sub, &Netlink{NetNS: netns}, plan, offlineUID, onBreak)
}

// nlEvents is a netlink socket that has joined the nftables multicast group.
type nlEvents struct{ conn *netlink.Conn }

// subscribe joins the nftables notifications of the namespace at netns.
func subscribe(netns string) (*nlEvents, error) {
	cfg := &netlink.Config{}
	if netns != "" {
		f, err := os.Open(netns)
		if err != nil {
			return nil, fmt.Errorf("opening network namespace: %w", err)
		}
		defer f.Close() // the socket, once made, stays in the namespace
		cfg.NetNS = int(f.Fd())
	}
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, netlinkErr("subscribing to the nftables notifications of "+where(netns), err)
	}
	if err := conn.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		conn.Close()
		return nil, netlinkErr("subscribing to the nftables notifications of "+where(netns), err)
	}
	// Room for a large transaction's notifications; an overflow is
	// noticed (ENOBUFS) and answered with a fresh check anyway.
	_ = conn.SetReadBuffer(1 << 20)
	return &nlEvents{conn: conn}, nil
}

func (e *nlEvents) receive() ([]notification, error) {
	msgs, err := e.conn.Receive()
	if errors.Is(err, unix.ENOBUFS) {
		return nil, errLost
	}
	if err != nil {
		return nil, err
	}
	var out []notification
	for _, m := range msgs {
		if uint16(m.Header.Type)>>8 != unix.NFNL_SUBSYS_NFTABLES {
			continue
		}
		out = append(out, notification{typ: uint8(m.Header.Type), data: m.Data})
	}
	return out, nil
}

func (e *nlEvents) close() error { return e.conn.Close() }
