#!/usr/bin/env bash
# One setup step, run only when needed: step.sh STAMPS NAME PRODUCT INPUT... -- COMMAND...
#
# Runs COMMAND unless STAMPS/NAME holds the checksum of the INPUT files and PRODUCT
# (what the step makes) exists; records the checksum once COMMAND succeeds. A checksum,
# not file times: a fresh clone or a checkout touches every file, and a step must
# rerun when its inputs changed, not when they were merely written again.
set -euo pipefail
stamps=$1 name=$2 product=$3
shift 3
inputs=()
while [ "$1" != "--" ]; do inputs+=("$1"); shift; done
shift
sum=$(cat "${inputs[@]}" | sha256sum | cut -d' ' -f1)
if [ -e "$product" ] && [ "$(cat "$stamps/$name" 2>/dev/null)" = "$sum" ]; then
    exit 0
fi
"$@"
mkdir -p "$stamps"
echo "$sum" > "$stamps/$name"
