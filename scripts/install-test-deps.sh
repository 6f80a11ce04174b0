#!/usr/bin/env bash
# Installs what the test suite needs beyond Go itself (run as root; a no-op
# when everything is present). sandgate itself needs nothing at run time.
set -euo pipefail
need=()
command -v file >/dev/null || need+=(file)
command -v ip >/dev/null || need+=(iproute2)
command -v useradd >/dev/null || need+=(passwd)
command -v ssh >/dev/null || need+=(openssh-client)
command -v curl >/dev/null || need+=(curl)
command -v bwrap >/dev/null || need+=(bubblewrap) # bench run: the start-up of a comparable sandbox
command -v nc >/dev/null || need+=(netcat-openbsd)
command -v squid >/dev/null || need+=(squid) # egress: the upstream proxy test (TestUpstreamSquid)
# e2e real clients under the default view (e2e/realclients_test.go).
command -v git >/dev/null || need+=(git)
[ -x /usr/lib/git-core/git-http-backend ] || need+=(git)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
command -v npm >/dev/null || need+=(npm)
command -v javac >/dev/null || need+=(openjdk-17-jdk-headless) # sandbox: Java trusts the run CA (trust_linux_test.go); Java on the identity backend (identity_proxyauth_linux_test.go)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing test prerequisites: ${need[*]} (install them, or run as root)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
