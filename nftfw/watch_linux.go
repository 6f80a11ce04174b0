//go:build linux

package nftfw

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

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
// deleted, added or replaced, the table deleted or made dormant, the
// ruleset flushed) it
// verifies the table again and, when enforcement no longer matches the
// plan, calls onBreak with the reason in plain words ("sandgate's nftables
// table (inet sandgate) was deleted", "sandgate's nftables rules changed:
// rule ... is missing"). It also follows each transaction through its
// notifications: one that deleted the table, made it dormant, or changed
// part of it in place, without making it anew is a break even when another
// transaction has put the table back before it is read. A change that leaves the
// table as it should be, such as Apply of the same plan (which replaces
// the table whole in one transaction), does not call it. onBreak is called
// once per break (again only after the table was seen repaired and broken
// anew), and also when the watch itself fails, since nothing watches the
// table then.
//
// onBreak runs on the watch's own goroutine, one call at a time. The watch
// ends when ctx ends or stop is called. stop first takes the notifications
// of every change committed before it was called, so a break among them
// is reported before it returns; called while onBreak runs, it returns at
// once instead. No onBreak call begins after stop has returned. Watching
// needs CAP_NET_ADMIN in the namespace.
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
		if n, ok := nftNotification(uint16(m.Header.Type), m.Data); ok {
			out = append(out, n)
		}
	}
	return out, nil
}

// nftNotification is the netlink message of type typ with payload data as
// an nftables notification (ok false: another subsystem's).
func nftNotification(typ uint16, data []byte) (n notification, ok bool) {
	if typ>>8 != unix.NFNL_SUBSYS_NFTABLES {
		return notification{}, false
	}
	return notification{typ: uint8(typ), data: data}, true
}

// pending reads, without waiting, the next datagram already queued on the
// socket (recvmsg with MSG_DONTWAIT, around the runtime's poller, which
// after interrupt would refuse to read at all).
func (e *nlEvents) pending() ([]notification, error) {
	rc, err := e.conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 1<<16)
	var n int
	var rerr error
	if err := rc.Control(func(fd uintptr) {
		n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
	}); err != nil {
		return nil, err
	}
	switch {
	case errors.Is(rerr, unix.EAGAIN):
		return nil, errNoneQueued
	case errors.Is(rerr, unix.ENOBUFS):
		return nil, errLost
	case rerr != nil:
		return nil, rerr
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return nil, fmt.Errorf("parsing nftables notifications: %w", err)
	}
	var out []notification
	for _, m := range msgs {
		if n, ok := nftNotification(m.Header.Type, m.Data); ok {
			out = append(out, n)
		}
	}
	return out, nil
}

// interrupt sets a read deadline in the past: a blocked Receive returns.
func (e *nlEvents) interrupt() { _ = e.conn.SetReadDeadline(time.Unix(1, 0)) }

func (e *nlEvents) close() error { return e.conn.Close() }
