#!/usr/bin/env bash
# The one test command (README, .ci/run). Installs what the tests need,
# idempotently, then runs gofmt, go vet and the full test suite with -race.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

# System packages: a real redis-server for the shared-limit tests.
need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]} (apt-get)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# npm clients and servers used by the interop tests (official OpenAI client,
# MCP TypeScript SDK and reference server, Qdrant JS client), from the lockfile.
if [ -f testdata/npm/package-lock.json ]; then
  if [ ! -d testdata/npm/node_modules ] || [ testdata/npm/package-lock.json -nt testdata/npm/node_modules/.package-lock.json ]; then
    log "npm ci (testdata/npm)"
    (cd testdata/npm && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './testdata/npm/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:" >&2; echo "$unformatted" >&2; exit 1
fi

log "go vet"
go vet ./...

log "go test -race"
go test -race -count=1 -timeout 20m ./... "$@"
