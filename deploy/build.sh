#!/bin/sh
# The one build recipe of the servicedesk binary: a static executable (no
# cgo), symbols stripped, the version stamped into main.version. The
# Dockerfile's build stage runs it, and so does internal/deploycheck's
# test, so the image is built the way the tests built. The image also
# trims build paths (GOFLAGS=-trimpath in its build stage); the test does
# not, so that it shares the compile cache of the rest of the suite (a
# -trimpath build compiles everything again: 4.5 min on 2 cores).
#
#   sh deploy/build.sh OUT [VERSION]     VERSION defaults to $VERSION, else "dev"
set -eu
out=${1:?usage: deploy/build.sh OUT [VERSION]}
version=${2:-${VERSION:-dev}}
case $version in
  *[!A-Za-z0-9._+-]*) echo "build.sh: version '$version': want letters, digits and . _ + -" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
CGO_ENABLED=0 exec go build -ldflags "-s -w -X main.version=$version" -o "$out" ./cmd/servicedesk
