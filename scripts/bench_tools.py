#!/usr/bin/env python3
"""Interleaved A/B timing of one MCP tool call against a command-line tool (or
another MCP server's tool), for scripts/bench-scale.sh.

Each case names an MCP server (argv + env), a tool call, and an alternative:
either `cli` (argv run as a process, as a user would) or `peer` (another MCP
server and its tool call). Rounds alternate A and B; each round takes the median
of N calls; the result is the median of the rounds, and their spread (max/min of
the round medians) tells how noisy the machine was. Latency is measured at the
pipe for MCP calls and spawn-to-exit for processes. Peak RSS is the server's
VmHWM (read after its cases) and, for processes, ru_maxrss of the children.

    python3 scripts/bench_tools.py cases.json > results.json
"""
import json, os, resource, statistics, subprocess, sys, time


class Mcp:
    def __init__(self, argv, env=None, cwd=None):
        e = dict(os.environ)
        e.update(env or {})
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, env=e, cwd=cwd)
        self.id = 0
        self.rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                "clientInfo": {"name": "bench", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, msg):
        self.p.stdin.write((json.dumps(msg) + "\n").encode())
        self.p.stdin.flush()

    def rpc(self, method, params):
        self.id += 1
        self.send({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params})
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError(f"server closed during {method}")
            msg = json.loads(line)
            if msg.get("id") == self.id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def call(self, tool, args):
        t = time.perf_counter()
        r = self.rpc("tools/call", {"name": tool, "arguments": args})
        dt = time.perf_counter() - t
        if r.get("isError"):
            raise RuntimeError(f"{tool} failed: {r}")
        return dt, len(json.dumps(r))

    def cpu_s(self):
        f = open(f"/proc/{self.p.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def hwm_kib(self):
        for line in open(f"/proc/{self.p.pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=10)


def run_cli(argv, cwd):
    t = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    cases = json.load(open(sys.argv[1]))
    out = []
    servers = {}
    for case in cases:
        key = json.dumps([case["server"], case.get("env", {})])
        if key not in servers:
            servers[key] = Mcp(case["server"], case.get("env"), case.get("cwd"))
        srv = servers[key]
        peer = Mcp(case["peer"]["server"], None, case.get("cwd")) if "peer" in case else None
        n, rounds = case.get("n", 10), case.get("rounds", 5)
        a_rounds, b_rounds, size = [], [], 0
        srv.call(case["tool"], case["args"])  # warm: open the repository, fill the page cache
        if peer:
            peer.call(case["peer"]["tool"], case["peer"]["args"])
        else:
            run_cli(case["cli"], case["cwd"])
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        a_cpu = b_cpu = 0.0
        children = lambda: (lambda u: u.ru_utime + u.ru_stime)(resource.getrusage(resource.RUSAGE_CHILDREN))
        for _ in range(rounds):
            samples = []
            c0 = srv.cpu_s()
            for _ in range(n):
                dt, size = srv.call(case["tool"], case["args"])
                samples.append(dt)
            a_cpu += srv.cpu_s() - c0
            a_rounds.append(statistics.median(samples))
            if peer:
                c0 = peer.cpu_s()
                b_rounds.append(statistics.median(peer.call(case["peer"]["tool"], case["peer"]["args"])[0] for _ in range(n)))
                b_cpu += peer.cpu_s() - c0
            else:
                c0 = children()
                b_rounds.append(statistics.median(run_cli(case["cli"], case["cwd"]) for _ in range(n)))
                b_cpu += children() - c0
        a, b = statistics.median(a_rounds), statistics.median(b_rounds)
        row = {"label": case["label"], "a_ms": a * 1e3, "b_ms": b * 1e3, "ratio": a / b,
               "a_cpu_ms_per_call": a_cpu * 1e3 / (n * rounds), "b_cpu_ms_per_call": b_cpu * 1e3 / (n * rounds),
               "a_spread": max(a_rounds) / min(a_rounds), "b_spread": max(b_rounds) / min(b_rounds),
               "response_bytes": size, "server_hwm_kib": srv.hwm_kib(),
               "cli_maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if not peer else None,
               "cli_maxrss_before_kib": before}
        if peer:
            row["peer_hwm_kib"] = peer.hwm_kib()
            peer.close()
        print(json.dumps(row), file=sys.stderr)
        out.append(row)
    for s in servers.values():
        s.close()
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
