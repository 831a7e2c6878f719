#!/usr/bin/env bash
# execlayer against the tools a user would reach for instead, on large trees:
# filesystem_search vs `rg -n`, filesystem_list vs `find` and the Node reference
# server's list_directory, git_status vs `git status --porcelain` and
# mcp-server-git, git_diff vs `git diff` and mcp-server-git; plus start-up CPU
# on an empty and a 100k-file workspace. Rounds alternate A and B (A = execlayer);
# each cell is the median of the round medians, with the spread (slowest round ÷
# fastest) to show how noisy the machine was. Prints a Markdown table; raw JSON
# goes to bench-peers/results/scale.json.
#
#   bash scripts/bench-scale.sh      # SCALE_N=10 calls a round, SCALE_ROUNDS=5, REAL_TREE=~/.cargo/registry/src
#   SCALE_ONLY='list|git_diff' bash scripts/bench-scale.sh   # only the rows whose label matches (a Python regex)
#
# Needs: rg (apt-get install ripgrep), git, find, python3. The peer rows need the
# reference servers in bench-peers/ (bash scripts/bench-peers.sh installs them);
# without them those rows are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${SCALE_N:-10}
ROUNDS=${SCALE_ROUNDS:-5}
BASE=/tmp/mcp-scale
REAL_TREE=${REAL_TREE:-$HOME/.cargo/registry/src}
RESULTS=$ROOT/bench-peers/results
FS_SERVER=$ROOT/bench-peers/node/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js
GIT_PEER=$ROOT/bench-peers/venv/bin/python
mkdir -p "$RESULTS" "$BASE"
command -v rg >/dev/null || { echo "bench-scale: rg is required (apt-get install -y ripgrep)" >&2; exit 1; }
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet
BIN=$ROOT/target/release/execlayer

make_repo() { # $1 = files: folders of 1,000; 1% modified, 1% untracked; "needle" in every 5,000th
    local dir=$BASE/$1
    [ -f "$dir/.git/bench-done" ] && return
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
for i in range(0, n, 100):
    with open(os.path.join(root, f"d{i // 1000:03d}", f"f{i:06d}.txt"), "a") as f:
        f.write("changed\n")
for i in range(n // 100):
    d = os.path.join(root, "new", f"u{i // 1000:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"u{i:06d}.txt"), "w") as f:
        f.write("untracked\n")
PY
    git -C "$dir" status --porcelain >/dev/null # settle the index's racy entries, as a user's repo is
    touch "$dir/.git/bench-done"
}
make_flat() { # $1 = entries in one folder
    local dir=$BASE/flat$1
    [ -d "$dir" ] && [ "$(ls "$dir" | wc -l)" = "$1" ] && return
    rm -rf "$dir" && mkdir -p "$dir"
    python3 -c "
import sys
for i in range($1): open(f'$dir/e{i:05d}.txt', 'w').write('x' * (i % 300))"
}
make_repo 10000
make_repo 100000
make_flat 510
make_flat 10000
[ -d /tmp/mcp-bench/repo ] || bash ../shared/bench/make_fixtures.sh /tmp/mcp-bench >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '{"approval_mode":"auto","approval_ttl_seconds":300,"approval_timeout_seconds":120,"max_steps_per_run":10,"max_retries_per_tool":2}\n' >"$work/policy.json"
RG=(rg -n --hidden --no-require-git -g '!.git')

python3 - "$BIN" "$work" "$N" "$ROUNDS" "$REAL_TREE" "$FS_SERVER" "$GIT_PEER" "${RG[@]}" >"$work/cases.json" <<'PY'
import json, os, sys
bin_, work, n, rounds, real, fs_server, git_peer = sys.argv[1:8]
rg = sys.argv[8:]
n, rounds = int(n), int(rounds)
def server(ws):
    return {"server": [bin_, "serve"], "env": {"EXECUTION_WORKSPACE_ROOT": ws, "EXECUTION_CONFIG": f"{work}/policy.json",
            "EXECUTION_AUDIT_LOG": f"{work}/audit.jsonl"}, "cwd": ws, "n": n, "rounds": rounds}
cases = []
B = "/tmp/mcp-scale"
for label, ws, pat in [("search 10k files", f"{B}/10000", "needle"), ("search 100k files", f"{B}/100000", "needle"),
                       (f"search real tree ({real})", real, "Frobnicate")]:
    cases.append({**server(ws), "label": label, "tool": "filesystem_search",
                  "args": {"pattern": pat, "max_results": 5000}, "cli": rg + [pat]})
if os.path.exists(fs_server):
    for count in (510, 10000):
        d = f"{B}/flat{count}"
        cases.append({**server(B), "label": f"list one folder of {count}", "tool": "filesystem_list",
                      "args": {"path": d, "max_entries": 20000},
                      "peer": {"server": ["node", fs_server, B], "tool": "list_directory", "args": {"path": d}}})
cases.append({**server(f"{B}/100000"), "label": "list recursive, 20k of 100k", "tool": "filesystem_list",
              "args": {"recursive": True, "max_entries": 20000},
              "cli": ["sh", "-c", "find . -path ./.git -prune -o -print | head -20000"]})
cases.append({**server(f"{B}/100000"), "label": "git_status 100k", "tool": "git_status", "args": {},
              "cli": ["git", "status", "--porcelain"]})
cases.append({**server(f"{B}/100000"), "label": "git_diff 100k", "tool": "git_diff", "args": {}, "cli": ["git", "diff"]})
repo = "/tmp/mcp-bench/repo"
if os.path.exists(git_peer):
    peer = [git_peer, "-m", "mcp_server_git", "--repository", repo]
    cases.append({**server(repo), "label": "git_status 2,000-file fixture", "tool": "git_status", "args": {},
                  "peer": {"server": peer, "tool": "git_status", "args": {"repo_path": repo}}})
    cases.append({**server(repo), "label": "git_diff 2,000-file fixture", "tool": "git_diff", "args": {},
                  "peer": {"server": peer, "tool": "git_diff_unstaged", "args": {"repo_path": repo}}})
cases.append({**server(repo), "label": "git_status 2,000-file fixture (CLI)", "tool": "git_status", "args": {},
              "cli": ["git", "status", "--porcelain"]})
only = os.environ.get("SCALE_ONLY")
if only:
    import re
    cases = [c for c in cases if re.search(only, c["label"])]
print(json.dumps(cases))
PY
python3 scripts/bench_tools.py "$work/cases.json" >"$RESULTS/scale.json"

# Start-up CPU: user+system time of a server that answered initialize and then
# idled for 2 s (any background start-up work done), on an empty and a 100k workspace.
startup_cpu() {
    python3 - "$BIN" "$1" "$work" <<'PY'
import json, os, subprocess, sys, time, statistics
bin_, ws, work = sys.argv[1:4]
env = dict(os.environ, EXECUTION_WORKSPACE_ROOT=ws, EXECUTION_CONFIG=f"{work}/policy.json", EXECUTION_AUDIT_LOG=f"{work}/audit.jsonl")
tick = os.sysconf("SC_CLK_TCK")
samples = []
for _ in range(7):
    p = subprocess.Popen([bin_, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    p.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"b","version":"1"}}}\n')
    p.stdin.flush(); p.stdout.readline(); time.sleep(2)
    f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
    samples.append((int(f[11]) + int(f[12])) * 1000 / tick)
    p.stdin.close(); p.wait()
print(f"{statistics.median(samples):.0f}")
PY
}
mkdir -p "$work/empty"
cpu_empty=-; cpu_big=-
if [ -z "${SCALE_ONLY:-}" ]; then
    cpu_empty=$(startup_cpu "$work/empty")
    cpu_big=$(startup_cpu "$BASE/100000")
fi

python3 - "$RESULTS/scale.json" "$cpu_empty" "$cpu_big" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
print("| workload | execlayer p50 | alternative p50 | ratio (wall) | CPU per call A / B | ratio (CPU) | spread A / B | execlayer peak RSS | response |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    alt = "peer" if r.get("peer_hwm_kib") is not None else "cli"
    print(f"| {r['label']} ({alt}) | {r['a_ms']:.2f} ms | {r['b_ms']:.2f} ms | {r['ratio']:.2f}× | "
          f"{r['a_cpu_ms_per_call']:.1f} / {r['b_cpu_ms_per_call']:.1f} ms | {r['a_cpu_ms_per_call'] / max(r['b_cpu_ms_per_call'], 1e-9):.2f}× | "
          f"{r['a_spread']:.2f} / {r['b_spread']:.2f} | {r['server_hwm_kib'] / 1024:.1f} MiB | {r['response_bytes'] / 1024:.1f} KiB |")
print(f"\nStart-up CPU (initialize, then 2 s idle; median of 7): empty workspace {sys.argv[2]} ms, 100k files {sys.argv[3]} ms.")
PY
