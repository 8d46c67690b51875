#!/usr/bin/env bash
# Times a fresh clone's `make run` (issue 13, acceptance 4): clones this checkout's HEAD into an
# empty directory with its own target directory, starts `make run` there and reports the seconds
# until `GET /readyz` first answers 200, then stops the pipeline. BENCHMARKS.md, "Cold build of
# `make run`". Usage: scripts/time-cold-run.sh [DIR] (default: a new temporary directory).
set -euo pipefail

src=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
dir=${1:-$(mktemp -d /tmp/cold-run.XXXXXX)}
listen=${INVENTORY_LISTEN:-127.0.0.1:8080}
if curl -sf "http://$listen/readyz" >/dev/null 2>&1; then
    echo "time-cold-run: something already answers on $listen; stop it first" >&2
    exit 1
fi
git clone -q "$src" "$dir/repo"
cd "$dir/repo"
log="$dir/make-run.log"
start=$(date +%s.%N)
# A new session so that the whole pipeline can be stopped at once afterwards.
env -u CARGO_TARGET_DIR setsid make run >"$log" 2>&1 &
pid=$!
trap 'kill -INT -- -"$pid" 2>/dev/null || true' EXIT
until curl -sf "http://$listen/readyz" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "time-cold-run: make run exited before answering; see $log" >&2
        exit 1
    fi
    sleep 1
done
end=$(date +%s.%N)
grep -m1 'Finished' "$log" || true
awk -v a="$start" -v b="$end" -v d="$dir" \
    'BEGIN { printf "time-cold-run: make run answered /readyz after %.0f s (%s)\n", b - a, d }'
