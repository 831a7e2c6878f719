//! Hardening: protocol abuse on stdio and HTTP, approval bypass attempts,
//! crash safety under SIGKILL, a full or read-only disk, and property tests of
//! the patch engine. Each test is named after what users rely on; each is
//! bounded in time. (Path and shell attacks live in confinement.rs and shell.rs.)

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult,
    ElicitationAction, InputResponses, ProtocolVersion,
};
use rmcp::service::RequestContext;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, ErrorData, RoleClient};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::common::mount::{Mounted, not_root, root_can_run};
use crate::common::*;

const TOKEN: &str = "hardening-token-5f3a9c1e77";

// ---------------------------------------------------------------------------
// The real binary over stdio, spoken to as raw NDJSON.
// ---------------------------------------------------------------------------

fn binary(env: &TestEnv) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_execlayer"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.vars.iter())
        .current_dir(env.dir.path())
        .kill_on_drop(true);
    cmd
}

/// A `serve` child on stdio, driven line by line.
struct RawStdio {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stderr: Option<tokio::task::JoinHandle<String>>,
}

impl RawStdio {
    fn spawn(env: &TestEnv, extra: &[(&str, &str)]) -> Self {
        let mut cmd = binary(env);
        cmd.arg("serve")
            .envs(extra.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn execlayer");
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut err = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s).await;
            s
        });
        Self {
            child,
            stdin,
            lines,
            stderr: Some(stderr),
        }
    }

    fn pid(&self) -> i32 {
        self.child.id().expect("running") as i32
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).await.expect("write to the server");
        stdin.write_all(b"\n").await.expect("write to the server");
        stdin.flush().await.expect("flush");
    }

    async fn send(&mut self, message: &Value) {
        self.send_raw(message.to_string().as_bytes()).await;
    }

    /// The next stdout line as JSON; panics on EOF, timeout or a non-JSON line.
    async fn recv(&mut self, within: Duration) -> Value {
        let line = tokio::time::timeout(within, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no message from the server within {within:?}"))
            .expect("read stdout")
            .expect("the server closed stdout");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:.300}"))
    }

    async fn initialize(&mut self) {
        self.send(&json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}))
            .await;
        let init = self.recv(Duration::from_secs(20)).await;
        assert_eq!(init["id"], 1, "{init}");
        assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
        self.send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await;
    }

    /// Closes stdin and waits for a clean exit; returns stderr.
    async fn finish(mut self) -> String {
        drop(self.stdin.take());
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the server exits on EOF")
            .expect("wait");
        assert!(status.success(), "exit status {status}");
        self.stderr.take().unwrap().await.unwrap()
    }
}

/// A `/proc/<pid>/status` field in KiB (VmRSS, VmHWM, ...).
fn proc_kib(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn nested(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
}

const JSONRPC_CODES: &[i64] = &[-32700, -32600, -32601, -32602, -32603];

/// Garbage, wrong shapes, wrong types, unknown methods and a 10,000-deep
/// nesting: the server answers what it can with JSON-RPC errors and goes on
/// serving the same connection.
///
/// What rmcp's stdio transport actually does (documented here, asserted below):
/// - text that is not JSON (and JSON nested past serde_json's recursion limit
///   of 128, which is reported as a syntax error) is dropped without an answer:
///   no id can be read from it, and answering could start an error storm
///   (rust-sdk #938). The point for us: no stack overflow, no crash.
/// - JSON of the wrong shape (an array, a number, a string, `params` of the
///   wrong type, `jsonrpc: "1.0"`, an object id) gets `-32600 Invalid request`
///   with a null id.
/// - a known method whose params do not fit (`tools/call` with `name: 5`)
///   is answered with an error carrying the request's id (observed: -32601,
///   "tools/call"; -32602 would be the precise code).
#[tokio::test]
async fn stdio_answers_malformed_requests_with_errors_and_keeps_serving() {
    let env = TestEnv::new();
    env.write("a.txt", "still here\n");
    let mut server = RawStdio::spawn(&env, &[]);
    server.initialize().await;

    let bad_without_id: Vec<Vec<u8>> = vec![
        b"{not json".to_vec(),
        b"[1,2,3]".to_vec(),
        b"42".to_vec(),
        b"\"hello\"".to_vec(),
        br#"{"jsonrpc":"2.0","id":15,"method":"tools/call","params":"str"}"#.to_vec(),
        br#"{"jsonrpc":"1.0","id":18,"method":"tools/list"}"#.to_vec(),
        br#"{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}"#.to_vec(),
        b"{\"jsonrpc\":\"2.0\",\"id\":19,\"method\":\"tools/list\",\"params\":{\"x\":\"\xff\xfe\"}}".to_vec(),
    ];
    for line in &bad_without_id {
        server.send_raw(line).await;
    }
    let deep_params = format!(
        r#"{{"jsonrpc":"2.0","id":12,"method":"tools/list","params":{{"x":{}}}}}"#,
        nested(10_000, "")
    );
    server.send_raw(deep_params.as_bytes()).await;
    let deep_args = format!(
        r#"{{"jsonrpc":"2.0","id":16,"method":"tools/call","params":{{"name":"filesystem_list","arguments":{{"path":{}}}}}}}"#,
        nested(10_000, "1")
    );
    server.send_raw(deep_args.as_bytes()).await;
    let with_ids = [
        json!({"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":5}}),
        json!({"jsonrpc":"2.0","id":11,"method":"no/such/method","params":{}}),
        json!({"jsonrpc":"2.0","id":13,"method":"tools/call","params":{"name":"filesystem_read","arguments":{"path":5}}}),
        json!({"jsonrpc":"2.0","id":14,"method":"tools/call","params":{"name":"no_such_tool","arguments":{}}}),
        json!({"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"filesystem_list","arguments":[1]}}),
        json!({"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"name":"filesystem_list",
            "arguments":{"path": serde_json::from_str::<Value>(&nested(100, "1")).unwrap()}}}),
        json!({"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"filesystem_read","arguments":{"path":"a.txt","surprise":true}}}),
    ];
    for m in &with_ids {
        server.send(m).await;
    }
    server
        .send(&json!({"jsonrpc":"2.0","id":99,"method":"tools/list"}))
        .await;
    server
        .send(&json!({"jsonrpc":"2.0","id":100,"method":"tools/call","params":{"name":"filesystem_read","arguments":{"path":"a.txt"}}}))
        .await;

    let expect_error: BTreeSet<i64> = [10, 11, 13, 14, 17, 20, 21].into();
    let mut by_id: BTreeMap<i64, Value> = BTreeMap::new();
    let mut null_id = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(expect_error.iter().all(|i| by_id.contains_key(i)) && by_id.contains_key(&99) && by_id.contains_key(&100)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = server.recv(left.max(Duration::from_millis(1))).await;
        match m["id"].as_i64() {
            Some(id) => {
                by_id.insert(id, m);
            }
            None => {
                assert!(m["id"].is_null(), "an unexpected id: {m}");
                null_id.push(m);
            }
        }
    }
    for id in &expect_error {
        let m = &by_id[id];
        let code = m["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("id {id}: not an error: {m}"));
        assert!(
            JSONRPC_CODES.contains(&code),
            "id {id}: code {code} is not a JSON-RPC error code"
        );
        assert!(m.get("result").is_none(), "{m}");
    }
    assert_eq!(by_id[&11]["error"]["code"], -32601, "unknown method");
    for id in [13, 14, 20, 21] {
        assert_eq!(by_id[&id]["error"]["code"], -32602, "id {id}: {}", by_id[&id]);
    }
    let tools = by_id[&99]["result"]["tools"].as_array().expect("tools/list answered");
    assert_eq!(tools.len(), 12);
    assert_eq!(by_id[&100]["result"]["content"][0]["text"], "still here\n");
    assert_eq!(by_id[&100]["result"]["isError"], false);
    // The too-deep requests were never run.
    for id in [12, 16] {
        if let Some(m) = by_id.get(&id) {
            assert!(m.get("error").is_some(), "id {id} was served: {m:.200}");
        }
    }
    // Shape errors: one -32600 each (array, number, string, params, jsonrpc
    // version, object id); unreadable text may add none.
    assert!(
        (6..=bad_without_id.len() + 2).contains(&null_id.len()),
        "{} null-id answers: {null_id:?}",
        null_id.len()
    );
    for m in &null_id {
        let code = m["error"]["code"].as_i64().unwrap_or(0);
        assert!(code == -32600 || code == -32700, "{m}");
    }
    // Still serving on the same connection; the real call ran, and every
    // request that reached the gate but could not be served is audited as invalid.
    server.send(&json!({"jsonrpc":"2.0","id":101,"method":"ping"})).await;
    loop {
        let m = server.recv(Duration::from_secs(10)).await;
        if m["id"] == 101 {
            assert!(m.get("result").is_some(), "{m}");
            break;
        }
    }
    let stderr = server.finish().await;
    assert!(!stderr.contains("panicked"), "{stderr}");
    let audited: Vec<Value> = env.audit_lines();
    let allowed: Vec<&Value> = audited.iter().filter(|l| l["decision"] == "allowed").collect();
    assert_eq!(allowed.len(), 1, "{audited:?}");
    assert_eq!(allowed[0]["tool"], "filesystem_read");
    let invalid = audited.iter().filter(|l| l["decision"] == "invalid").count();
    assert_eq!(invalid, audited.len() - 1, "{audited:?}");
    assert!(invalid >= 4, "malformed calls are audited as invalid: {audited:?}");
}

/// A 100 MiB line (no newline until the end) is dropped once it passes rmcp's
/// 16 MiB line cap: memory stays bounded (peak RSS < 200 MiB), the error goes
/// to stderr, the request is never answered or run, and the session goes on:
/// the next request on the same connection is answered.
#[tokio::test]
async fn stdio_a_100_mib_line_is_dropped_in_bounded_memory_and_the_session_goes_on() {
    let env = TestEnv::new();
    let mut server = RawStdio::spawn(&env, &[]);
    server.initialize().await;
    let pid = server.pid();
    let before = proc_kib(pid, "VmHWM");
    let mut stdin = server.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        stdin
            .write_all(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"filesystem_write","arguments":{"path":"huge.txt","content":""#)
            .await?;
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..100 {
            stdin.write_all(&chunk).await?;
        }
        stdin.write_all(b"\"}}}\n").await?;
        stdin
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/list\"}\n")
            .await?;
        stdin.flush().await?;
        Ok::<_, std::io::Error>(stdin)
    });
    let mut answered_7 = false;
    loop {
        let m = server.recv(Duration::from_secs(120)).await;
        if m["id"] == 7 {
            answered_7 = true;
        }
        if m["id"] == 8 {
            assert_eq!(m["result"]["tools"].as_array().map(Vec::len), Some(12), "{m:.300}");
            break;
        }
    }
    let peak = proc_kib(pid, "VmHWM");
    server.stdin = Some(
        tokio::time::timeout(Duration::from_secs(30), writer)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
    );
    eprintln!("100 MiB line: peak RSS {} MiB -> {} MiB", before / 1024, peak / 1024);
    assert!(!answered_7, "the oversized request was answered");
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB after a 100 MiB line");
    assert!(!env.path("huge.txt").exists());
    let stderr = server.finish().await;
    assert!(
        stderr.contains("exceeded the maximum line length"),
        "the drop is logged on stderr: {stderr}"
    );
    assert!(env.audit_lines().is_empty());
}

/// 5,000 pipelined `tools/list` requests written without waiting: every one
/// is answered, once.
#[tokio::test]
async fn stdio_a_flood_of_pipelined_requests_is_fully_answered() {
    const N: i64 = 5_000;
    let env = TestEnv::new();
    let mut server = RawStdio::spawn(&env, &[]);
    server.initialize().await;
    let mut stdin = server.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        let mut batch = String::new();
        for id in 1_000..1_000 + N {
            batch.push_str(&format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/list\"}}\n"
            ));
        }
        stdin.write_all(batch.as_bytes()).await?;
        stdin.flush().await?;
        Ok::<_, std::io::Error>(stdin)
    });
    let started = Instant::now();
    let mut seen = HashSet::new();
    while seen.len() < N as usize {
        let m = server.recv(Duration::from_secs(60)).await;
        let id = m["id"].as_i64().unwrap_or_else(|| panic!("{m:.300}"));
        assert_eq!(m["result"]["tools"].as_array().map(Vec::len), Some(12), "{m:.300}");
        assert!(seen.insert(id), "id {id} answered twice");
        assert!(started.elapsed() < Duration::from_secs(120), "flood too slow");
    }
    eprintln!("{N} pipelined tools/list answered in {:?}", started.elapsed());
    server.stdin = Some(writer.await.unwrap().unwrap());
    server.finish().await;
}

// ---------------------------------------------------------------------------
// HTTP: the token, DNS rebinding, body size, slow clients.
// ---------------------------------------------------------------------------

fn with_token(mut env: TestEnv) -> TestEnv {
    env.set_var("EXECUTION_TOKEN", TOKEN);
    env
}

fn init_body() -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}})
}

/// Every route execlayer serves, with a body that would do harm if it got through.
fn every_route() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("POST", "/mcp", Some(init_body())),
        ("GET", "/mcp", None),
        ("DELETE", "/mcp", None),
        ("GET", "/sse", None),
        ("POST", "/sse", None),
        (
            "POST",
            "/messages?sessionId=x",
            Some(json!({"jsonrpc":"2.0","id":1,"method":"ping"})),
        ),
        ("GET", "/api/v1/execution/tools", None),
        (
            "POST",
            "/api/v1/execution/tools/shell_exec/enabled",
            Some(json!({"enabled": false})),
        ),
        (
            "POST",
            "/api/v1/execution/run",
            Some(json!({"tool_name": "filesystem_write", "args": {"path": "pwned.txt", "content": "x"}})),
        ),
        ("POST", "/api/v1/execution/approve?tool_name=shell_exec", None),
        ("GET", "/api/v1/execution/approvals", None),
        ("POST", "/api/v1/execution/approvals/0123/approve", None),
        ("POST", "/api/v1/execution/approvals/0123/deny", None),
        ("GET", "/api/v1/execution/audit", None),
        ("GET", "/api/v1/execution/config", None),
        (
            "PUT",
            "/api/v1/execution/config",
            Some(json!({"approval_mode": "auto"})),
        ),
        ("GET", "/api/v1/brain/status", None),
        ("GET", "/api/v1/execution/stats", None),
        ("GET", "/api/v1/execution/playbooks", None),
        (
            "POST",
            "/api/v1/execution/playbooks/review-changes/run",
            Some(json!({})),
        ),
        ("GET", "/api/v1/no/such/route", None),
        ("POST", "/", None),
    ]
}

fn request(
    http: &reqwest::Client,
    server: &HttpServer,
    method: &str,
    path: &str,
    body: &Option<Value>,
) -> reqwest::RequestBuilder {
    let mut r = http
        .request(method.parse().unwrap(), server.url(path))
        .header("Accept", "application/json, text/event-stream");
    if let Some(body) = body {
        r = r.json(body);
    }
    r
}

async fn assert_401(r: reqwest::RequestBuilder, what: &str) -> String {
    let r = r.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(r.status(), 401, "{what}");
    assert!(
        r.headers().get("www-authenticate").is_some(),
        "{what}: no WWW-Authenticate"
    );
    let body: Value = r
        .json()
        .await
        .unwrap_or_else(|e| panic!("{what}: body is not JSON: {e}"));
    assert_eq!(body["error"], "unauthorized", "{what}");
    body["detail"].as_str().unwrap_or_default().to_owned()
}

/// Without the token, with a wrong one, with the right one in the wrong
/// place, every route (MCP, legacy SSE, every REST path, unknown paths)
/// answers 401 and changes nothing; a token in the query string is refused
/// even next to a valid header.
#[tokio::test]
async fn http_every_route_answers_401_without_the_right_token_and_changes_nothing() {
    let env = with_token(TestEnv::strict());
    let policy_before = std::fs::read(&env.config).unwrap();
    let server = env.http().await;
    let http = http_client();
    for (method, path, body) in every_route() {
        let what = |how: &str| format!("{method} {path} {how}");
        assert_401(request(&http, &server, method, path, &body), &what("without a token")).await;
        assert_401(
            request(&http, &server, method, path, &body).header("X-Execution-Token", "hardening-token-5f3a9c1e78"),
            &what("with a wrong X-Execution-Token"),
        )
        .await;
        assert_401(
            request(&http, &server, method, path, &body).bearer_auth("not-the-token-at-all"),
            &what("with a wrong bearer token"),
        )
        .await;
        assert_401(
            request(&http, &server, method, path, &body).header("Authorization", format!("Basic {TOKEN}")),
            &what("with the token under another scheme"),
        )
        .await;
        assert_401(
            request(&http, &server, method, path, &body).header("Cookie", format!("token={TOKEN}")),
            &what("with the token in a cookie"),
        )
        .await;
        assert_401(
            request(&http, &server, method, path, &body).header("X-Execution-Token", &TOKEN[..TOKEN.len() - 1]),
            &what("with a prefix of the token"),
        )
        .await;
        for key in ["token", "access_token", "execution_token", "Token", "auth"] {
            let sep = if path.contains('?') { '&' } else { '?' };
            let in_url = format!("{path}{sep}{key}={TOKEN}");
            let detail = assert_401(
                request(&http, &server, method, &in_url, &body).header("X-Execution-Token", TOKEN),
                &what(&format!("with ?{key}= beside a valid header")),
            )
            .await;
            assert!(detail.contains("URL"), "{detail}");
        }
    }
    // The right token in the right place works (the 401s above are the guard's).
    let r = http
        .get(server.url("/api/v1/execution/config"))
        .header("X-Execution-Token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Nothing changed: policy, approvals, workspace, audit log.
    assert_eq!(std::fs::read(&env.config).unwrap(), policy_before);
    let policy = server.core.engine.policy.current();
    assert_eq!(policy.approval_mode, execlayer::policy::ApprovalMode::RequireApproval);
    assert!(policy.enabled("shell_exec"));
    assert!(server.core.engine.state.pending().await.unwrap().is_empty());
    assert!(!env.path("pwned.txt").exists());
    assert!(env.audit_lines().is_empty(), "{:?}", env.audit_lines());
}

/// Reads the real binary's stderr until it names the address it listens on.
async fn http_binary(
    env: &TestEnv,
    extra_args: &[&str],
    log: &str,
) -> (tokio::process::Child, String, Arc<Mutex<String>>) {
    let mut child = binary(env)
        .args(["serve", "--http", "127.0.0.1:0"])
        .args(extra_args)
        .env("EXECLAYER_LOG", log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn execlayer --http");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let captured = Arc::new(Mutex::new(String::new()));
    let addr = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            captured.lock().unwrap().push_str(&line);
            captured.lock().unwrap().push('\n');
            if let Some(rest) = line.split("local=").nth(1) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the server exited before listening: {}", captured.lock().unwrap());
    })
    .await
    .expect("the server listens within 20 s");
    let sink = captured.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    (child, addr, captured)
}

fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("running") as i32;
    // SAFETY: signalling our own child by its pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

/// The real binary with debug logs: a token sent in a URL is refused on every
/// kind of route, and neither the server's log nor the audit log ever holds it.
#[tokio::test]
async fn http_a_token_in_the_url_is_refused_and_never_logged() {
    let env = with_token(TestEnv::new());
    env.write("a.txt", "hello\n");
    let (mut child, addr, log) = http_binary(&env, &[], "debug").await;
    let http = http_client();
    let base = format!("http://{addr}");
    for (method, path, body) in [
        ("GET", format!("/api/v1/execution/tools?token={TOKEN}"), None),
        (
            "POST",
            format!("/api/v1/execution/run?access_token={TOKEN}"),
            Some(json!({"tool_name": "filesystem_read", "args": {"path": "a.txt"}})),
        ),
        ("POST", format!("/mcp?token={TOKEN}"), Some(init_body())),
        ("GET", format!("/sse?auth={TOKEN}"), None),
        (
            "GET",
            format!("/api/v1/execution/audit?limit=5&execution_token={TOKEN}"),
            None,
        ),
    ] {
        let mut r = http
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .header("Accept", "application/json, text/event-stream")
            .header("X-Execution-Token", TOKEN);
        if let Some(body) = body {
            r = r.json(&body);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
    }
    // Real work with the token in a header, through REST and MCP.
    let r = http
        .post(format!("{base}/api/v1/execution/run"))
        .bearer_auth(TOKEN)
        .json(&json!({"tool_name": "filesystem_read", "args": {"path": "a.txt"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{base}/mcp"))
        .header("Accept", "application/json, text/event-stream")
        .header("X-Execution-Token", TOKEN)
        .json(&init_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(r);
    sigterm(&child);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = log.lock().unwrap().clone();
    assert!(log.contains("execlayer serving HTTP"), "the log was captured: {log}");
    assert!(!log.contains(TOKEN), "the token is in the server log:\n{log}");
    let audit = std::fs::read_to_string(&env.audit).unwrap();
    assert_eq!(audit.lines().count(), 1, "only the authorised call is audited: {audit}");
    assert!(!audit.contains(TOKEN));
}

/// DNS rebinding: a foreign `Host` or `Origin` gets 403 on MCP, legacy SSE,
/// REST and the dashboard, even with a valid token, and changes nothing.
#[tokio::test]
async fn http_foreign_hosts_and_origins_are_refused_on_every_door() {
    let env = with_token(TestEnv::strict());
    let policy_before = std::fs::read(&env.config).unwrap();
    let server = env.http().await;
    let port = server.addr.port();
    let http = http_client();
    let doors: Vec<(&str, &str, Option<Value>)> = vec![
        ("POST", "/mcp", Some(init_body())),
        ("GET", "/sse", None),
        ("GET", "/api/v1/execution/config", None),
        (
            "PUT",
            "/api/v1/execution/config",
            Some(json!({"approval_mode": "auto"})),
        ),
        (
            "POST",
            "/api/v1/execution/run",
            Some(json!({"tool_name": "filesystem_write", "args": {"path": "pwned.txt", "content": "x"}})),
        ),
        ("POST", "/api/v1/execution/approve?tool_name=filesystem_write", None),
        ("GET", "/", None),
    ];
    let foreign_hosts = [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
        "10.0.0.1".to_owned(),
    ];
    let foreign_origins = [
        "http://evil.example".to_owned(),
        format!("http://evil.example:{port}"),
        "null".to_owned(),
        "http://127.0.0.1:1".to_owned(),
        format!("https://127.0.0.1.evil.example:{port}"),
        "file://".to_owned(),
    ];
    for (method, path, body) in &doors {
        for host in &foreign_hosts {
            let r = request(&http, &server, method, path, body)
                .header("X-Execution-Token", TOKEN)
                .header("Host", host)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{method} {path} Host: {host}");
            assert_eq!(r.json::<Value>().await.unwrap()["error"], "forbidden host");
        }
        for origin in &foreign_origins {
            let r = request(&http, &server, method, path, body)
                .header("X-Execution-Token", TOKEN)
                .header("Origin", origin)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{method} {path} Origin: {origin}");
            assert_eq!(r.json::<Value>().await.unwrap()["error"], "forbidden origin");
        }
    }
    // Loopback names and the server's own origin pass.
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let r = http
            .get(server.url("/api/v1/execution/tools"))
            .header("X-Execution-Token", TOKEN)
            .header("Host", &host)
            .header("Origin", format!("http://{host}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{host}");
    }
    assert_eq!(std::fs::read(&env.config).unwrap(), policy_before);
    assert!(!env.path("pwned.txt").exists());
    assert!(env.audit_lines().is_empty());
}

/// The announced endpoint of a legacy SSE stream (the stream is kept open).
async fn legacy_endpoint(server: &HttpServer) -> (String, reqwest::Response) {
    let mut response = http_client()
        .get(server.url("/sse"))
        .header("X-Execution-Token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut buffer = String::new();
    while !buffer.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .unwrap()
            .unwrap()
            .expect("endpoint event");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
    let endpoint = buffer
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .expect("data line")
        .trim()
        .to_owned();
    (endpoint, response)
}

/// A body over `--max-body-bytes` gets 413 on `/mcp` (new or established
/// session), `/messages`, and REST, whether it declares its length or is
/// chunked; nothing runs, and the server keeps answering.
#[tokio::test]
async fn http_oversized_bodies_get_413_on_every_door() {
    const LIMIT: usize = 64 * 1024;
    let env = with_token(TestEnv::new());
    let server = env
        .http_with(execlayer::http::HttpOptions {
            max_body_bytes: LIMIT,
            ..Default::default()
        })
        .await;
    let http = http_client();
    let big = "x".repeat(LIMIT + 1024);
    let post = |path: &str| {
        http.post(server.url(path))
            .header("X-Execution-Token", TOKEN)
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json")
    };
    let chunked = |body: String| {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            body.into_bytes().chunks(8 * 1024).map(|c| Ok(c.to_vec())).collect();
        reqwest::Body::wrap_stream(futures::stream::iter(chunks))
    };

    // A new session whose initialize is padded.
    let mut padded = init_body();
    padded["params"]["clientInfo"]["name"] = json!(big);
    let r = post("/mcp").json(&padded).send().await.unwrap();
    assert_eq!(r.status(), 413, "padded initialize");
    let r = post("/mcp").body(chunked(padded.to_string())).send().await;
    assert!(
        r.as_ref().map(|r| r.status() == 413).unwrap_or(true),
        "chunked initialize: {:?}",
        r.map(|r| r.status())
    );

    // An established session.
    let r = post("/mcp").json(&init_body()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    drop(r);
    let r = post("/mcp")
        .header("Mcp-Session-Id", &session)
        .header("Mcp-Protocol-Version", "2025-11-25")
        .json(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"filesystem_write","arguments":{"path":"big.txt","content":big}}});
    let r = post("/mcp")
        .header("Mcp-Session-Id", &session)
        .header("Mcp-Protocol-Version", "2025-11-25")
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "tools/call in a session");

    // Legacy SSE.
    let (endpoint, _stream) = legacy_endpoint(&server).await;
    let r = post(&endpoint).json(&call).send().await.unwrap();
    assert_eq!(r.status(), 413, "legacy /messages");

    // REST, declared and chunked.
    let run = json!({"tool_name": "filesystem_write", "args": {"path": "big.txt", "content": big}});
    let r = post("/api/v1/execution/run").json(&run).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let r = post("/api/v1/execution/run")
        .body(chunked(run.to_string()))
        .send()
        .await;
    assert!(
        r.as_ref().map(|r| r.status() == 413).unwrap_or(true),
        "chunked REST body: {:?}",
        r.map(|r| r.status())
    );
    let r = http
        .put(server.url("/api/v1/execution/config"))
        .header("X-Execution-Token", TOKEN)
        .json(&json!({"approval_mode": "auto", "pad": big}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    assert!(!env.path("big.txt").exists());
    assert!(env.audit_lines().is_empty(), "{:?}", env.audit_lines());
    // Still serving.
    let r = post("/api/v1/execution/run")
        .json(&json!({"tool_name": "filesystem_list", "args": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Opens `n` connections that each send part of a request and stall.
async fn stalled_sockets(addr: std::net::SocketAddr, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut socks = Vec::new();
    for i in 0..n {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let partial: &[u8] = match i % 3 {
            // Half a request line.
            0 => b"GET /api/v1/execution/to",
            // Headers that never end.
            1 => b"GET /api/v1/execution/tools HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Execution-Tok",
            // A body that never arrives.
            _ => b"POST /api/v1/execution/run HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Execution-Token: hardening-token-5f3a9c1e77\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"tool_name\":",
        };
        s.write_all(partial).await.unwrap();
        socks.push(s);
    }
    socks
}

/// Slowloris: 20 connections that send part of a request and stall do not
/// slow a normal client (every answer within 2 s), and do not keep an
/// embedding's `serve_http` from returning once shutdown is signalled.
///
/// Observed (failing): axum's graceful shutdown waits for every open
/// connection, and hyper, run without a timer, never times out a request
/// head or body, so a single stalled socket (half a request line, unfinished
/// headers, or a body that never comes) keeps `serve_http` from returning
/// (over 40 s in each case; nothing ever closes it). The binary still exits,
/// because `main` drops its runtime after 200 ms (next test).
#[tokio::test]
async fn http_slow_clients_neither_starve_others_nor_block_shutdown() {
    let env = with_token(TestEnv::new());
    env.write("a.txt", "fast\n");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let core = execlayer::server::Core::start(env.engine(), shutdown.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(execlayer::http::serve_http(
        core,
        listener,
        execlayer::http::HttpOptions::default(),
        shutdown.clone(),
    ));
    let stalled = stalled_sockets(addr, 20).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let http = http_client();
    for i in 0..20 {
        let started = Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            http.post(format!("http://{addr}/api/v1/execution/run"))
                .header("X-Execution-Token", TOKEN)
                .json(&json!({"tool_name": "filesystem_read", "args": {"path": "a.txt"}}))
                .send(),
        )
        .await
        .unwrap_or_else(|_| panic!("call {i} took over 2 s beside 20 stalled sockets"))
        .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["text"], "fast\n");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // The stalled sockets are still open (nothing answered them yet).
    let mut probe = [0u8; 1];
    assert!(
        stalled[1].try_read(&mut probe).is_err(),
        "a stalled socket was already answered or closed"
    );

    shutdown.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(5), serving).await;
    let finished = ended.is_ok();
    drop(stalled);
    assert!(
        finished,
        "serve_http did not return within 5 s of shutdown while 20 stalled sockets were open"
    );
}

/// The same attack against the real binary: SIGTERM still ends it promptly.
#[tokio::test]
async fn http_the_binary_exits_promptly_on_sigterm_despite_stalled_sockets() {
    let env = with_token(TestEnv::new());
    let (mut child, addr, _log) = http_binary(&env, &[], "info").await;
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let stalled = stalled_sockets(addr, 20).await;
    let r = tokio::time::timeout(
        Duration::from_secs(2),
        http_client()
            .get(format!("http://{addr}/api/v1/execution/tools"))
            .header("X-Execution-Token", TOKEN)
            .send(),
    )
    .await
    .expect("answered within 2 s")
    .unwrap();
    assert_eq!(r.status(), 200);
    let started = Instant::now();
    sigterm(&child);
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits within 5 s of SIGTERM")
        .unwrap();
    eprintln!("exited {status} {:?} after SIGTERM", started.elapsed());
    assert!(status.success(), "{status}");
    drop(stalled);
}

// ---------------------------------------------------------------------------
// Approval bypasses.
// ---------------------------------------------------------------------------

fn plain_client_config() -> ClientConfig {
    client_config(ProtocolVersion::V_2025_11_25, ClientCapabilities::default())
}

async fn rest_run(server: &HttpServer, body: Value) -> (u16, Value) {
    let r = http_client()
        .post(server.url("/api/v1/execution/run"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn rest_post(server: &HttpServer, path: &str) -> (u16, Value) {
    let r = http_client().post(server.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn with_id(mut args: Value, id: &str) -> Value {
    args["approval_id"] = json!(id);
    args
}

fn pending_id(r: &rmcp::model::CallToolResult) -> String {
    r.meta
        .as_ref()
        .and_then(|m| m.get("execlayer/pending_approval_id"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no pending id: {}", text(r)))
        .to_owned()
}

/// An approval id works once, for its tool and (when it came from a refused
/// call) its exact arguments, whichever doors it is presented at: MCP and
/// REST share one store, so an id spent at one door is spent at all.
#[tokio::test]
async fn approval_ids_are_single_use_and_bound_to_tool_and_arguments_across_doors() {
    let env = TestEnv::strict();
    let server = env.http().await;
    let mcp = connect(&server.core, plain_client_config()).await;

    // A tool-wide grant from REST, spent over MCP, then refused at both doors.
    let (status, grant) = rest_post(&server, "/api/v1/execution/approve?tool_name=filesystem_write").await;
    assert_eq!(status, 200);
    let id = grant["approval_id"].as_str().unwrap().to_owned();
    // Presented to another tool first: refused, and that tool did not run.
    let patch = "--- /dev/null\n+++ b/p.txt\n@@ -0,0 +1 @@\n+patched\n";
    let r = call(&mcp, "apply_patch", with_id(json!({"patch": patch}), &id)).await;
    assert_tool_error(&r, "filesystem_write");
    let r = call(
        &mcp,
        "run_playbook",
        with_id(
            json!({"steps": [{"tool": "filesystem_write", "args": {"path": "p.txt", "content": "pb"}}]}),
            &id,
        ),
    )
    .await;
    assert!(is_error(&r), "{}", text(&r));
    assert!(!env.path("p.txt").exists());
    let r = call(
        &mcp,
        "filesystem_write",
        with_id(json!({"path": "a.txt", "content": "1"}), &id),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    let (status, _) = rest_run(
        &server,
        json!({"tool_name": "filesystem_write", "args": {"path": "a.txt", "content": "2"}, "approval_id": id}),
    )
    .await;
    assert_eq!(status, 403, "spent over MCP, refused over REST");
    let r = call(
        &mcp,
        "filesystem_write",
        with_id(json!({"path": "a.txt", "content": "3"}), &id),
    )
    .await;
    assert_tool_error(&r, "already used");
    assert_eq!(env.read("a.txt"), "1");

    // A pending id from MCP, approved by the operator over REST.
    let args = json!({"path": "b.txt", "content": "exact"});
    let r = call(&mcp, "filesystem_write", args.clone()).await;
    assert_tool_error(&r, "approval required");
    let pending = pending_id(&r);
    let (status, _) = rest_post(&server, &format!("/api/v1/execution/approvals/{pending}/approve")).await;
    assert_eq!(status, 200);
    let (status, _) = rest_post(&server, &format!("/api/v1/execution/approvals/{pending}/approve")).await;
    assert_eq!(status, 409, "an id is decided once");
    for other in [
        json!({"path": "b.txt", "content": "other"}),
        json!({"path": "c.txt", "content": "exact"}),
        json!({"path": "b.txt", "content": "exact", "create_dirs": true}),
        json!({"path": "./b.txt", "content": "exact"}),
    ] {
        let r = call(&mcp, "filesystem_write", with_id(other.clone(), &pending)).await;
        assert_tool_error(&r, "different arguments");
    }
    let (status, body) = rest_run(
        &server,
        json!({"tool_name": "shell_exec", "args": {"command": "ls"}, "approval_id": pending}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(!env.path("c.txt").exists());
    // The exact call runs once, over REST; the same id is then refused over MCP.
    let (status, ran) = rest_run(
        &server,
        json!({"tool_name": "filesystem_write", "args": args, "approval_id": pending}),
    )
    .await;
    assert_eq!(status, 200, "{ran}");
    assert_eq!(env.read("b.txt"), "exact");
    std::fs::remove_file(env.path("b.txt")).unwrap();
    let r = call(&mcp, "filesystem_write", with_id(args.clone(), &pending)).await;
    assert_tool_error(&r, "already used");
    assert!(!env.path("b.txt").exists());

    // Every use is audited with its id; exactly two writes ran.
    let allowed: Vec<Value> = env
        .audit_lines()
        .into_iter()
        .filter(|l| l["decision"] == "allowed" && l["client"] != "operator")
        .collect();
    assert_eq!(allowed.len(), 2, "{allowed:?}");
    assert!(allowed.iter().all(|l| l["tool"] == "filesystem_write"));
}

/// With `approval_ttl_seconds: 1`, an approved id, a tool-wide grant and a
/// pending request all expire: the call is refused and nothing is written.
#[tokio::test]
async fn an_expired_approval_is_refused() {
    let env = TestEnv::strict();
    env.set_policy(|p| p["approval_ttl_seconds"] = json!(1));
    let server = env.http().await;
    let mcp = connect(&server.core, plain_client_config()).await;
    let args = json!({"path": "late.txt", "content": "late"});

    let r = call(&mcp, "filesystem_write", args.clone()).await;
    let approved = pending_id(&r);
    let r = call(&mcp, "filesystem_write", json!({"path": "later.txt", "content": "x"})).await;
    let never_answered = pending_id(&r);
    let (status, _) = rest_post(&server, &format!("/api/v1/execution/approvals/{approved}/approve")).await;
    assert_eq!(status, 200);
    let (_, grant) = rest_post(&server, "/api/v1/execution/approve?tool_name=filesystem_write").await;
    let grant = grant["approval_id"].as_str().unwrap().to_owned();
    assert_eq!(server.core.engine.state.pending().await.unwrap().len(), 1);

    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let r = call(&mcp, "filesystem_write", with_id(args.clone(), &approved)).await;
    assert_tool_error(&r, "expired");
    let r = call(&mcp, "filesystem_write", with_id(args.clone(), &grant)).await;
    assert_tool_error(&r, "expired");
    assert!(!env.path("late.txt").exists());
    // The request nobody answered is gone: approving it now is a 404.
    assert!(server.core.engine.state.pending().await.unwrap().is_empty());
    let (status, _) = rest_post(
        &server,
        &format!("/api/v1/execution/approvals/{never_answered}/approve"),
    )
    .await;
    assert_eq!(status, 404);
    let r = call(
        &mcp,
        "filesystem_write",
        with_id(json!({"path": "later.txt", "content": "x"}), &never_answered),
    )
    .await;
    assert_tool_error(&r, "expired");
    assert!(!env.path("later.txt").exists());
}

/// An `approval_id` handed to a call that needs no approval (a low-risk tool,
/// a dry run) or that never gets to run (disabled tool, bad arguments) is not
/// spent: it still approves the call it was granted for.
#[tokio::test]
async fn an_approval_id_is_not_spent_by_a_call_that_needs_none() {
    let env = TestEnv::strict();
    env.write("a.txt", "one\n");
    let core = env.core();
    let mcp = connect(&core, plain_client_config()).await;
    let grant = async |tool: &str| {
        core.engine
            .state
            .grant_tool(tool, execlayer::policy::Risk::Medium, "op", Duration::from_secs(60))
            .await
            .unwrap()
            .id
    };
    let write_id = grant("filesystem_write").await;
    let patch_id = grant("apply_patch").await;
    let patch = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-one\n+two\n";

    let r = call(&mcp, "filesystem_read", with_id(json!({"path": "a.txt"}), &write_id)).await;
    assert_eq!(text(&r), "one\n");
    let r = call(&mcp, "filesystem_list", with_id(json!({}), &write_id)).await;
    assert!(!is_error(&r));
    let r = call(
        &mcp,
        "apply_patch",
        with_id(json!({"patch": patch, "dry_run": true}), &patch_id),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(env.read("a.txt"), "one\n");
    let r = try_call(
        &mcp,
        "filesystem_write",
        with_id(json!({"path": 5, "content": "x"}), &write_id),
    )
    .await;
    assert!(r.is_err(), "bad arguments are a protocol error");
    core.engine.policy.set_enabled("filesystem_write", false).unwrap();
    let r = call(
        &mcp,
        "filesystem_write",
        with_id(json!({"path": "w.txt", "content": "w"}), &write_id),
    )
    .await;
    assert_tool_error(&r, "tool disabled");
    core.engine.policy.set_enabled("filesystem_write", true).unwrap();
    assert!(!env.path("w.txt").exists());

    // Both ids still approve their own calls, once.
    let r = call(
        &mcp,
        "filesystem_write",
        with_id(json!({"path": "w.txt", "content": "w"}), &write_id),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    let r = call(&mcp, "apply_patch", with_id(json!({"patch": patch}), &patch_id)).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!((env.read("w.txt"), env.read("a.txt")), ("w".into(), "two\n".into()));
    // Low-risk calls carried no approval in the audit log.
    for line in env.audit_lines() {
        if line["tool"] == "filesystem_read" || line["tool"] == "filesystem_list" || line["dry_run"] == true {
            assert!(line.get("approval").is_none(), "{line}");
        }
    }
}

/// Every tool, given an operator's approval so that approval is not what
/// stops it, tries to rewrite the policy, a playbook or the audit log (all
/// inside the workspace here, as with the defaults): every attempt is refused
/// and the policy in force is unchanged. No MCP tool grants approvals.
#[tokio::test]
async fn no_mcp_tool_can_grant_approvals_or_change_policy_playbooks_or_audit() {
    let mut env = TestEnv::strict();
    let config = env.ws.join("config/execution_layer_config.json");
    std::fs::create_dir_all(env.ws.join("config/playbooks")).unwrap();
    std::fs::copy(&env.config, &config).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/playbooks/review-changes.json");
    std::fs::copy(shipped, env.ws.join("config/playbooks/review-changes.json")).unwrap();
    let audit = env.ws.join("audit.jsonl");
    env.set_var("EXECUTION_CONFIG", config.to_str().unwrap());
    env.set_var("EXECUTION_AUDIT_LOG", audit.to_str().unwrap());
    env.set_var("SHELL_ALLOWLIST", "git status,git diff,git log,git show,ls");
    env.set_var("OLLAMA_BASE_URL", "http://127.0.0.1:9");
    env.init_repo(&[("notes.txt", "notes\n")]);
    std::os::unix::fs::symlink("config/execution_layer_config.json", env.ws.join("innocent.json")).unwrap();
    std::fs::hard_link(&config, env.ws.join("hard.json")).unwrap();
    std::os::unix::fs::symlink("config/playbooks", env.ws.join("books")).unwrap();

    let policy_bytes = std::fs::read(&config).unwrap();
    let playbook_bytes = std::fs::read(env.ws.join("config/playbooks/review-changes.json")).unwrap();
    let core = env.core();
    let policy_before = serde_json::to_value(&*core.engine.policy.current()).unwrap();
    let mcp = connect(&core, plain_client_config()).await;

    let names: BTreeSet<String> = mcp
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    let expected: BTreeSet<String> = [
        "filesystem_read",
        "filesystem_write",
        "filesystem_list",
        "filesystem_search",
        "git_status",
        "git_diff",
        "edit_file",
        "apply_patch",
        "shell_exec",
        "run_playbook",
        "reason",
        "brain_status",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(names, expected);
    for name in &names {
        for word in ["approv", "grant", "policy", "config", "enable", "toggle", "audit"] {
            assert!(!name.contains(word), "tool {name} looks like it manages {word}");
        }
    }

    let auto = String::from_utf8(policy_bytes.clone())
        .unwrap()
        .replace("require_approval", "auto");
    let evil_book =
        json!({"description": "x", "steps": [{"tool": "shell_exec", "args": {"command": "ls"}}]}).to_string();
    let old_policy = String::from_utf8(policy_bytes.clone()).unwrap();
    let modify_policy = format!(
        "--- a/config/execution_layer_config.json\n+++ b/config/execution_layer_config.json\n@@ -1,{n} +1,{n} @@\n{}",
        old_policy
            .lines()
            .map(|l| format!("-{l}\n"))
            .chain(auto.lines().map(|l| format!("+{l}\n")))
            .collect::<String>(),
        n = old_policy.lines().count()
    );
    let attempts: Vec<(&str, Value)> = vec![
        (
            "filesystem_write",
            json!({"path": "config/execution_layer_config.json", "content": auto}),
        ),
        (
            "filesystem_write",
            json!({"path": "./config//execution_layer_config.json", "content": auto}),
        ),
        (
            "filesystem_write",
            json!({"path": format!("{}/config/execution_layer_config.json", env.ws.display()), "content": auto}),
        ),
        ("filesystem_write", json!({"path": "innocent.json", "content": auto})),
        ("filesystem_write", json!({"path": "hard.json", "content": auto})),
        (
            "filesystem_write",
            json!({"path": "config/playbooks/evil.json", "content": evil_book}),
        ),
        (
            "filesystem_write",
            json!({"path": "books/review-changes.json", "content": evil_book}),
        ),
        ("filesystem_write", json!({"path": "audit.jsonl", "content": ""})),
        ("apply_patch", json!({"patch": modify_policy})),
        (
            "apply_patch",
            json!({"patch": modify_policy.replace("a/config/execution_layer_config.json", "a/innocent.json").replace("b/config/execution_layer_config.json", "b/innocent.json")}),
        ),
        (
            "apply_patch",
            json!({"patch": format!("--- a/config/execution_layer_config.json\n+++ /dev/null\n@@ -1,{n} +0,0 @@\n{}", old_policy.lines().map(|l| format!("-{l}\n")).collect::<String>(), n = old_policy.lines().count())}),
        ),
        (
            "apply_patch",
            json!({"patch": format!("--- /dev/null\n+++ b/config/playbooks/evil.json\n@@ -0,0 +1 @@\n+{evil_book}\n")}),
        ),
        (
            "apply_patch",
            json!({"patch": "diff --git a/notes.txt b/config/execution_layer_config.json\nsimilarity index 100%\nrename from notes.txt\nrename to config/execution_layer_config.json\n"}),
        ),
        (
            "apply_patch",
            json!({"patch": "--- a/audit.jsonl\n+++ b/audit.jsonl\n@@ -1 +1 @@\n-x\n+y\n"}),
        ),
        (
            "run_playbook",
            json!({"steps": [{"tool": "filesystem_write", "args": {"path": "config/execution_layer_config.json", "content": auto}}]}),
        ),
        (
            "edit_file",
            json!({"path": "config/execution_layer_config.json", "old_string": "require_approval", "new_string": "auto"}),
        ),
        ("run_playbook", json!({"name": "../execution_layer_config"})),
        (
            "shell_exec",
            json!({"command": "git diff --output=config/execution_layer_config.json"}),
        ),
        ("shell_exec", json!({"command": "ls config"})),
        (
            "reason",
            json!({"prompt": "set approval_mode to auto", "context_paths": ["config/execution_layer_config.json"]}),
        ),
        ("filesystem_read", json!({"path": "config/execution_layer_config.json"})),
        ("filesystem_list", json!({"path": "config", "recursive": true})),
        ("filesystem_search", json!({"pattern": "approval_mode"})),
        ("git_status", json!({})),
        ("git_diff", json!({})),
        ("brain_status", json!({})),
    ];
    let mut called = BTreeSet::new();
    for (tool, args) in attempts {
        let grant = core
            .engine
            .state
            .grant_tool(tool, execlayer::policy::Risk::High, "op", Duration::from_secs(60))
            .await
            .unwrap();
        let r = try_call(&mcp, tool, with_id(args.clone(), &grant.id)).await;
        called.insert(tool.to_owned());
        let changes = matches!(tool, "filesystem_write" | "edit_file" | "apply_patch" | "run_playbook")
            || args.to_string().contains("--output");
        if args.to_string().contains("hard.json") {
            // A hard link is a second name for the policy's inode: the write
            // may go through, but it renames a new file over the link.
            let r = r.unwrap_or_else(|e| panic!("{tool} {args}: {e}"));
            eprintln!(
                "write through a hard link to the policy: error={} {}",
                is_error(&r),
                text(&r)
            );
        } else if changes {
            let r = r.unwrap_or_else(|e| panic!("{tool} {args}: {e}"));
            assert!(is_error(&r), "{tool} {args:.200} succeeded: {}", text(&r));
        }
        assert_eq!(
            std::fs::read(&config).unwrap(),
            policy_bytes,
            "{tool} {args:.200} changed the policy"
        );
    }
    assert_eq!(called.len(), names.len(), "every tool was tried");
    // A write to a hard link of the policy replaces the link, never the policy.
    assert_eq!(std::fs::read(&config).unwrap(), policy_bytes);
    assert_eq!(
        std::fs::read(env.ws.join("config/playbooks/review-changes.json")).unwrap(),
        playbook_bytes
    );
    let books: Vec<_> = std::fs::read_dir(env.ws.join("config/playbooks")).unwrap().collect();
    assert_eq!(books.len(), 1, "no playbook was added");
    core.engine.policy.reload().unwrap();
    assert_eq!(
        serde_json::to_value(&*core.engine.policy.current()).unwrap(),
        policy_before
    );
    // Still strict: an unapproved write is refused, and the audit log is intact.
    let r = call(&mcp, "filesystem_write", json!({"path": "x.txt", "content": "x"})).await;
    assert_tool_error(&r, "approval required");
    let lines = std::fs::read_to_string(&audit).unwrap();
    assert!(lines.lines().count() >= 25);
    for l in lines.lines() {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("audit line broken ({e}): {l}"));
    }
}

/// A 2025 client whose elicitation answer has a fixed shape.
#[derive(Clone)]
struct Shaped {
    answer: ElicitResult,
    asked: Arc<Mutex<usize>>,
}

impl ClientHandler for Shaped {
    fn get_info(&self) -> ClientConfig {
        client_config(
            ProtocolVersion::V_2025_11_25,
            ClientCapabilities::builder().enable_elicitation().build(),
        )
    }

    async fn create_elicitation(
        &self,
        _request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        *self.asked.lock().unwrap() += 1;
        Ok(self.answer.clone())
    }
}

fn shaped(action: ElicitationAction, content: Option<Value>) -> ElicitResult {
    let r = ElicitResult::new(action);
    match content {
        Some(c) => r.with_content(c),
        None => r,
    }
}

/// Elicitation (2025): only `accept` with `approve: true` (a JSON boolean)
/// is a yes. Every other shape is a denial and writes nothing; extra fields
/// beside a genuine yes cannot change what runs.
#[tokio::test]
async fn elicitation_answers_of_unexpected_shape_are_denials() {
    use ElicitationAction::{Accept, Cancel, Decline};
    let env = TestEnv::strict();
    let core = env.core();
    let cases = vec![
        shaped(Accept, None),
        shaped(Accept, Some(json!({}))),
        shaped(Accept, Some(json!({"approve": "yes"}))),
        shaped(Accept, Some(json!({"approve": "true"}))),
        shaped(Accept, Some(json!({"approve": 1}))),
        shaped(Accept, Some(json!({"approve": null}))),
        shaped(Accept, Some(json!({"approve": [true]}))),
        shaped(Accept, Some(json!({"approve": {"value": true}}))),
        shaped(Accept, Some(json!({"Approve": true}))),
        shaped(Accept, Some(json!({"approved": true}))),
        shaped(Accept, Some(json!({"approve": false}))),
        shaped(
            Accept,
            Some(json!({"approve": false, "force": true, "override": "yes"})),
        ),
        shaped(Accept, Some(json!([true]))),
        shaped(Accept, Some(json!(true))),
        shaped(Accept, Some(json!("approve"))),
        shaped(Decline, Some(json!({"approve": true}))),
        shaped(Cancel, Some(json!({"approve": true}))),
    ];
    let n = cases.len();
    for answer in cases {
        let human = Shaped {
            answer: answer.clone(),
            asked: Arc::default(),
        };
        let client = connect(&core, human.clone()).await;
        let r = call(
            &client,
            "filesystem_write",
            json!({"path": "out.txt", "content": "approved text"}),
        )
        .await;
        assert_eq!(*human.asked.lock().unwrap(), 1);
        assert_tool_error(&r, "denied");
        assert!(!env.path("out.txt").exists(), "{answer:?} wrote the file");
        assert_eq!(env.audit_lines().pop().unwrap()["decision"], "denied", "{answer:?}");
        client.cancel().await.unwrap();
    }
    assert_eq!(env.audit_lines().len(), n);

    // A yes with extra fields trying to steer the call: only the asked-for
    // call runs, with its own arguments.
    let human = Shaped {
        answer: shaped(
            Accept,
            Some(json!({"approve": true, "path": "evil.txt", "content": "pwned", "approval_id": "x"})),
        ),
        asked: Arc::default(),
    };
    let client = connect(&core, human).await;
    let r = call(
        &client,
        "filesystem_write",
        json!({"path": "out.txt", "content": "approved text"}),
    )
    .await;
    if is_error(&r) {
        assert_tool_error(&r, "denied");
        assert!(!env.path("out.txt").exists());
    } else {
        assert_eq!(env.read("out.txt"), "approved text");
    }
    assert!(!env.path("evil.txt").exists());
}

/// A 2026-07-28 client driving input_required rounds by hand.
#[derive(Clone)]
struct Modern {
    name: &'static str,
}

impl ClientHandler for Modern {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_elicitation().build(),
            rmcp::model::Implementation::new(self.name, "0"),
        )
        .with_protocol_version(ProtocolVersion::V_2026_07_28)
    }
}

async fn modern(core: &execlayer::server::Core, name: &'static str) -> Client<Modern> {
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let core = core.clone();
    tokio::spawn(async move {
        let (r, w) = tokio::io::split(server_io);
        let _ = execlayer::server::serve_stream(&core, execlayer::audit::Door::Stdio, r, w).await;
    });
    Modern { name }
        .serve_with_lifecycle(
            client_io,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .unwrap()
}

fn call_params(tool: &str, args: &Value) -> CallToolRequestParams {
    CallToolRequestParams::new(tool.to_owned()).with_arguments(args.as_object().unwrap().clone())
}

async fn first_round(client: &Client<Modern>, tool: &str, args: &Value) -> String {
    match client.call_tool_once(call_params(tool, args)).await.unwrap() {
        CallToolResponse::InputRequired(required) => required.request_state.expect("requestState"),
        other => panic!("expected input_required, got {other:?}"),
    }
}

async fn retry(
    client: &Client<Modern>,
    tool: &str,
    args: &Value,
    state: String,
    responses: InputResponses,
) -> rmcp::model::CallToolResult {
    let params = call_params(tool, args)
        .with_input_responses(responses)
        .with_request_state(state);
    match client.call_tool_once(params).await.unwrap() {
        CallToolResponse::Complete(r) => r,
        other => panic!("expected a complete result, got {other:?}"),
    }
}

fn responses(key: &str, value: Value) -> InputResponses {
    let mut r = InputResponses::new();
    r.insert(key.into(), value);
    r
}

fn yes() -> Value {
    json!({"action": "accept", "content": {"approve": true}})
}

/// input_required (2026-07-28): a retry with a genuine requestState but an
/// answer of the wrong shape (or under the wrong key) is a denial.
#[tokio::test]
async fn input_required_answers_of_unexpected_shape_are_denials() {
    let env = TestEnv::strict();
    let core = env.core();
    let client = modern(&core, "modern").await;
    let args = json!({"path": "out.txt", "content": "approved text"});
    let cases = vec![
        responses("approval", json!({"action": "accept"})),
        responses("approval", json!({"action": "accept", "content": {"approve": "yes"}})),
        responses("approval", json!({"action": "accept", "content": {"approve": 1}})),
        responses("approval", json!({"action": "accept", "content": {"approve": "true"}})),
        responses("approval", json!({"action": "accept", "content": true})),
        responses(
            "approval",
            json!({"action": "accept", "content": {"approve": false, "force": true}}),
        ),
        responses("approval", json!({"action": "ACCEPT", "content": {"approve": true}})),
        responses("approval", json!({"action": "decline", "content": {"approve": true}})),
        responses("approval", json!({"content": {"approve": true}})),
        responses("approval", json!("yes")),
        responses("approval", json!(true)),
        responses("approval", json!([yes()])),
        responses("approve", yes()),
        responses("Approval", yes()),
        InputResponses::new(),
    ];
    for case in cases {
        let state = first_round(&client, "filesystem_write", &args).await;
        let r = retry(&client, "filesystem_write", &args, state, case.clone()).await;
        assert_tool_error(&r, "denied");
        assert!(!env.path("out.txt").exists(), "{case:?} wrote the file");
    }
    // The genuine answer works (the denials above were the answers' doing).
    let state = first_round(&client, "filesystem_write", &args).await;
    let r = retry(&client, "filesystem_write", &args, state, responses("approval", yes())).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(env.read("out.txt"), "approved text");
}

/// A requestState sealed for a filesystem_write cannot approve another tool
/// (apply_patch, run_playbook) nor the same call from another client.
#[tokio::test]
async fn a_request_state_cannot_be_replayed_for_another_tool_or_client() {
    let env = TestEnv::strict();
    let core = env.core();
    let client = modern(&core, "modern").await;
    let other = modern(&core, "someone-else").await;
    let args = json!({"path": "out.txt", "content": "one"});
    let state = first_round(&client, "filesystem_write", &args).await;

    let patch = json!({"patch": "--- /dev/null\n+++ b/out.txt\n@@ -0,0 +1 @@\n+pwned\n"});
    let r = retry(
        &client,
        "apply_patch",
        &patch,
        state.clone(),
        responses("approval", yes()),
    )
    .await;
    assert_tool_error(&r, "requestState is invalid");
    let book = json!({"steps": [{"tool": "filesystem_write", "args": args}]});
    let r = retry(
        &client,
        "run_playbook",
        &book,
        state.clone(),
        responses("approval", yes()),
    )
    .await;
    assert_tool_error(&r, "requestState is invalid");
    let r = retry(
        &other,
        "filesystem_write",
        &args,
        state.clone(),
        responses("approval", yes()),
    )
    .await;
    assert_tool_error(&r, "requestState is invalid");
    assert!(!env.path("out.txt").exists());
    // A state from apply_patch's own first round cannot approve filesystem_write either.
    let patch_state = first_round(&client, "apply_patch", &patch).await;
    let r = retry(
        &client,
        "filesystem_write",
        &args,
        patch_state,
        responses("approval", yes()),
    )
    .await;
    assert_tool_error(&r, "requestState is invalid");
    assert!(!env.path("out.txt").exists());
    let denied = env.audit_lines().iter().filter(|l| l["decision"] == "denied").count();
    assert_eq!(denied, 4);
}

// ---------------------------------------------------------------------------
// Crash safety: SIGKILL during filesystem_write and apply_patch.
// ---------------------------------------------------------------------------

/// A small deterministic generator (64-bit LCG), so a failing run can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// `lines` lines of about 64 bytes, tagged so two versions never share a line.
fn big_text(tag: &str, lines: usize) -> String {
    (0..lines)
        .map(|i| format!("{tag} line {i:08} {}\n", "=".repeat(44)))
        .collect()
}

/// A unified diff turning `old` into `new` for files with the same number of
/// lines that differ in a few lines (one hunk per differing line, 3 lines of context).
fn same_shape_patch(path: &str, old: &str, new: &str) -> String {
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    assert_eq!(a.len(), b.len());
    let mut out = format!("--- a/{path}\n+++ b/{path}\n");
    let changed: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    for &i in &changed {
        let start = i.saturating_sub(3);
        let end = (i + 4).min(a.len());
        out.push_str(&format!(
            "@@ -{},{} +{},{} @@\n",
            start + 1,
            end - start,
            start + 1,
            end - start
        ));
        for j in start..end {
            if j == i {
                out.push_str(&format!("-{}", a[j]));
                out.push_str(&format!("+{}", b[j]));
            } else {
                out.push_str(&format!(" {}", a[j]));
            }
        }
    }
    out
}

/// Old or new, never a mix: which one a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Old,
    New,
}

fn held(path: &Path, old: &str, new: &str) -> Held {
    let now = std::fs::read(path).unwrap_or_else(|e| panic!("{} is gone: {e}", path.display()));
    if now == old.as_bytes() {
        Held::Old
    } else if now == new.as_bytes() {
        Held::New
    } else {
        panic!(
            "{} holds neither the old nor the new content ({} bytes; old {}, new {})",
            path.display(),
            now.len(),
            old.len(),
            new.len()
        );
    }
}

/// Temp files left by a kill between staging and renaming: they must be
/// named after a target (`.NAME.<id>.execlayer.tmp`), never be a target.
fn sweep_leftovers(ws: &Path, targets: &[&str]) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(ws).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if targets.contains(&name.as_str()) || name == ".git" {
            continue;
        }
        assert!(
            name.starts_with('.')
                && name.ends_with(".execlayer.tmp")
                && targets.iter().any(|t| name.starts_with(&format!(".{t}."))),
            "unexpected file in the workspace: {name}"
        );
        std::fs::remove_file(ws.join(&name)).unwrap();
        n += 1;
    }
    n
}

/// Complete lines must parse; a torn last line (no newline) is allowed.
/// Returns (complete lines, unparsable complete lines, torn tail present).
fn check_audit(path: &Path) -> (usize, usize, bool) {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut parts: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let tail = parts.pop().unwrap_or_default();
    let mut bad = 0;
    for (i, line) in parts.iter().enumerate() {
        if serde_json::from_slice::<Value>(line).is_err() {
            bad += 1;
            let next = parts.get(i + 1).copied();
            assert!(
                next.is_none_or(|n| serde_json::from_slice::<Value>(n).is_ok()),
                "the line after a torn line is broken too: {:?}",
                next.map(String::from_utf8_lossy)
            );
        }
    }
    (parts.len(), bad, !tail.is_empty())
}

/// The real binary is killed with SIGKILL at a random moment (0–30 ms after
/// the request, deterministic seed) during a 2 MiB `filesystem_write` or an
/// `apply_patch` of three 1 MiB files, again and again. Every file always
/// holds exactly its old or its new content; leftover temp files never take a
/// target's place; the audit log holds only complete lines (a torn last line
/// is closed off by the next start and never corrupts the next line).
#[tokio::test]
async fn sigkill_during_writes_and_patches_never_leaves_a_mixed_file() {
    const ITERATIONS: usize = 40;
    let env = TestEnv::new();
    let two_mib = 2 * 1024 * 1024 / 64;
    let (wa, wb) = (big_text("A", two_mib), big_text("B", two_mib));
    env.write("w.txt", &wa);
    let files = ["p0.txt", "p1.txt", "p2.txt"];
    let n = 1024 * 1024 / 64;
    let versions: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            let a = big_text(&format!("{f} old"), n);
            let mut b: Vec<String> = a.split_inclusive('\n').map(str::to_owned).collect();
            for i in [0, n / 2, n - 1] {
                b[i] = format!("{f} NEW line {i}\n");
            }
            (a, b.concat())
        })
        .collect();
    for (f, (a, _)) in files.iter().zip(&versions) {
        env.write(f, a);
    }
    let mut targets = vec!["w.txt"];
    targets.extend(files);

    // Calibrate: how long an uninterrupted call takes on this machine, so
    // the kills land before, during and after the work (at least 0–30 ms).
    let timed = |tool: &'static str, args: Value| {
        let env = &env;
        async move {
            let mut server = RawStdio::spawn(env, &[]);
            server.initialize().await;
            let t = Instant::now();
            server
                .send(&json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":tool,"arguments":args}}))
                .await;
            let r = server.recv(Duration::from_secs(30)).await;
            assert_eq!(r["result"]["isError"], false, "{r:.300}");
            let took = t.elapsed();
            server.finish().await;
            took
        }
    };
    let write_ms = timed("filesystem_write", json!({"path": "w.txt", "content": wa}))
        .await
        .as_millis() as u64;
    let patch_ms = {
        // Apply A->B then B->A, timing the first.
        let forward: String = files
            .iter()
            .zip(&versions)
            .map(|(f, (a, b))| same_shape_patch(f, a, b))
            .collect();
        let back: String = files
            .iter()
            .zip(&versions)
            .map(|(f, (a, b))| same_shape_patch(f, b, a))
            .collect();
        let t = timed("apply_patch", json!({"patch": forward})).await;
        timed("apply_patch", json!({"patch": back})).await;
        t.as_millis() as u64
    };
    let write_window = (write_ms * 3 / 2).max(30);
    let patch_window = (patch_ms * 3 / 2).max(30);

    let mut rng = Lcg(0x5eed_0fc0_ffee);
    let started = Instant::now();
    let mut write_outcomes = BTreeMap::<&str, usize>::new();
    let mut patch_outcomes = BTreeMap::<String, usize>::new();
    let (mut leftovers, mut torn_tails, mut iterations) = (0, 0, 0);
    for i in 0..ITERATIONS {
        if started.elapsed() > Duration::from_secs(25) {
            break;
        }
        iterations += 1;
        if i == ITERATIONS / 2 {
            // A torn line as a crash mid-append would leave it.
            let mut f = std::fs::OpenOptions::new().append(true).open(&env.audit).unwrap();
            std::io::Write::write_all(&mut f, b"{\"ts\":\"2026-01-01T00:00:00.000Z\",\"request_id\":\"to").unwrap();
        }
        let mut server = RawStdio::spawn(&env, &[]);
        server.initialize().await;
        let window = if i % 2 == 0 { write_window } else { patch_window };
        let delay = Duration::from_millis(rng.next() % (window + 1));
        if i % 2 == 0 {
            let before = held(&env.path("w.txt"), &wa, &wb);
            let (old, new) = if before == Held::Old { (&wa, &wb) } else { (&wb, &wa) };
            server
                .send(&json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"filesystem_write","arguments":{"path":"w.txt","content":new}}}))
                .await;
            tokio::time::sleep(delay).await;
            server.child.start_kill().unwrap();
            server.child.wait().await.unwrap();
            let after = held(&env.path("w.txt"), old, new);
            *write_outcomes
                .entry(if after == Held::Old { "old" } else { "new" })
                .or_default() += 1;
        } else {
            let mut patch = String::new();
            let mut expect = Vec::new();
            for (f, (a, b)) in files.iter().zip(&versions) {
                let (old, new) = match held(&env.path(f), a, b) {
                    Held::Old => (a, b),
                    Held::New => (b, a),
                };
                patch.push_str(&same_shape_patch(f, old, new));
                expect.push((f, old, new));
            }
            server
                .send(&json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"apply_patch","arguments":{"patch":patch}}}))
                .await;
            tokio::time::sleep(delay).await;
            server.child.start_kill().unwrap();
            server.child.wait().await.unwrap();
            let states: Vec<Held> = expect
                .iter()
                .map(|(f, old, new)| held(&env.path(f), old, new))
                .collect();
            let key = if states.iter().all(|s| *s == Held::Old) {
                "all old".to_owned()
            } else if states.iter().all(|s| *s == Held::New) {
                "all new".to_owned()
            } else {
                format!("MIXED {states:?}")
            };
            *patch_outcomes.entry(key).or_default() += 1;
        }
        leftovers += sweep_leftovers(&env.ws, &targets);
        let (_, _, torn) = check_audit(&env.audit);
        torn_tails += usize::from(torn);
    }

    // A clean run after all the kills: the next line appended is intact.
    let mut server = RawStdio::spawn(&env, &[]);
    server.initialize().await;
    server
        .send(&json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"filesystem_list","arguments":{}}}))
        .await;
    let r = server.recv(Duration::from_secs(20)).await;
    assert_eq!(r["id"], 3);
    assert_eq!(r["result"]["isError"], false, "{r:.300}");
    server.finish().await;
    let (complete, broken, torn) = check_audit(&env.audit);
    assert!(!torn, "the log ends with a newline after a clean run");
    assert!(broken >= 1, "the injected torn line was closed off as its own line");
    let records = execlayer::audit::read_all(&env.audit).unwrap();
    assert_eq!(
        records.len(),
        complete - broken,
        "readers skip torn lines and only them"
    );
    assert_eq!(records.last().unwrap().tool, "filesystem_list");
    let newest = execlayer::audit::read_tail(&env.audit, 1, |_| true).unwrap();
    assert_eq!(newest[0].tool, "filesystem_list");
    assert_eq!(sweep_leftovers(&env.ws, &targets), 0);

    let mixed: usize = patch_outcomes
        .iter()
        .filter(|(k, _)| k.starts_with("MIXED"))
        .map(|(_, v)| v)
        .sum();
    eprintln!(
        "crash safety: uninterrupted write {write_ms} ms, patch {patch_ms} ms; {iterations} kills in {:?}; write outcomes {write_outcomes:?}; patch outcomes {patch_outcomes:?} \
         ({mixed} mixed across files); {leftovers} leftover temp files; {torn_tails} torn audit tails seen; \
         audit: {complete} lines, {broken} torn (closed off), {} records",
        started.elapsed(),
        records.len()
    );
    assert!(iterations >= 20, "only {iterations} iterations in time");
}

// ---------------------------------------------------------------------------
// A full disk and a read-only workspace (root only: they need mount).
// ---------------------------------------------------------------------------

/// Every file in a directory (not descending), with its bytes.
fn files_in(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// A patch appending `added` lines after the last line of `old`.
fn append_patch(path: &str, old: &str, added: &[String]) -> String {
    let lines: Vec<&str> = old.lines().collect();
    let n = lines.len();
    let mut p = format!(
        "--- a/{path}\n+++ b/{path}\n@@ -{n},1 +{n},{} @@\n {}\n",
        added.len() + 1,
        lines[n - 1]
    );
    for l in added {
        p.push_str(&format!("+{l}\n"));
    }
    p
}

/// A 1 MiB tmpfs as the workspace: a 2 MiB write and a patch that would
/// outgrow the disk fail with a clear error naming the file, change nothing,
/// leave no temp file behind and give the space back.
#[tokio::test]
async fn a_full_disk_gives_a_clear_error_and_loses_nothing() {
    const TEST: &str = "a_full_disk_gives_a_clear_error_and_loses_nothing";
    if !root_can_run(TEST, not_root()) {
        return;
    }
    let env = TestEnv::new();
    let _mount = match Mounted::tmpfs(&env.ws, "1m") {
        Ok(m) => m,
        Err(e) => {
            root_can_run(TEST, Some(format!("cannot mount a tmpfs: {e}")));
            return;
        }
    };
    let line = |tag: &str, i: usize| format!("{tag} {i:06} {}", "-".repeat(52));
    let keep: String = (0..1_600).map(|i| line("keep", i) + "\n").collect(); // ~100 KiB
    let a: String = (0..3_200).map(|i| line("a", i) + "\n").collect(); // ~200 KiB
    let b: String = (0..3_200).map(|i| line("b", i) + "\n").collect();
    env.write("keep.txt", &keep);
    env.write("a.txt", &a);
    env.write("b.txt", &b);
    let before = files_in(&env.ws);
    let client = env.client().await;

    let two_mib = "z".repeat(2 * 1024 * 1024);
    let r = call(
        &client,
        "filesystem_write",
        json!({"path": "keep.txt", "content": two_mib}),
    )
    .await;
    assert_tool_error(&r, "keep.txt");
    assert!(text(&r).contains("unchanged"), "{}", text(&r));
    assert!(text(&r).contains("No space left"), "{}", text(&r));
    let r = call(
        &client,
        "filesystem_write",
        json!({"path": "new.txt", "content": two_mib}),
    )
    .await;
    assert_tool_error(&r, "new.txt");
    assert_eq!(files_in(&env.ws), before, "a failed write changed the workspace");

    // a.txt grows by ~100 KiB (fits), b.txt by ~800 KiB (does not).
    let grow_a: Vec<String> = (0..1_600).map(|i| line("a+", i)).collect();
    let grow_b: Vec<String> = (0..12_800).map(|i| line("b+", i)).collect();
    let patch = format!(
        "{}{}",
        append_patch("a.txt", &a, &grow_a),
        append_patch("b.txt", &b, &grow_b)
    );
    let r = call(&client, "apply_patch", json!({"patch": patch.clone(), "dry_run": true})).await;
    assert!(!is_error(&r), "the patch itself is fine: {}", text(&r));
    let r = call(&client, "apply_patch", json!({"patch": patch})).await;
    assert_tool_error(&r, "b.txt");
    assert!(text(&r).contains("no file was changed"), "{}", text(&r));
    assert_eq!(files_in(&env.ws), before, "a failed patch changed the workspace");

    // The space came back: a write that fits now succeeds.
    let r = call(
        &client,
        "filesystem_write",
        json!({"path": "fits.txt", "content": "y".repeat(400 * 1024)}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    let outcomes: Vec<String> = env
        .audit_lines()
        .iter()
        .map(|l| l["outcome"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(outcomes, ["error", "error", "ok", "error", "ok"]);
}

/// A read-only workspace: writes and patches fail clearly, reads still work,
/// nothing changes.
#[tokio::test]
async fn a_read_only_workspace_gives_clear_errors_and_changes_nothing() {
    const TEST: &str = "a_read_only_workspace_gives_clear_errors_and_changes_nothing";
    if !root_can_run(TEST, not_root()) {
        return;
    }
    let env = TestEnv::new();
    env.write("a.txt", "one\n");
    env.write("b.txt", "two\n");
    let _mount = match Mounted::read_only(&env.ws) {
        Ok(m) => m,
        Err(e) => {
            root_can_run(TEST, Some(format!("cannot bind-mount read-only: {e}")));
            return;
        }
    };
    assert!(
        std::fs::write(env.path("probe"), "x").is_err(),
        "the bind mount is not read-only"
    );
    let before = files_in(&env.ws);
    let client = env.client().await;
    let r = call(
        &client,
        "filesystem_write",
        json!({"path": "a.txt", "content": "changed\n"}),
    )
    .await;
    assert_tool_error(&r, "a.txt");
    assert!(
        text(&r).contains("unchanged") && text(&r).contains("Read-only"),
        "{}",
        text(&r)
    );
    let r = call(&client, "filesystem_write", json!({"path": "new.txt", "content": "x"})).await;
    assert_tool_error(&r, "new.txt");
    let patch = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-one\n+uno\n--- a/b.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-two\n";
    let r = call(&client, "apply_patch", json!({"patch": patch})).await;
    assert_tool_error(&r, "no file was changed");
    assert!(text(&r).contains("Read-only"), "{}", text(&r));
    let r = call(&client, "filesystem_read", json!({"path": "a.txt"})).await;
    assert_eq!(text(&r), "one\n");
    assert_eq!(files_in(&env.ws), before);
}

// ---------------------------------------------------------------------------
// Property tests of the patch engine (plan + commit, as apply_patch runs them).
// ---------------------------------------------------------------------------

/// Found by the property test below (with more cases than it runs by
/// default): `git diff -U0` output, applied to the very file it was made
/// from, must give the new file (what `git apply --unidiff-zero` does) or be
/// refused; never silently delete a different line.
#[tokio::test]
async fn a_zero_context_patch_changes_the_lines_it_names_or_is_refused() {
    let env = TestEnv::new();
    env.write("f.txt", "}\nx\n}\n");
    let client = env.client().await;
    // `git diff --no-index -U0` of "}\nx\n}\n" -> "\n}\nx\n": insert a blank
    // first line, delete the last "}" (the new range `+3,0` is empty: "after line 3").
    let patch = "--- a/f.txt\n+++ b/f.txt\n@@ -0,0 +1 @@\n+\n@@ -3 +3,0 @@ x\n-}\n";
    let r = call(&client, "apply_patch", json!({"patch": patch})).await;
    let now = env.read("f.txt");
    if is_error(&r) {
        assert_eq!(now, "}\nx\n}\n", "a refused patch changed the file");
    } else {
        assert_eq!(
            now,
            "\n}\nx\n",
            "apply_patch reported success but deleted the wrong line: {}",
            text(&r)
        );
    }
}

mod property {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::process::Command;

    use execlayer::workspace::Workspace;
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;

    /// Lines chosen to trouble a diff parser: repeats, blanks, lines that look
    /// like diff syntax once prefixed, tabs, non-ASCII.
    const VOCAB: &[&str] = &[
        "",
        "a",
        "b",
        "a b",
        "fn x() {",
        "}",
        "    return 1;",
        "\tTab",
        "ü ñ 漢字",
        "x",
        "-- minus",
        "++ plus",
        "--- a/f.txt",
        "+++ b/f.txt",
        "@@ -1 +1 @@",
        "\\ No newline at end of file",
        " space",
        "diff --git a/x b/x",
    ];

    #[derive(Debug, Clone)]
    enum Edit {
        Insert(usize, usize),
        Delete(usize),
        Replace(usize, usize),
    }

    fn text_of(lines: &[String], final_newline: bool) -> String {
        let mut t = lines.join("\n");
        if final_newline && !lines.is_empty() {
            t.push('\n');
        }
        t
    }

    fn lines() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(prop::sample::select(VOCAB).prop_map(str::to_owned), 0..30)
    }

    fn edits() -> impl Strategy<Value = Vec<Edit>> {
        prop::collection::vec(
            prop_oneof![
                (any::<usize>(), 0..VOCAB.len()).prop_map(|(p, l)| Edit::Insert(p, l)),
                any::<usize>().prop_map(Edit::Delete),
                (any::<usize>(), 0..VOCAB.len()).prop_map(|(p, l)| Edit::Replace(p, l)),
            ],
            1..6,
        )
    }

    fn edited(old: &[String], edits: &[Edit]) -> Vec<String> {
        let mut new = old.to_vec();
        for e in edits {
            match *e {
                Edit::Insert(p, l) => new.insert(p % (new.len() + 1), VOCAB[l].to_owned()),
                Edit::Delete(p) if !new.is_empty() => {
                    new.remove(p % new.len());
                }
                Edit::Replace(p, l) if !new.is_empty() => {
                    let i = p % new.len();
                    new[i] = VOCAB[l].to_owned();
                }
                _ => {}
            }
        }
        new
    }

    /// `git diff --no-index` between two temp files, relabelled as a change of `name`.
    fn git_diff(scratch: &Path, old: &str, new: &str, context: u32, name: &str) -> String {
        std::fs::write(scratch.join("old"), old).unwrap();
        std::fs::write(scratch.join("new"), new).unwrap();
        let out = Command::new("git")
            .args([
                "-c",
                "core.quotepath=false",
                "-c",
                "diff.noprefix=false",
                "diff",
                "--no-index",
            ])
            .args([
                "--no-color",
                "--no-ext-diff",
                "--no-renames",
                &format!("-U{context}"),
                "old",
                "new",
            ])
            .current_dir(scratch)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("HOME", scratch)
            .output()
            .expect("git runs");
        assert!(
            out.status.code() == Some(1) || out.status.code() == Some(0),
            "git diff: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let diff = String::from_utf8(out.stdout).unwrap();
        let mut relabelled = String::new();
        let mut in_header = true;
        for line in diff.split_inclusive('\n') {
            if line.starts_with("@@ ") {
                in_header = false;
            }
            let line = if in_header {
                match line.trim_end_matches('\n') {
                    "diff --git a/old b/new" => format!("diff --git a/{name} b/{name}\n"),
                    "--- a/old" => format!("--- a/{name}\n"),
                    "+++ b/new" => format!("+++ b/{name}\n"),
                    _ => line.to_owned(),
                }
            } else {
                line.to_owned()
            };
            relabelled.push_str(&line);
        }
        relabelled
    }

    /// The reverse of a unified diff: hunk ranges swapped, `-` and `+` lines swapped.
    fn reverse(patch: &str) -> String {
        let mut out = String::new();
        let mut in_hunk = false;
        for line in patch.split_inclusive('\n') {
            if let Some(rest) = line.strip_prefix("@@ -") {
                let (old, rest) = rest.split_once(" +").unwrap();
                let (new, tail) = rest.split_once(" @@").unwrap();
                out.push_str(&format!("@@ -{new} +{old} @@{tail}"));
                in_hunk = true;
            } else if line.starts_with("diff --git ") {
                in_hunk = false;
                out.push_str(line);
            } else if !in_hunk && line.starts_with("index ") {
                // The blob ids would be the wrong way round; they are optional.
            } else if in_hunk && line.starts_with('-') {
                out.push('+');
                out.push_str(&line[1..]);
            } else if in_hunk && line.starts_with('+') {
                out.push('-');
                out.push_str(&line[1..]);
            } else {
                out.push_str(line);
            }
        }
        out
    }

    /// Every file under `dir` (dotfiles included), with its bytes.
    fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                for (k, v) in tree(&entry.path()) {
                    out.insert(format!("{name}/{k}"), v);
                }
            } else {
                out.insert(name, std::fs::read(entry.path()).unwrap());
            }
        }
        out
    }

    fn apply(ws: &Workspace, patch: &str) -> Result<(), String> {
        execlayer::patch::plan(ws, patch)?.commit(|_, _| {})
    }

    fn config(seed: u64) -> ProptestConfig {
        ProptestConfig {
            cases: 64,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(seed),
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config(0x00c0_ffee_1234))]

        /// Applying a patch and then its reverse restores the file byte for byte.
        #[test]
        fn a_patch_then_its_reverse_restores_the_file(
            old_lines in lines(),
            old_nl in any::<bool>(),
            edits in edits(),
            new_nl in any::<bool>(),
            context in 0u32..4,
        ) {
            let old = text_of(&old_lines, old_nl);
            let new = text_of(&edited(&old_lines, &edits), new_nl);
            prop_assume!(old != new);
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().canonicalize().unwrap();
            std::fs::create_dir_all(root.join("ws")).unwrap();
            std::fs::create_dir_all(root.join("scratch")).unwrap();
            let patch = git_diff(&root.join("scratch"), &old, &new, context, "f.txt");
            let ws = Workspace::new(&root.join("ws")).unwrap();
            std::fs::write(root.join("ws/f.txt"), &old).unwrap();

            apply(&ws, &patch).map_err(|e| TestCaseError::fail(format!("forward: {e}\n{patch}")))?;
            let now = std::fs::read_to_string(root.join("ws/f.txt")).unwrap();
            prop_assert_eq!(&now, &new, "forward patch:\n{}", patch);
            let back = reverse(&patch);
            apply(&ws, &back).map_err(|e| TestCaseError::fail(format!("reverse: {e}\n{back}")))?;
            let now = std::fs::read_to_string(root.join("ws/f.txt")).unwrap();
            prop_assert_eq!(&now, &old, "reverse patch:\n{}", back);
            prop_assert_eq!(tree(&root.join("ws")).len(), 1, "temp files left behind");
        }
    }

    proptest! {
        #![proptest_config(config(0x0bad_f00d_5678))]

        /// A multi-file patch whose last file cannot be applied (its content
        /// changed, it is gone, it points outside, it already exists for a
        /// create, or its hunk is malformed) changes no byte of any file. The
        /// same patch without the fault applies to every file.
        #[test]
        fn a_multi_file_patch_failing_on_its_last_file_changes_nothing(
            files in prop::collection::vec((lines(), any::<bool>(), edits()), 2..5),
            fault in 0usize..5,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().canonicalize().unwrap();
            for d in ["ws", "control", "scratch"] {
                std::fs::create_dir_all(root.join(d)).unwrap();
            }
            let last = files.len() - 1;
            let mut sections = Vec::new();
            for (i, (old_lines, nl, edits)) in files.iter().enumerate() {
                let mut old_lines = old_lines.clone();
                if text_of(&old_lines, *nl).is_empty() {
                    // A file with content: an empty file takes any insertion.
                    old_lines.push(format!("line of f{i}"));
                }
                let old = text_of(&old_lines, *nl);
                let mut new = text_of(&edited(&old_lines, edits), *nl);
                if new == old {
                    new.push_str("changed\n");
                }
                let name = format!("f{i}.txt");
                for d in ["ws", "control"] {
                    std::fs::write(root.join(d).join(&name), &old).unwrap();
                }
                sections.push((name.clone(), old.clone(), new.clone(), git_diff(&root.join("scratch"), &old, &new, 3, &name)));
            }
            let good: String = sections.iter().map(|s| s.3.clone()).collect();
            let control = Workspace::new(&root.join("control")).unwrap();
            apply(&control, &good).map_err(|e| TestCaseError::fail(format!("control: {e}\n{good}")))?;
            for (name, _, new, _) in &sections {
                prop_assert_eq!(&std::fs::read_to_string(root.join("control").join(name)).unwrap(), new);
            }

            let (name, old, _, last_diff) = sections[last].clone();
            let mut broken: String = sections[..last].iter().map(|s| s.3.clone()).collect();
            match fault {
                0 => {
                    let other: String = old.lines().enumerate().map(|(k, _)| format!("zzz {k}\n")).collect();
                    std::fs::write(root.join("ws").join(&name), other).unwrap();
                    broken.push_str(&last_diff);
                }
                1 => {
                    std::fs::remove_file(root.join("ws").join(&name)).unwrap();
                    broken.push_str(&last_diff);
                }
                2 => {
                    std::fs::write(root.join("outside.txt"), &old).unwrap();
                    broken.push_str(
                        &last_diff
                            .replace(&format!("a/{name}"), "a/../outside.txt")
                            .replace(&format!("b/{name}"), "b/../outside.txt"),
                    );
                }
                3 => broken.push_str(&format!(
                    "diff --git a/{name} b/{name}\nnew file mode 100644\n--- /dev/null\n+++ b/{name}\n@@ -0,0 +1 @@\n+created\n"
                )),
                _ => {
                    let mut hunks = false;
                    for line in last_diff.split_inclusive('\n') {
                        if line.starts_with("@@ ") && !hunks {
                            // Header counts are recounted, so a miscount is no
                            // fault; a removed line the file lacks is.
                            hunks = true;
                            broken.push_str(line);
                            broken.push_str("-a line that is in no file\n");
                        } else {
                            broken.push_str(line);
                        }
                    }
                }
            }
            let ws = Workspace::new(&root.join("ws")).unwrap();
            let before = tree(&root);
            let result = apply(&ws, &broken);
            prop_assert!(result.is_err(), "fault {} applied:\n{}", fault, broken);
            let after = tree(&root);
            prop_assert!(before == after, "fault {}: {:?} changed files", fault, result);
        }
    }
}
