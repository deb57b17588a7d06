#!/usr/bin/env bash
# Build the embedded FerretDB (setup/ferretdb/main.go) into $1/bin, from the Go module proxy,
# with the patches in this folder applied to FerretDB v1.24.2. The first two fix SQLite-backend bugs
# that made the session mirror slow and then stuck; neither changes what a command returns.
#
# sqlite-id-index.patch: upstream looks documents up by `_ferretdb_sjson->'$._id'`, while
#   the unique `_id_` index it creates is on `_ferretdb_sjson->"_id"`. SQLite uses an
#   expression index only for the same expression, so every update, upsert, delete and
#   find by _id scanned the whole collection (measured: 55 ms per update at 10,000
#   documents, growing linearly; 1 ms after the patch at any size).
# update-close-query.patch: an `update` command kept the query of every matched document
#   open until the command ended; each holds one of the 100 pooled SQLite connections,
#   so a bulk write with 100+ updates of existing documents hung until the client timed out.
# auth.patch: exposes FerretDB's own SCRAM authentication (upstream's experimental
#   `--test-enable-new-auth`) to the embeddable package, and sets the one user's password at
#   every start instead of only when its database is first created (so a new password takes).
#
# How: the FerretDB module is copied out of the Go module cache, patched, and used in
# place of the proxy's copy through a Go workspace file (no edit to go.mod).
set -euo pipefail
deps=$(realpath -m "$1")
here=$(cd "$(dirname "$0")" && pwd)
src="$deps/ferretdb-src"
cd "$here"
go mod download github.com/FerretDB/FerretDB
orig=$(go list -m -f '{{.Dir}}' github.com/FerretDB/FerretDB)
mkdir -p "$deps"
rm -rf "$src"
cp -r "$orig" "$src"
chmod -R u+w "$src"
for p in "$here"/*.patch; do
	patch -s -d "$src" -p1 < "$p"
done
cat > "$deps/ferretdb.work" <<WORK
go $(go list -m -f '{{.GoVersion}}')

use (
	$here
	$src
)
WORK
GOWORK="$deps/ferretdb.work" GOBIN="$deps/bin" go install .
