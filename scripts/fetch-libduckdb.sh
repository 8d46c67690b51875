#!/usr/bin/env bash
# Fetches DuckDB's official prebuilt shared library (1.5.6, linux-x64) from the npm registry, where
# DuckDB publishes it inside @duckdb/node-bindings-linux-x64, into $1 (default .deps/duckdb).
# Linking it takes minutes where the crate's `bundled` C++ build takes ~45 on two cores.
set -euo pipefail
dest=${1:-.deps/duckdb}
pkg="@duckdb/node-bindings-linux-x64@1.5.6-r.1"
if [[ -f "$dest/libduckdb.so" ]]; then exit 0; fi
command -v npm >/dev/null || { echo "fetch-libduckdb: npm is required (apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && npm pack --silent "$pkg" >/dev/null )
tar -xzf "$tmp"/*.tgz -C "$tmp" package/libduckdb.so
mkdir -p "$dest"
mv "$tmp/package/libduckdb.so" "$dest/libduckdb.so"
echo "fetch-libduckdb: $pkg -> $dest/libduckdb.so"
