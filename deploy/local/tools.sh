#!/usr/bin/env bash
# Builds the pinned third-party tools once into the tools folder and installs
# PostgreSQL 15 from Debian when it is missing. Re-running it is cheap: a tool is
# rebuilt only when its pinned version changes.
set -euo pipefail

TOOLS_DIR=${TIP_TOOLS_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/.tools/bin}
mkdir -p "$TOOLS_DIR"

# name, go package, pinned version. The Temporal CLI 1.5.1 is the newest that
# `go install` accepts (later tags carry replace directives).
TOOLS=(
  "temporal github.com/temporalio/cli/cmd/temporal v1.5.1"
  "minio github.com/minio/minio v0.0.0-20260212201848-7aac2a2c5b7c"
  "workflowcheck go.temporal.io/sdk/contrib/tools/workflowcheck v0.6.0"
)

# `tools.sh prod` builds the production-like stack's Temporal instead: the server
# and its SQL schema tool from go.temporal.io/server (the same server version the
# CLI's dev server embeds) and the standalone Web UI. Each is a long build on a cold
# module cache (about ten minutes on two cores); they are cached like the rest.
if [[ ${1:-} == prod ]]; then
  TOOLS=(
    "temporal-server go.temporal.io/server/cmd/server v1.29.1"
    "temporal-sql-tool go.temporal.io/server/cmd/tools/sql v1.29.1"
    "temporal-ui-server github.com/temporalio/ui-server/v2/cmd/server v2.42.1"
  )
fi

for row in "${TOOLS[@]}"; do
  read -r name pkg version <<<"$row"
  stamp="$TOOLS_DIR/.$name.version"
  if [[ -x $TOOLS_DIR/$name && -f $stamp && $(cat "$stamp") == "$version" ]]; then
    continue
  fi
  echo "tools: building $name $version into $TOOLS_DIR (a few minutes on a cold module cache)" >&2
  # Each binary is named for the tool (several are called "server").
  gobin=$(mktemp -d)
  (cd /tmp && GOBIN="$gobin" GOFLAGS=-buildvcs=false go install "$pkg@$version")
  mv "$gobin/$(basename "$pkg")" "$TOOLS_DIR/$name"
  rmdir "$gobin"
  echo "$version" >"$stamp"
done
[[ ${1:-} == prod ]] && exit 0

# Debian packages: PostgreSQL 15 (the private cluster), 7-Zip (the lab builds real
# .7z spam archives; TIP's reader is tested against them), Dovecot (the lab's IMAP
# spamtrap), Chromium (the browser tests drive it headless), Unbound (flux triage
# is tested behind a real caching resolver, and `tip serve dns` as its RPZ
# primary), BIND (an RPZ secondary over TSIG, named-checkzone), Postfix and swaks
# (a mail server refusing spam by TIP's DNSBL), nftables (the nft export checked),
# dnsperf and rbldnsd (the DNSBL benchmark), and Prometheus (promtool checks the
# alert rules of deploy/prometheus and runs their unit tests). Installed only
# when missing; no daemon is started (neither Prometheus on port 9090 nor its
# node exporter): the tests run their own, on loopback.
pg_bin=${TIP_PG_BIN:-/usr/lib/postgresql/15/bin}
missing=()
[[ -x $pg_bin/initdb && -x $pg_bin/pg_ctl ]] || missing+=(postgresql)
command -v 7z >/dev/null || missing+=(p7zip-full)
[[ -x /usr/sbin/dovecot ]] || missing+=(dovecot-imapd)
[[ -x ${TIP_CHROMIUM:-/usr/bin/chromium} ]] || missing+=(chromium)
[[ -x /usr/sbin/unbound ]] || missing+=(unbound)
[[ -x /usr/sbin/named ]] || missing+=(bind9)
command -v named-checkzone >/dev/null || missing+=(bind9-utils)
[[ -x /usr/sbin/postfix ]] || missing+=(postfix)
command -v swaks >/dev/null || missing+=(swaks)
[[ -x /usr/sbin/nft ]] || missing+=(nftables)
command -v dnsperf >/dev/null || missing+=(dnsperf)
[[ -x /usr/sbin/rbldnsd ]] || missing+=(rbldnsd)
command -v promtool >/dev/null || missing+=(prometheus)
if ((${#missing[@]})); then
  echo "tools: installing Debian packages: ${missing[*]}" >&2
  sudo=""
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || { echo "tools: need root (or sudo) to run: apt-get install ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  # TIP runs its own private PostgreSQL cluster; do not let the package create and
  # start a system-wide one on port 5432.
  $sudo mkdir -p /etc/postgresql-common
  if [[ ! -f /etc/postgresql-common/createcluster.conf ]]; then
    echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  # Postfix's package asks what to configure: nothing (the tests configure their own).
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
  # Packages that would start system-wide daemons (named on port 53, prometheus
  # on 9090) do not: policy-rc.d forbids it for the install (Docker images
  # already have one).
  own_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Options::=--force-confold "${missing[@]}"
  if [[ -n $own_policy ]]; then
    $sudo rm -f /usr/sbin/policy-rc.d
  fi
fi
