#!/usr/bin/env bash
# Builds h2spec 2.0.0 without the Go module proxy, which this workplace cannot reach:
# the source comes from a checkout (H2SPEC_SRC, default /tmp/h2spec-src: the
# summerwind/h2spec tree), its three dependencies from Debian's Go packages, built in
# GOPATH mode. Puts the binary at ${1:-/tmp/h2eng/h2spec}. See docs/http2-engine.md.
set -euo pipefail
src=${H2SPEC_SRC:-/tmp/h2spec-src}
out=${1:-/tmp/h2eng/h2spec}
apt-get install -y -qq golang-go golang-github-fatih-color-dev \
    golang-github-spf13-cobra-dev golang-golang-x-net-dev >/dev/null
gopath=$(mktemp -d)
mkdir -p "$gopath/src/github.com/summerwind" "$(dirname "$out")"
cp -a "$src" "$gopath/src/github.com/summerwind/h2spec"
cd "$gopath/src/github.com/summerwind/h2spec"
GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOPROXY=off \
    go build -o "$out" ./cmd/h2spec
rm -rf "$gopath"
"$out" --version
