#!/usr/bin/env python3
"""Interoperability check: execlayer against the official `mcp` Python SDK client.

    target/interop/venv/bin/python tests/interop/python_sdk.py --server-bin target/debug/execlayer

Each check runs in a fresh temporary workspace with its own policy file
(`approval_mode` = `require_approval`) and audit log, and prints one line,
`PASS name` or `FAIL name: reason`; the last line is `N passed, M failed` and
the exit status is non-zero when any check failed. Standard library + `mcp` only
(the pinned set in tests/interop/requirements.txt).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

REPO = Path(__file__).resolve().parents[2]
BASE_CONFIG = REPO / "config" / "execution_layer_config.json"
CORE_TOOLS = {"filesystem_read", "filesystem_write", "filesystem_list", "filesystem_search",
              "git_status", "git_diff", "apply_patch", "shell_exec"}
MODERN = "2026-07-28"
HTTP_TOKEN = "interop-" + os.urandom(8).hex()  # EXECUTION_TOKEN for the HTTP servers
CHECK_TIMEOUT = 60  # seconds per check, so a hung server fails one check instead of the run


class CheckFailed(Exception):
    pass


def expect(cond: bool, reason: str) -> None:
    if not cond:
        raise CheckFailed(reason)


def describe(exc: BaseException) -> str:
    """One line for an exception, looking inside (anyio) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    text = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def text_of(result: types.CallToolResult) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


# --- workspace and servers ---------------------------------------------------------------

class Workspace:
    """A temp dir holding the workspace root, a policy file and an audit log."""

    def __init__(self, approval_mode: str = "require_approval", rules: list | None = None):
        self.tmp = Path(tempfile.mkdtemp(prefix="execlayer-interop-"))
        self.root = self.tmp / "ws"
        self.root.mkdir()
        config = json.loads(BASE_CONFIG.read_text())
        config["approval_mode"] = approval_mode
        if rules is not None:
            config["rules"] = rules
        self.config = self.tmp / "policy.json"
        self.config.write_text(json.dumps(config, indent=2))
        self.enabled_tools = {name for name, t in config["tools"].items() if t.get("enabled", True)}
        self.audit = self.tmp / "audit.jsonl"
        self.server_log = self.tmp / "server.log"

    def env(self, token: str | None = None) -> dict[str, str]:
        env = {"EXECUTION_WORKSPACE_ROOT": str(self.root), "EXECUTION_CONFIG": str(self.config),
               "EXECUTION_AUDIT_LOG": str(self.audit), "RUST_LOG": "info",
               "SHELL_ALLOWLIST": "ls,echo,printf,git status",
               # The operator socket of this server goes in the temp dir, not the user's.
               "XDG_RUNTIME_DIR": str(self.tmp)}
        if token:
            env["EXECUTION_TOKEN"] = token
        return env

    def log_tail(self, lines: int = 5) -> str:
        try:
            return "\n".join(self.server_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.asynccontextmanager
async def stdio_transport(server_bin: str, ws: Workspace):
    """The SDK's stdio transport, with the server's stderr going to the workspace log."""
    params = StdioServerParameters(command=server_bin, args=["serve"], env=ws.env(), cwd=str(ws.tmp))
    with open(ws.server_log, "a") as errlog:
        async with stdio_client(params, errlog=errlog) as streams:
            yield streams


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def http_server(server_bin: str, ws: Workspace, token: str | None):
    """Start `execlayer serve --http` on a free port, wait for /healthz, kill it on exit."""
    port = free_port()
    log = open(ws.server_log, "a")
    proc = subprocess.Popen([server_bin, "serve", "--http", f"127.0.0.1:{port}"],
                            env={**os.environ, **ws.env(token)}, cwd=ws.tmp,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            expect(proc.poll() is None, f"HTTP server exited early with {proc.returncode}")
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            expect(time.monotonic() < deadline, "HTTP server not ready (GET /healthz) after 15 s")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.asynccontextmanager
async def http_transport(url: str, headers: dict[str, str] | None, statuses: list[int] | None = None):
    """The SDK's Streamable HTTP transport; `statuses` collects every HTTP status seen."""
    async with create_mcp_http_client(headers=headers) as http:
        if statuses is not None:
            async def record(response):
                statuses.append(response.status_code)
            http.event_hooks["response"] = [record]
        async with streamable_http_client(url, http_client=http) as streams:
            yield streams


# --- elicitation callbacks ------------------------------------------------------------------

class Elicitor:
    """An elicitation callback that answers every request with `action` and records what it saw."""

    def __init__(self, action: str):
        self.action = action
        self.seen: list[types.ElicitRequestParams] = []
        self.request_ids: list[object] = []  # the inputRequests key when reached via input_required

    async def __call__(self, context, params):
        self.seen.append(params)
        self.request_ids.append(context.request_id)
        if self.action == "accept":
            return types.ElicitResult(action="accept", content={"approve": True})
        return types.ElicitResult(action=self.action)

    def check_request(self, path: str) -> None:
        expect(len(self.seen) == 1, f"elicitation callback called {len(self.seen)} times, expected 1")
        p = self.seen[0]
        expect(getattr(p, "mode", "form") == "form", f"elicitation mode {p.mode!r}, expected form")
        expect(path in p.message, f"elicitation message does not mention {path!r}: {p.message!r}")
        schema = p.requested_schema
        if hasattr(schema, "model_dump"):
            schema = schema.model_dump(by_alias=True, exclude_none=True)
        prop = schema.get("properties", {}).get("approve", {})
        expect(prop.get("type") == "boolean" and "approve" in schema.get("required", []),
               f"requestedSchema lacks a required boolean 'approve': {schema}")


async def write_and_check(client: Client, ws: Workspace, approve: bool, elicitor: Elicitor | None,
                          path: str = "notes/out.txt") -> None:
    """Call filesystem_write under require_approval and check the outcome on disk."""
    content = "written through the python sdk\n"
    result = await client.call_tool("filesystem_write", {"path": path, "content": content, "create_dirs": True})
    target = ws.root / path
    if elicitor is not None:
        elicitor.check_request(path)
    if approve:
        expect(not result.is_error, f"write failed after approval: {text_of(result)[:300]!r}")
        expect(target.is_file(), f"{path} missing after an approved write")
        expect(target.read_text() == content, f"{path} holds {target.read_text()!r}")
    else:
        expect(result.is_error, f"declined write returned isError=false: {text_of(result)[:300]!r}")
        expect(not target.exists(), f"{path} exists although the write was declined")


def check_tool_list(tools: types.ListToolsResult, ws: Workspace) -> None:
    """tools/list = the tools the policy file enables (the 8 core tools at least), each once."""
    names = [t.name for t in tools.tools]
    expect(len(names) == len(set(names)), f"tools/list repeats a name: {sorted(names)}")
    expect(CORE_TOOLS <= set(names), f"tools/list lacks {sorted(CORE_TOOLS - set(names))}")
    expect(set(names) == ws.enabled_tools,
           f"tools/list gave {sorted(names)}, the policy enables {sorted(ws.enabled_tools)}")


# --- checks --------------------------------------------------------------------------------

async def check_stdio_auto_read(server_bin: str, ws: Workspace) -> None:
    (ws.root / "hello.txt").write_text("hello from interop\nsecond line\n")
    async with Client(stdio_transport(server_bin, ws), read_timeout_seconds=20) as client:
        expect(client.protocol_version == MODERN,
               f"auto mode negotiated {client.protocol_version}, expected {MODERN} via server/discover")
        tools = await client.list_tools()
        check_tool_list(tools, ws)
        result = await client.call_tool("filesystem_read", {"path": "hello.txt"})
        expect(not result.is_error, f"filesystem_read isError: {text_of(result)[:300]!r}")
        expect("hello from interop" in text_of(result) and "second line" in text_of(result),
               f"filesystem_read text: {text_of(result)[:300]!r}")


def elicit_check(mode: str, action: str, transport: str = "stdio"):
    async def check(server_bin: str, ws: Workspace, base: str | None = None) -> None:
        elicitor = Elicitor(action)
        conn = stdio_transport(server_bin, ws) if transport == "stdio" else \
            http_transport(base + "/mcp", {"Authorization": f"Bearer {HTTP_TOKEN}"})
        async with Client(conn, mode=mode, elicitation_callback=elicitor, read_timeout_seconds=20) as client:
            want = MODERN if mode == MODERN else "2025-11-25"
            expect(client.protocol_version == want, f"negotiated {client.protocol_version}, expected {want}")
            await write_and_check(client, ws, approve=(action == "accept"), elicitor=elicitor)
            if mode == MODERN:  # the SDK's driver passes the inputRequests key as the request id
                expect(elicitor.request_ids == ["approval"],
                       f"callback not reached through input_required['approval']: ids {elicitor.request_ids}")
    return check


def no_elicitation_check(mode: str):
    async def check(server_bin: str, ws: Workspace) -> None:
        async with Client(stdio_transport(server_bin, ws), mode=mode, read_timeout_seconds=20) as client:
            result = await client.call_tool("filesystem_write", {"path": "x.txt", "content": "x"})
            text = text_of(result)
            expect(result.is_error, f"isError=false without elicitation: {text[:300]!r}")
            expect("approval required" in text.lower(), f"result text lacks 'approval required': {text[:300]!r}")
            expect(re.search(r"approve id [0-9a-f]{16,}", text) is not None, f"no pending id in: {text[:300]!r}")
            expect(not (ws.root / "x.txt").exists(), "x.txt written without approval")
    return check



def http_token_check(mode: str, header: str):
    async def check(server_bin: str, ws: Workspace, base: str) -> None:
        (ws.root / "hello.txt").write_text("hello over http\n")
        value = f"Bearer {HTTP_TOKEN}" if header == "Authorization" else HTTP_TOKEN
        async with Client(http_transport(base + "/mcp", {header: value}), mode=mode,
                          read_timeout_seconds=20) as client:
            want = MODERN if mode == "auto" else "2025-11-25"
            expect(client.protocol_version == want, f"negotiated {client.protocol_version}, expected {want}")
            tools = await client.list_tools()
            check_tool_list(tools, ws)
            result = await client.call_tool("filesystem_read", {"path": "hello.txt"})
            expect(not result.is_error and "hello over http" in text_of(result),
                   f"filesystem_read: isError={result.is_error} text={text_of(result)[:300]!r}")
    return check


async def check_http_no_token(server_bin: str, ws: Workspace, base: str) -> None:
    try:
        req = urllib.request.Request(base + "/mcp", method="POST", data=b"{}",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5)
        raise CheckFailed("POST /mcp without a token was accepted")
    except urllib.error.HTTPError as e:
        expect(e.code == 401, f"POST /mcp without a token answered {e.code}, expected 401")
    statuses: list[int] = []
    try:
        async with Client(http_transport(base + "/mcp", None, statuses), read_timeout_seconds=10) as client:
            await client.list_tools()
    except Exception as e:  # the SDK folds a 401 into a generic MCPError, so look at the wire statuses
        expect(statuses and all(s == 401 for s in statuses),
               f"connection failed ({describe(e)}) but the HTTP statuses were {statuses}, expected only 401")
        return
    raise CheckFailed(f"SDK connected and listed tools without a token (HTTP statuses {statuses})")


# --- rules and remembered answers --------------------------------------------------------

class Rememberer:
    """Answers yes with `remember`, and records each question's message and schema."""

    def __init__(self, remember: str | None):
        self.remember = remember
        self.questions: list[tuple[str, dict]] = []

    async def __call__(self, context, params):
        schema = params.requested_schema
        if hasattr(schema, "model_dump"):
            schema = schema.model_dump(by_alias=True, exclude_none=True)
        self.questions.append((params.message, schema))
        content = {"approve": True}
        if self.remember:
            content["remember"] = self.remember
        return types.ElicitResult(action="accept", content=content)

    def offered(self) -> list[str]:
        one_of = self.questions[-1][1].get("properties", {}).get("remember", {}).get("oneOf", [])
        return [c["const"] for c in one_of]


def audit_of(ws: Workspace, tool: str) -> list[dict]:
    lines = [json.loads(line) for line in ws.audit.read_text().splitlines() if line.strip()]
    # Calls as they ended: not the operator's, not 2026-07-28 question rounds.
    return [line for line in lines if line["tool"] == tool and line.get("client") != "operator"
            and (line.get("approval") or {}).get("answer") != "asked"]


RULES = [
    {"tool": "shell_exec", "command": "echo", "decision": "allow"},
    {"tool": "shell_exec", "command": "printf", "decision": "forbid", "reason": "printing is for humans"},
    {"tool": "filesystem_write", "path": "docs/**", "decision": "allow"},
]


def connect(server_bin: str, ws: Workspace, transport: str, base: str | None):
    if transport == "stdio":
        return stdio_transport(server_bin, ws)
    return http_transport(base + "/mcp", {"Authorization": f"Bearer {HTTP_TOKEN}"})


def rules_check(mode: str, transport: str = "stdio"):
    """allow runs unasked, forbid is refused unasked, a path rule allows docs/ and asks for src/."""
    async def check(server_bin: str, ws: Workspace, base: str | None = None) -> None:
        asker = Rememberer(None)
        async with Client(connect(server_bin, ws, transport, base), mode=mode, elicitation_callback=asker,
                          read_timeout_seconds=20) as client:
            r = await client.call_tool("shell_exec", {"command": "echo allowed"})
            expect(not r.is_error and "allowed" in text_of(r), f"echo: {text_of(r)[:300]!r}")
            r = await client.call_tool("shell_exec", {"command": "printf no"})
            expect(r.is_error and "printing is for humans" in text_of(r), f"printf: {text_of(r)[:300]!r}")
            expect(not asker.questions, f"asked about a ruled command: {asker.questions}")
            r = await client.call_tool("filesystem_write", {"path": "docs/x.md", "content": "d", "create_dirs": True})
            expect(not r.is_error and not asker.questions, f"docs/x.md: {text_of(r)[:300]!r}")
            r = await client.call_tool("filesystem_write", {"path": "src/x.rs", "content": "s", "create_dirs": True})
            expect(not r.is_error and len(asker.questions) == 1, f"src/x.rs asked {len(asker.questions)} times")
        shell = audit_of(ws, "shell_exec")
        expect(shell[0]["rule"] == 'rules[0] shell_exec command "echo" allow', f"audit: {shell[0]}")
        expect(shell[1]["decision"] == "denied" and shell[1]["rule"].startswith("rules[1]"), f"audit: {shell[1]}")
        writes = audit_of(ws, "filesystem_write")
        expect(writes[0].get("rule", "").startswith("rules[2]"), f"audit: {writes[0]}")
        expect("rule" not in writes[1], f"audit: {writes[1]}")
    return check


async def check_ask_in_auto(server_bin: str, ws: Workspace) -> None:
    asker = Rememberer(None)
    async with Client(stdio_transport(server_bin, ws), mode=MODERN, elicitation_callback=asker,
                      read_timeout_seconds=20) as client:
        r = await client.call_tool("shell_exec", {"command": "echo asked"})
        expect(not r.is_error and len(asker.questions) == 1, f"ask rule in auto mode: {len(asker.questions)} questions")
        expect("rules[0]" in asker.questions[0][0], f"question does not name the rule: {asker.questions[0][0]!r}")


def remember_session_check(mode: str):
    async def check(server_bin: str, ws: Workspace) -> None:
        asker = Rememberer("session")
        async with Client(stdio_transport(server_bin, ws), mode=mode, elicitation_callback=asker,
                          read_timeout_seconds=20) as client:
            await client.call_tool("shell_exec", {"command": "echo one"})
            expect(asker.offered() == ["once", "session", "always"], f"offered {asker.offered()}")
            r = await client.call_tool("shell_exec", {"command": "echo two"})
            expect(not r.is_error and len(asker.questions) == 1,
                   f"the session answer did not hold: {len(asker.questions)} questions")
        again = Rememberer(None)
        async with Client(stdio_transport(server_bin, ws), mode=mode, elicitation_callback=again,
                          read_timeout_seconds=20) as client:
            await client.call_tool("shell_exec", {"command": "echo three"})
            expect(len(again.questions) == 1, "a new session inherited the answer")
        shell = audit_of(ws, "shell_exec")
        expect(shell[0].get("remember") == "session", f"audit: {shell[0]}")
        expect(shell[1]["approval"]["via"] == "remembered", f"audit: {shell[1]}")
        expect(shell[2]["approval"]["via"] != "remembered", f"audit: {shell[2]}")
    return check


async def check_remember_always(server_bin: str, ws: Workspace) -> None:
    asker = Rememberer("always")
    async with Client(stdio_transport(server_bin, ws), mode="legacy", elicitation_callback=asker,
                      read_timeout_seconds=20) as client:
        r = await client.call_tool("filesystem_write", {"path": "notes.md", "content": "1"})
        expect(not r.is_error, f"write: {text_of(r)[:300]!r}")
    rules = json.loads(ws.config.read_text())["rules"]
    expect({"tool": "filesystem_write", "path": "notes.md", "decision": "allow"} in rules, f"rules: {rules}")
    # A new process honours it, for a client that cannot even answer.
    async with Client(stdio_transport(server_bin, ws), mode="legacy", read_timeout_seconds=20) as client:
        r = await client.call_tool("filesystem_write", {"path": "notes.md", "content": "2"})
        expect(not r.is_error and (ws.root / "notes.md").read_text() == "2", f"second write: {text_of(r)[:300]!r}")
    writes = audit_of(ws, "filesystem_write")
    expect(writes[0].get("remember") == "always", f"audit: {writes[0]}")
    expect(writes[1].get("rule", "").endswith('filesystem_write path "notes.md" allow'), f"audit: {writes[1]}")


async def check_http_modern_no_session(server_bin: str, ws: Workspace, base: str) -> None:
    asker = Rememberer("session")
    async with Client(connect(server_bin, ws, "http", base), mode=MODERN, elicitation_callback=asker,
                      read_timeout_seconds=20) as client:
        r = await client.call_tool("filesystem_write", {"path": "m.txt", "content": "m"})
        expect(asker.offered() == ["once", "always"], f"stateless HTTP offered {asker.offered()}")
        expect(r.is_error and not (ws.root / "m.txt").exists(), "a claimed session answer was taken")


def with_rules(rules: list, mode: str = "require_approval"):
    return lambda: Workspace(mode, rules)


# --- runner ----------------------------------------------------------------------------------

STDIO_CHECKS = [
    ("stdio_auto_discover_list_read", check_stdio_auto_read),
    ("stdio_2025-11-25_elicit_accept", elicit_check("legacy", "accept")),
    ("stdio_2025-11-25_elicit_decline", elicit_check("legacy", "decline")),
    ("stdio_2026-07-28_input_required_accept", elicit_check(MODERN, "accept")),
    ("stdio_2026-07-28_input_required_decline", elicit_check(MODERN, "decline")),
    ("stdio_2025-11-25_no_elicitation_refused", no_elicitation_check("legacy")),
    ("stdio_2026-07-28_no_elicitation_refused", no_elicitation_check(MODERN)),
    ("stdio_2025-11-25_rules_allow_forbid_path", rules_check("legacy"), with_rules(RULES)),
    ("stdio_2026-07-28_rules_allow_forbid_path", rules_check(MODERN), with_rules(RULES)),
    ("stdio_2026-07-28_ask_rule_asks_in_auto",
     check_ask_in_auto, with_rules([{"tool": "shell_exec", "command": "echo", "decision": "ask"}], "auto")),
    ("stdio_2025-11-25_remember_session", remember_session_check("legacy"), with_rules([])),
    ("stdio_2026-07-28_remember_session", remember_session_check(MODERN), with_rules([])),
    ("stdio_remember_always_new_process", check_remember_always, with_rules([])),
]
HTTP_CHECKS = [
    ("http_token_bearer_auto_list_read", http_token_check("auto", "Authorization")),
    ("http_token_header_2025-11-25_list_read", http_token_check("legacy", "X-Execution-Token")),
    ("http_no_token_401", check_http_no_token),
    ("http_2026-07-28_input_required_accept", elicit_check(MODERN, "accept", transport="http")),
    ("http_2025-11-25_elicit_accept", elicit_check("legacy", "accept", transport="http")),
    ("http_2025-11-25_rules_allow_forbid_path", rules_check("legacy", "http"), with_rules(RULES)),
    ("http_2026-07-28_rules_allow_forbid_path", rules_check(MODERN, "http"), with_rules(RULES)),
    ("http_2026-07-28_no_session_to_remember", check_http_modern_no_session, with_rules([])),
]


class SdkWarnings(logging.Handler):
    """Collects the SDK's warnings during a check, to print them under its result line."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(f"{record.name}: {record.getMessage()}")

    def flush_lines(self) -> None:
        for line in dict.fromkeys(self.lines):
            print(f"  note: SDK warning {line}", flush=True)
        self.lines.clear()


SDK_WARNINGS = SdkWarnings()


async def run_one(name: str, body, ws: Workspace, *args) -> bool:
    try:
        with anyio.fail_after(CHECK_TIMEOUT):
            await body(*args)
        print(f"PASS {name}", flush=True)
        SDK_WARNINGS.flush_lines()
        return True
    except BaseException as e:  # noqa: BLE001 - every failure is one FAIL line
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        reason = str(e) if isinstance(e, CheckFailed) else describe(e)
        if isinstance(e, TimeoutError):
            reason = f"no answer within {CHECK_TIMEOUT} s"
        print(f"FAIL {name}: {reason}", flush=True)
        SDK_WARNINGS.flush_lines()
        if tail := ws.log_tail():
            print("  server log tail:\n    " + tail.replace("\n", "\n    "), flush=True)
        return False


async def main_async(server_bin: str) -> int:
    logging.getLogger("mcp").addHandler(SDK_WARNINGS)
    logging.getLogger("mcp").propagate = False
    results = []
    for name, body, *make in STDIO_CHECKS:
        ws = make[0]() if make else Workspace()
        try:
            results.append(await run_one(name, body, ws, server_bin, ws))
        finally:
            ws.cleanup()
    for name, body, *make in HTTP_CHECKS:
        ws = make[0]() if make else Workspace()
        try:
            with http_server(server_bin, ws, HTTP_TOKEN) as base:
                results.append(await run_one(name, body, ws, server_bin, ws, base))
        except CheckFailed as e:  # the server did not come up
            print(f"FAIL {name}: {e}", flush=True)
            results.append(False)
        finally:
            ws.cleanup()
    passed = sum(results)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server-bin", required=True, help="path to the execlayer binary")
    args = ap.parse_args()
    server_bin = str(Path(args.server_bin).resolve())
    if not os.access(server_bin, os.X_OK):
        sys.exit(f"not an executable: {server_bin}")
    sys.exit(asyncio.run(main_async(server_bin)))


if __name__ == "__main__":
    main()
