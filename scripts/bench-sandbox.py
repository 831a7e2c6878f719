#!/usr/bin/env python3
"""p50 of one shell_exec command over stdio with EXECUTION_SANDBOX=auto vs off.

Usage: python3 scripts/bench-sandbox.py BINARY WORKSPACE COMMAND [CALLS]
e.g.   python3 scripts/bench-sandbox.py target/release/execlayer /tmp/repo "git status"

The two modes alternate (A B A B, 5 rounds of CALLS calls after 5 warm-up
calls each); latency is one tools/call round trip at the pipe. The workspace
needs a policy with approval_mode auto (written to a temp dir here) and the
command must be in the default SHELL_ALLOWLIST.
"""
import json, os, statistics, subprocess, sys, tempfile, time

binary, ws, command = sys.argv[1], sys.argv[2], sys.argv[3]
calls = int(sys.argv[4]) if len(sys.argv) > 4 else 100
state = tempfile.mkdtemp(prefix="execlayer-bench-sandbox-")
policy = os.path.join(state, "policy.json")
with open(policy, "w") as f:
    f.write('{"approval_mode":"auto","approval_ttl_seconds":300,"approval_timeout_seconds":120,'
            '"max_steps_per_run":10,"max_retries_per_tool":2}')


def run(mode):
    env = dict(os.environ, EXECUTION_WORKSPACE_ROOT=ws, EXECUTION_CONFIG=policy, EXECLAYER_LOG="error",
               EXECUTION_AUDIT_LOG=os.path.join(state, "audit.jsonl"), EXECUTION_SANDBOX=mode)
    p = subprocess.Popen([binary, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                         cwd=state, text=True, bufsize=1)

    def rpc(i, method, params):
        p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params}) + "\n")
        p.stdin.flush()
        return json.loads(p.stdout.readline())

    rpc(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                          "clientInfo": {"name": "bench-sandbox", "version": "0"}})
    p.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
    p.stdin.flush()
    times = []
    for i in range(calls + 5):
        t = time.perf_counter()
        r = rpc(i + 1, "tools/call", {"name": "shell_exec", "arguments": {"command": command}})
        dt = (time.perf_counter() - t) * 1000
        if r["result"].get("isError"):
            sys.exit("the command failed: %s" % r["result"]["content"][0]["text"][:300])
        if i >= 5:
            times.append(dt)
    p.stdin.close()
    p.wait()
    return times


results = {"auto": [], "off": []}
for _ in range(5):
    for mode in results:
        results[mode] += run(mode)
for mode, xs in results.items():
    xs.sort()
    print("%-4s n=%d p50=%.2f ms p90=%.2f ms" % (mode, len(xs), statistics.median(xs), xs[int(len(xs) * 0.9)]))
print("added by the sandbox, p50: %.2f ms" % (statistics.median(results["auto"]) - statistics.median(results["off"])))
print("load average:", open("/proc/loadavg").read().split()[:3])
