#!/usr/bin/env bash
# CI for the otel module, a Go module of its own so that the main module does not depend on
# OpenTelemetry: go vet, staticcheck and go test -race. .ci/run installs staticcheck and puts
# GOPATH/bin on PATH; run alone, this looks there too.
set -euo pipefail
cd "$(dirname "$0")"
GOBIN=$(go env GOPATH)/bin
export PATH="$GOBIN:$PATH"

echo "=== otel: go vet"
go vet ./...
echo "=== otel: staticcheck"
staticcheck ./...
echo "=== otel: go test -race"
go test -race -count=1 ./...
