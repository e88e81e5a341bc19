#!/usr/bin/env bash
# CI for the broker adapters, which are Go modules of their own: go vet and go test -race in
# broker/nats (a NATS server runs in the test process) and broker/redis (the test starts
# redis-server from Debian on a free port of 127.0.0.1). Package hub itself, in the main
# module, is covered by the root's `go test -race ./...`. Installs redis-server if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null; then
	echo "=== install redis-server"
	if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
redis-server --version

for mod in broker/nats broker/redis; do
	echo "=== $mod: go vet"
	(cd "$mod" && go vet ./...)
	if command -v staticcheck >/dev/null; then
		echo "=== $mod: staticcheck"
		(cd "$mod" && staticcheck ./...)
	fi
	echo "=== $mod: go test -race"
	(cd "$mod" && CI=${CI:-true} go test -race -count=1 ./...)
done
