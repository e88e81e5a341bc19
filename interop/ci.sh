#!/usr/bin/env bash
# CI for the interop module: installs the peers that are missing (Debian packages, among them
# redis-server for the chat's engines, then the pinned npm packages), then gofmt, go vet and
# the interop tests under -race. Idempotent, and quick when everything is installed. Fails on
# the first failure.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n=== interop: %s\n' "$*"; }

step "peers"
missing=()
# nodejs may come from elsewhere (NodeSource bundles npm): only install what is absent.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# The tests run Debian's /usr/bin/python3, not a python3 that happens to be first on PATH.
/usr/bin/python3 -c 'import websockets' >/dev/null 2>&1 || missing+=(python3-websockets)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# TestChromiumChat runs the chat on Redis Streams too; hub/ci.sh installs it as well, but
# this script must not depend on having run after it.
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if ((${#missing[@]} > 0)); then
	sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	step "apt-get install ${missing[*]}"
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
printf 'node %s, npm %s, %s, websockets %s\n' "$(node --version)" "$(npm --version 2>/dev/null)" \
	"$(/usr/bin/python3 --version)" "$(/usr/bin/python3 -c 'import websockets; print(websockets.__version__)')"
chromium --version 2>/dev/null | grep -i chromium
redis-server --version

# npm ci reinstalls from package-lock.json every time; skip it when node_modules already holds
# exactly what the lock file pins.
if ! node -e '
	const lock = require("./package-lock.json").packages;
	const fs = require("fs");
	for (const [path, meta] of Object.entries(lock)) {
		if (!path) continue;
		const pkg = JSON.parse(fs.readFileSync(path + "/package.json", "utf8"));
		if (pkg.version !== meta.version) process.exit(1);
	}' 2>/dev/null; then
	step "npm ci"
	npm ci --no-audit --no-fund
fi
node -p '"ws " + require("ws/package.json").version'

step "gofmt -l"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	printf 'gofmt -l lists:\n%s\n' "$unformatted"
	exit 1
fi

step "go vet"
go vet ./...

step "go test -race"
# ci.sh has installed every peer, so a missing one is a failure, not a skip.
CI=true go test -race -count=1 ./...
