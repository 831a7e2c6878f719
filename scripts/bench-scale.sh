#!/usr/bin/env bash
# How git_status, a recursive filesystem_list and filesystem_search grow with
# the workspace: 10k, 50k and 100k files (git repositories with 1% of the files
# modified and 1% untracked). Prints a Markdown table; raw JSON goes to
# bench-peers/results/scale-*.json. Caps keep responses bounded: the list stops
# at max_entries (1,000 by default), the search at max_results (200).
#
#   bash scripts/bench-scale.sh            # SCALE_SIZES="10000 50000 100000" SCALE_N=20
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SIZES=${SCALE_SIZES:-10000 50000 100000}
N=${SCALE_N:-20}
BASE=/tmp/mcp-scale
RESULTS=$ROOT/bench-peers/results
mkdir -p "$RESULTS" "$BASE"
cargo build --release --quiet
cargo bench --quiet --bench e2e --no-run 2>/dev/null

make_repo() { # $1 = files
    local dir=$BASE/$1
    [ -f "$dir/.done" ] && return
    rm -rf "$dir" && mkdir -p "$dir"
    python3 - "$dir" "$1" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i // 1000:03d}")
    os.makedirs(d, exist_ok=True)
    body = f"file {i}\nsome text to search through {i % 97}\n"
    if i % 5000 == 0:
        body += "needle\n"
    with open(os.path.join(d, f"f{i:06d}.txt"), "w") as f:
        f.write(body)
PY
    git -C "$dir" init -q -b main
    git -C "$dir" add -A
    git -C "$dir" -c user.name=b -c user.email=b@example.com commit -qm init
    python3 - "$dir" "$1" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(0, n, 100):          # 1% modified
    with open(os.path.join(root, f"d{i // 1000:03d}", f"f{i:06d}.txt"), "a") as f:
        f.write("changed\n")
for i in range(n // 100):           # 1% untracked
    d = os.path.join(root, "new", f"u{i // 1000:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"u{i:06d}.txt"), "w") as f:
        f.write("untracked\n")
PY
    touch "$dir/.done"
}

printf '| files | git_status p50 | git_status response | list recursive p50 | list response | search p50 | search response |\n'
printf '|---:|---:|---:|---:|---:|---:|---:|\n'
for size in $SIZES; do
    make_repo "$size" >&2
    work=$(mktemp -d)
    printf '{"approval_mode":"auto","approval_ttl_seconds":300,"approval_timeout_seconds":120,"max_steps_per_run":10,"max_retries_per_tool":2}\n' > "$work/policy.json"
    out=$RESULTS/scale-$size.json
    cargo bench --quiet --bench e2e -- \
        --server "env EXECUTION_WORKSPACE_ROOT=$BASE/$size EXECUTION_CONFIG=$work/policy.json EXECUTION_AUDIT_LOG=$work/audit.jsonl $ROOT/target/release/execlayer serve" \
        --cwd "$work" -n "$N" --cold 1 --pipeline 1 --pipeline-rounds 1 \
        --call '{"label":"git_status","tool":"git_status","arguments":{}}' \
        --call '{"label":"list","tool":"filesystem_list","arguments":{"recursive":true}}' \
        --call '{"label":"search","tool":"filesystem_search","arguments":{"pattern":"needle"}}' \
        --json-out "$out" >/dev/null
    python3 - "$out" "$size" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
w = {x["label"]: x for x in d["results"][0]["workloads"]}
cell = lambda l: (f'{w[l]["latency_ms"]["p50"]:.1f} ms', f'{w[l]["response_bytes_mean"] / 1024:.1f} KiB')
g, l, s = cell("git_status"), cell("list"), cell("search")
print(f"| {int(sys.argv[2]):,} | {g[0]} | {g[1]} | {l[0]} | {l[1]} | {s[0]} | {s[1]} |")
PY
    rm -rf "$work"
done
