#!/usr/bin/env bash
# CI for github.com/ecows/ecows/metrics/prometheus, a Go module of its own (it depends on
# client_golang, which the main module must not): go vet, staticcheck (installed by .ci/run
# in GOPATH/bin), and the tests under the race detector, among them the end-to-end scrape on
# 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$(go env GOPATH)/bin:$PATH"

echo "=== metrics/prometheus: go vet"
go vet ./...
echo "=== metrics/prometheus: staticcheck"
staticcheck ./...
echo "=== metrics/prometheus: go test -race"
go test -race -count=1 ./...
