#!/usr/bin/env bash
# Installs the peers `go run ./bench inspect` compares sandgate's TLS
# inspection with (run as root; a no-op when they are present). Not part of
# CI: benchmarks are run by hand. sandgate itself needs nothing at run time.
#   mitmproxy (Debian's package; the bench runs its `mitmdump`)
set -euo pipefail
need=()
command -v mitmdump >/dev/null || need+=(mitmproxy)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing benchmark peers: ${need[*]} (install them, or run as root)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
