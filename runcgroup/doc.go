// Package runcgroup makes the cgroup (v2) an identity-backend run's
// command runs in, which is how the transparent path's nftables rules tell
// concurrent runs apart: every process of the run is started into the
// cgroup (clone3's CLONE_INTO_CGROUP, through SysProcAttr.UseCgroupFD), each
// socket remembers the cgroup of the process that made it, and the rules
// match "socket cgroupv2 level Level == ID" (see nftfw.IdentityRun). The
// sandbox user cannot move a process out: the cgroup's files belong to
// root.
//
// nftables compares the ancestor of a socket's cgroup at an absolute depth
// of the whole hierarchy, so Create refuses to work inside a cgroup
// namespace other than the initial one, where the depth seen in the
// filesystem is not the kernel's.
//
// Only Linux has it.
package runcgroup
