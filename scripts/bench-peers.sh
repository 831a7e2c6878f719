#!/usr/bin/env bash
# Benchmarks execlayer against pinned reference MCP servers and prints a
# Markdown table for BENCHMARKS.md on stdout (progress and tables on stderr).
#
#   bash scripts/bench-peers.sh            # install, build, run everything, print the table
#   bash scripts/bench-peers.sh --report   # only print the table of the last results
#
# What it does, from the repository root:
#   1. installs the reference servers into bench-peers/ (gitignored), pinned by
#      copies of the shared lock files:
#        bench-peers/node/   @modelcontextprotocol/server-filesystem (npm ci)
#        bench-peers/venv/   mcp-server-git (pip install -r requirements.txt)
#      (skipped when the installed copy already matches the shared pins)
#   2. cargo build --release
#   3. make_fixtures.sh: /tmp/mcp-bench/ws (1 KiB and 1 MiB files, 500-file
#      dir) and /tmp/mcp-bench/repo (2,000-file git repo with a dirty tree)
#   4. cargo bench --bench e2e for:
#        fs       execlayer vs server-filesystem (execlayer-fs.json vs fs.json)
#        fs-whole the 1 MiB file read whole by both (filesystem_read with max_bytes)
#        git      execlayer vs mcp-server-git (execlayer-git.json vs git.json)
#        git-cli  `git status --porcelain`, one process per call
#        http     execlayer serve --http, 1, 8 and 32 concurrent sessions
#      raw JSON results go to bench-peers/results/*.json
#   5. prints the Markdown summary.
#
# Needs: cargo, node + npm, python3 (with venv), git; network for the first install.
# Knobs (environment): BENCH_SHARED (default ../shared/bench), BENCH_N (calls per
# round, 200), BENCH_ROUNDS (5), BENCH_COLD (10), BENCH_PIPELINE (50),
# BENCH_HTTP_SECONDS (5), BENCH_HTTP_CLIENTS (1,8,32), BENCH_EXEC_N (200).
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=$PWD
PEERS=$ROOT/bench-peers
RESULTS=$PEERS/results
SHARED=${BENCH_SHARED:-$ROOT/../shared/bench}
FIXTURES=/tmp/mcp-bench # the shared workload files name these paths
N=${BENCH_N:-200}
ROUNDS=${BENCH_ROUNDS:-5}
COLD=${BENCH_COLD:-10}
PIPELINE=${BENCH_PIPELINE:-50}
HTTP_SECONDS=${BENCH_HTTP_SECONDS:-5}
HTTP_CLIENTS=${BENCH_HTTP_CLIENTS:-1,8,32}
EXEC_N=${BENCH_EXEC_N:-200}
EXECLAYER=$ROOT/target/release/execlayer
FS_SERVER=$PEERS/node/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'bench-peers: %s\n' "$*" >&2
    exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required but not on PATH"; }

check_prerequisites() {
    for tool in cargo node npm python3 git; do
        need "$tool"
    done
    [[ -f $SHARED/make_fixtures.sh ]] ||
        die "no $SHARED/make_fixtures.sh; set BENCH_SHARED to the shared bench folder"
    for f in peers/node/package.json peers/node/package-lock.json peers/requirements.txt \
        workloads/execlayer-fs.json workloads/fs.json workloads/execlayer-git.json workloads/git.json; do
        [[ -f $SHARED/$f ]] || die "missing $SHARED/$f"
    done
}

# @modelcontextprotocol/server-filesystem, exactly as the shared lock file pins it.
install_node_peer() {
    local dir=$PEERS/node
    if cmp -s "$SHARED/peers/node/package-lock.json" "$dir/package-lock.json" &&
        [[ -f $FS_SERVER && -f $dir/node_modules/.package-lock.json ]]; then
        log "server-filesystem: already installed"
        return
    fi
    log "server-filesystem: npm ci into $dir"
    mkdir -p "$dir"
    install -m 644 "$SHARED/peers/node/package.json" "$SHARED/peers/node/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
    [[ -f $FS_SERVER ]] || die "npm ci did not install $FS_SERVER"
}

# mcp-server-git in a venv, exactly as the shared requirements.txt pins it.
install_python_peer() {
    local venv=$PEERS/venv
    local stamp=$venv/installed-requirements.txt
    if cmp -s "$SHARED/peers/requirements.txt" "$stamp" && [[ -x $venv/bin/python ]]; then
        log "mcp-server-git: already installed"
        return
    fi
    log "mcp-server-git: venv + pip install into $venv"
    install -m 644 "$SHARED/peers/requirements.txt" "$PEERS/requirements.txt"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$PEERS/requirements.txt" >&2
    cp "$PEERS/requirements.txt" "$stamp"
}

# Shell-quotes one word for a --server command line.
q() { printf '%q' "$1"; }

# execlayer on a workspace, with the auto-approval policy and a throwaway audit log.
execlayer_cmd() {
    printf 'env EXECUTION_WORKSPACE_ROOT=%s EXECUTION_CONFIG=%s EXECUTION_AUDIT_LOG=%s %s serve' \
        "$(q "$1")" "$(q "$WORK/policy.json")" "$(q "$WORK/audit.jsonl")" "$(q "$EXECLAYER")"
}

# Runs one e2e bench; its JSON goes to bench-peers/results/NAME.json, its table to stderr.
run_bench() {
    local name=$1
    shift
    log "bench: $name"
    cargo bench --quiet --bench e2e -- "$@" --json-out "$RESULTS/$name.json" >/dev/null
}

run_benchmarks() {
    local common=(--cwd "$WORK" -n "$N" --rounds "$ROUNDS" --cold "$COLD" --pipeline "$PIPELINE")
    run_bench fs --compare "${common[@]}" \
        --label execlayer --label server-filesystem \
        --server "$(execlayer_cmd "$FIXTURES/ws")" \
        --server "node $(q "$FS_SERVER") $(q "$FIXTURES/ws")" \
        --calls-file "$SHARED/workloads/execlayer-fs.json" \
        --calls-file-b "$SHARED/workloads/fs.json"
    run_bench git --compare "${common[@]}" \
        --label execlayer --label mcp-server-git \
        --server "$(execlayer_cmd "$FIXTURES/repo")" \
        --server "$(q "$PEERS/venv/bin/python") -m mcp_server_git --repository $(q "$FIXTURES/repo")" \
        --calls-file "$SHARED/workloads/execlayer-git.json" \
        --calls-file-b "$SHARED/workloads/git.json"
    # The 1 MiB file read whole by both (execlayer pages at 256 KiB unless asked with max_bytes).
    run_bench fs-whole --compare --cwd "$WORK" -n "$N" --rounds "$ROUNDS" --cold 0 --tools-list 1 \
        --pipeline "$PIPELINE" --label execlayer --label server-filesystem \
        --server "$(execlayer_cmd "$FIXTURES/ws")" \
        --server "node $(q "$FS_SERVER") $(q "$FIXTURES/ws")" \
        --call '{"label":"read_1MiB_whole","tool":"filesystem_read","arguments":{"path":"large.txt","max_bytes":1048576}}' \
        --call-b "{\"tool\":\"read_text_file\",\"arguments\":{\"path\":\"$FIXTURES/ws/large.txt\"}}"
    # The same isolated git configuration make_fixtures.sh used.
    run_bench git-cli --exec "git status --porcelain" --cwd "$FIXTURES/repo" -n "$EXEC_N" \
        --env GIT_CONFIG_GLOBAL=/dev/null --env GIT_CONFIG_NOSYSTEM=1
    run_bench http --spawn-http "$(execlayer_cmd "$FIXTURES/ws")" --cwd "$WORK" \
        --clients "$HTTP_CLIENTS" --seconds "$HTTP_SECONDS" \
        --call '{"label":"read_1KiB","tool":"filesystem_read","arguments":{"path":"small.txt"}}'
}

# The Markdown summary of bench-peers/results/*.json.
print_markdown() {
    local fs_version git_version
    fs_version=$(node -p "require('$PEERS/node/node_modules/@modelcontextprotocol/server-filesystem/package.json').version")
    git_version=$("$PEERS/venv/bin/pip" show mcp-server-git 2>/dev/null | sed -n 's/^Version: //p')
    RESULTS=$RESULTS NPROC=$(nproc) KERNEL=$(uname -r) \
        CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1) \
        NODE_VERSION=$(node --version) \
        PYTHON_VERSION=$("$PEERS/venv/bin/python" -c 'import platform; print(platform.python_version())') \
        GIT_VERSION=$(git --version | sed 's/^git version //') \
        FS_VERSION=$fs_version MCP_GIT_VERSION=$git_version \
        N=$N ROUNDS=$ROUNDS PIPELINE=$PIPELINE HTTP_SECONDS=$HTTP_SECONDS \
        python3 - <<'PY'
import json, os

env = os.environ
PIPELINE = env["PIPELINE"]

def load(name, required=True):
    path = os.path.join(env["RESULTS"], name + ".json")
    if not required and not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)

fs, git, cli, http = load("fs"), load("git"), load("git-cli"), load("http")
whole = load("fs-whole", required=False)

# ---- formatting ----

def num(v, unit="", nd=1):
    if v is None:
        return "-"
    text = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.{nd}f}"
    return f"{text} {unit}".strip()

def ms(v):
    """Milliseconds with about three significant digits."""
    if v is None:
        return "-"
    nd = 0 if v >= 100 else 1 if v >= 10 else 2 if v >= 1 else 3
    return f"{v:,.{nd}f} ms"

def times(v):
    return "-" if v is None else f"{v:.1f}×"

def div(a, b):
    return a / b if a is not None and b else None

def at_most(v, limit):
    return None if v is None else v <= limit

def at_least(v, limit):
    return None if v is None else v >= limit

# ---- reading results ----

def wl(result, label):
    return next((w for w in result["workloads"] if w["label"] == label), None)

def p50(w):
    return (w.get("latency_ms") or {}).get("p50")

def pipe(w, key):
    return (w.get("pipelined") or {}).get(key)

def kib(w):
    return w["response_bytes_mean"] / 1024 if w.get("response_bytes_mean") is not None else None

# ---- rows: execlayer, reference, execlayer's advantage, target, met ----

rows = []

def row(what, ours, theirs, advantage, target="", ok=None):
    met = "-" if ok is None else ("yes" if ok else "**no**")
    rows.append(f"| {what} | {ours} | {theirs} | {advantage} | {target} | {met} |")

def latency(what, a, b, target_x=None):
    """a = execlayer, b = the reference; the advantage is b / a."""
    x = div(b, a)
    row(what, ms(a), ms(b), times(x), f"≥ {target_x:g}× faster" if target_x else "",
        at_least(x, target_x) if target_x else None)

def throughput(what, a, b, target_x=None):
    x = div(a, b)
    row(what, num(a, "req/s"), num(b, "req/s"), times(x), f"≥ {target_x:g}× the req/s" if target_x else "",
        at_least(x, target_x) if target_x else None)

def memory(what, a, b, limit_mib=None):
    row(what, num(a, "MiB"), num(b, "MiB"), times(div(b, a)), f"≤ {limit_mib} MiB" if limit_mib else "",
        at_most(a, limit_mib) if limit_mib else None)

def read_1mib(what, e, f, targets, mark=""):
    """The 1 MiB read rows: latency, response size, pipelined rate and peak RSS."""
    latency(f"{what}: p50{mark}", p50(e), p50(f), 3 if targets else None)
    ek, fk = kib(e), kib(f)
    twice = " ²" if fk and fk > 1.5 * 1024 else ""
    row(f"{what}: response size{mark}", num(ek, "KiB"), num(fk, "KiB") + twice, times(div(fk, ek)),
        "≤ 1.1 × 1,024 KiB" if targets else "", at_most(ek, 1.1 * 1024) if targets else None)
    throughput(f"{what}: pipelined, {PIPELINE} in flight{mark}", pipe(e, "req_per_s_median"), pipe(f, "req_per_s_median"))
    memory(f"{what}: peak RSS during {PIPELINE} pipelined reads{mark}", pipe(e, "rss_peak_mib"),
           pipe(f, "rss_peak_mib"), 150 if targets else None)
    return ek, fk

E, F = fs["results"]
EG, G = git["results"]
cold = lambda r: r["cold_start_ms"]["p50"]

latency("cold start p50, spawn → initialize (vs server-filesystem)", cold(E), cold(F), 20)
latency("cold start p50, spawn → initialize (vs mcp-server-git)", cold(EG), cold(G))
memory("idle RSS after initialize (vs server-filesystem)", E["rss_idle_mib"], F["rss_idle_mib"], 15)
memory("idle RSS after initialize (vs mcp-server-git)", EG["rss_idle_mib"], G["rss_idle_mib"], 15)
latency("tools/list p50", E["tools_list_ms"]["p50"], F["tools_list_ms"]["p50"])

e1, f1 = wl(E, "read_1KiB"), wl(F, "read_1KiB")
latency("read 1 KiB p50 (filesystem_read vs read_text_file)", p50(e1), p50(f1), 3)
throughput(f"read 1 KiB pipelined, {PIPELINE} in flight", pipe(e1, "req_per_s_median"), pipe(f1, "req_per_s_median"), 5)

sizes = []
if whole:
    ew, fw = whole["results"][0]["workloads"][0], whole["results"][1]["workloads"][0]
    sizes.append(read_1mib("read 1 MiB whole file (`max_bytes`: 1 MiB)", ew, fw, targets=True))
e2, f2 = wl(E, "read_1MiB"), wl(F, "read_1MiB")
paged = kib(e2) < 0.9 * 1024
sizes.append(read_1mib("read 1 MiB, default arguments", e2, f2, targets=not whole, mark=" ¹" if paged else ""))

for label in ("list_dir_ws", "list_dir_500"):
    if wl(E, label) and wl(F, label):
        latency(f"{label} p50 (filesystem_list vs list_directory)", p50(wl(E, label)), p50(wl(F, label)))

eg, gg = wl(EG, "git_status"), wl(G, "git_status")
latency("git_status p50 (vs mcp-server-git)", p50(eg), p50(gg), 3)
x = div(cli["latency_ms"]["p50"], p50(eg))
row("git_status p50 (vs a `git status --porcelain` process)", ms(p50(eg)), ms(cli["latency_ms"]["p50"]),
    times(x), "≤ the CLI", at_least(x, 1))
if wl(EG, "git_diff_unstaged") and wl(G, "git_diff_unstaged"):
    latency("git diff, unstaged p50 (git_diff vs git_diff_unstaged)", p50(wl(EG, "git_diff_unstaged")),
            p50(wl(G, "git_diff_unstaged")))
row("server CPU per git_status call (vs mcp-server-git)", ms(eg["server_cpu_ms_per_call"]),
    ms(gg["server_cpu_ms_per_call"]), times(div(gg["server_cpu_ms_per_call"], eg["server_cpu_ms_per_call"])))
row("CPU per `git status --porcelain` process", "", ms(cli["cpu_ms_per_run"]), "")

# ---- output ----

t = fs["machine"]["time_utc"]  # 2026-01-31T12:34:56Z
load = max(r["machine"]["loadavg_1m"] or 0 for r in (fs, git, cli, http))
# The benchmark itself keeps about two threads busy; more than that is other work.
busy = " (a busy machine: expect noisy throughput)" if load > int(env["NPROC"]) + 1 else ""
print("## execlayer vs reference MCP servers\n")
print(f"Machine: {env['NPROC']} CPUs ({env['CPU_MODEL']}), Linux {env['KERNEL']}, run {t[:10]} {t[11:16]} UTC. "
      f"References: @modelcontextprotocol/server-filesystem {env['FS_VERSION']} (Node {env['NODE_VERSION']}), "
      f"mcp-server-git {env['MCP_GIT_VERSION']} (Python {env['PYTHON_VERSION']}), git {env['GIT_VERSION']}.")
print(f"Highest 1-minute load average at the end of a run: {load:.2f}{busy}.")
print(f"Stdio, protocol 2025-06-18; servers alternated A B A B for {env['ROUNDS']} rounds of {env['N']} "
      f"sequential calls, then {PIPELINE}-request pipelined batches; latency measured at the pipe; "
      "RSS is the server's VmHWM/VmRSS. Produced by `bash scripts/bench-peers.sh` (raw JSON in bench-peers/results/).\n")
print("| measurement | execlayer | reference | execlayer advantage | target | met |")
print("|---|---:|---:|---:|---|---|")
print("\n".join(rows))
notes = []
if paged:
    notes.append(f"¹ Not like for like: without `max_bytes`, filesystem_read answers at most 256 KiB a call "
                 f"(then `next_offset`): {kib(e2):,.0f} KiB here, where read_text_file sends the whole file.")
if any(fk and fk > 1.5 * 1024 for _, fk in sizes):
    notes.append("² read_text_file sends the file's text twice, in `content` and in `structuredContent`.")
if notes:
    print("\n" + "\n\n".join(notes))

print(f"\n### HTTP (`execlayer serve --http`, Streamable HTTP, no token), filesystem_read of 1 KiB, "
      f"{env['HTTP_SECONDS']} s per client count\n")
server = http.get("server") or {}
print(f"Startup to /healthz {ms(server.get('startup_ms'))}; idle RSS {num(server.get('rss_idle_mib'), 'MiB')}.\n")
print("| clients | calls/s | p50 | p99 | server CPU per call | peak RSS MiB | errors |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for lv in http["levels"]:
    lat = lv.get("latency_ms") or {}
    print(f"| {lv['clients']} | {num(lv['calls_per_s'])} | {ms(lat.get('p50'))} | {ms(lat.get('p99'))} "
          f"| {ms(lv.get('server_cpu_ms_per_call'))} | {num(lv.get('rss_peak_mib'))} | {lv['errors']} |")
PY
}

main() {
    if [[ ${1:-} == --report ]]; then
        need node
        need python3
        print_markdown
        return
    fi
    [[ $# -eq 0 ]] || die "usage: bash scripts/bench-peers.sh [--report]"
    check_prerequisites
    unset EXECUTION_TOKEN # the HTTP run is the tokenless, loopback-only setup
    mkdir -p "$PEERS" "$RESULTS"
    install_node_peer
    install_python_peer

    log "cargo build --release"
    cargo build --release >&2
    log "cargo bench --bench e2e --no-run"
    cargo bench --bench e2e --no-run >&2

    log "fixtures in $FIXTURES"
    bash "$SHARED/make_fixtures.sh" "$FIXTURES" >&2

    # A policy with approval_mode auto and an audit log that is thrown away;
    # the servers run in this folder, so no .env of the repository applies.
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-peers.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
    sed 's/"approval_mode": *"require_approval"/"approval_mode": "auto"/' \
        config/execution_layer_config.json >"$WORK/policy.json"
    grep -q '"approval_mode": "auto"' "$WORK/policy.json" ||
        die "could not derive an auto-approval policy from config/execution_layer_config.json"

    run_benchmarks
    print_markdown
}

main "$@"
