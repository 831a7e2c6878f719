//! The HTTP door against a real server on a loopback port: the token, Host and
//! Origin checks, the seed's REST shapes, Streamable HTTP and legacy SSE clients.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rmcp::ServiceExt;
use rmcp::model::{ClientCapabilities, ProtocolVersion};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use crate::common::*;

const TOKEN: &str = "test-token-0123456789";

fn with_token(mut env: TestEnv) -> TestEnv {
    env.set_var("EXECUTION_TOKEN", TOKEN);
    env
}

#[tokio::test]
async fn the_token_is_required_on_every_route_but_healthz() {
    let env = with_token(TestEnv::new());
    let server = env.http().await;
    let http = http_client();
    let tools = server.url("/api/v1/execution/tools");

    let r = http.get(&tools).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized");
    assert_eq!(
        http.get(&tools)
            .header("X-Execution-Token", TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(http.get(&tools).bearer_auth(TOKEN).send().await.unwrap().status(), 200);
    assert_eq!(
        http.get(&tools)
            .header("X-Execution-Token", "wrong-token-000")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let in_url = format!("{tools}?token={TOKEN}");
    assert_eq!(
        http.get(&in_url).send().await.unwrap().status(),
        401,
        "a token in the URL is refused"
    );
    assert_eq!(http.get(server.url("/healthz")).send().await.unwrap().status(), 200);

    for (method, path) in [
        ("POST", "/api/v1/execution/run"),
        ("GET", "/api/v1/execution/approvals"),
        ("GET", "/api/v1/execution/audit"),
        ("GET", "/api/v1/execution/config"),
        ("GET", "/sse"),
        ("POST", "/messages?sessionId=x"),
    ] {
        let r = http
            .request(method.parse().unwrap(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
    }
    // An MCP initialize without the token.
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}});
    let r = http
        .post(server.url("/mcp"))
        .header("Accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The token never reaches the audit log or the logs' argument previews.
    let audit = std::fs::read_to_string(&env.audit).unwrap_or_default();
    assert!(!audit.contains(TOKEN));
}

#[tokio::test]
async fn foreign_hosts_and_origins_are_refused_and_big_bodies_get_413() {
    let env = TestEnv::new();
    let server = env
        .http_with(execlayer::http::HttpOptions {
            max_body_bytes: 64 * 1024,
            ..Default::default()
        })
        .await;
    let http = http_client();
    let tools = server.url("/api/v1/execution/tools");
    let r = http
        .get(&tools)
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "forbidden origin");
    let r = http.get(&tools).header("Host", "evil.example").send().await.unwrap();
    assert_eq!(r.status(), 403);
    let own = format!("http://{}", server.addr);
    assert_eq!(
        http.get(&tools).header("Origin", own).send().await.unwrap().status(),
        200
    );

    let big = "x".repeat(100 * 1024);
    let r = http
        .post(server.url("/api/v1/execution/run"))
        .json(&json!({"tool_name": "filesystem_write", "args": {"path": "big.txt", "content": big}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(!env.path("big.txt").exists());
}

async fn run(server: &HttpServer, body: Value) -> (u16, Value) {
    let r = http_client()
        .post(server.url("/api/v1/execution/run"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_seed_approval_flow_over_rest() {
    let env = TestEnv::strict();
    env.init_repo(&[("a.txt", "one\n")]);
    let server = env.http().await;
    let patch = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-one\n+two\n";
    let body = |id: Option<&str>| json!({"tool_name": "apply_patch", "args": {"patch": patch}, "approval_id": id});

    let (status, refused) = run(&server, body(None)).await;
    assert_eq!(status, 403);
    assert_eq!(refused["error"], "approval required");
    assert!(refused["pending_id"].is_string());
    assert_eq!(env.read("a.txt"), "one\n");

    let grant: Value = server
        .post_json("/api/v1/execution/approve?tool_name=apply_patch")
        .await;
    let id = grant["approval_id"].as_str().unwrap().to_owned();
    assert!(grant["expires_at"].as_f64().unwrap() > 0.0);

    let (status, ran) = run(&server, body(Some(&id))).await;
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["is_error"], false);
    assert_eq!(ran["result"]["applied"], true);
    assert_eq!(env.read("a.txt"), "two\n");
    // Reusing the id for a patch that would apply: refused, and nothing changes.
    let again = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-two\n+three\n";
    let (status, _) = run(
        &server,
        json!({"tool_name": "apply_patch", "args": {"patch": again}, "approval_id": id}),
    )
    .await;
    assert_eq!(status, 403, "an id works once");
    assert_eq!(env.read("a.txt"), "two\n");

    let other: Value = server.post_json("/api/v1/execution/approve?tool_name=shell_exec").await;
    let (status, _) = run(
        &server,
        json!({"tool_name": "apply_patch", "args": {"patch": again}, "approval_id": other["approval_id"]}),
    )
    .await;
    assert_eq!(status, 403, "an id for another tool");

    server
        .core
        .engine
        .policy
        .update(|p| {
            p.approval_ttl_seconds = 1;
            Ok(())
        })
        .unwrap();
    let short: Value = server
        .post_json("/api/v1/execution/approve?tool_name=apply_patch")
        .await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (status, _) = run(
        &server,
        json!({"tool_name": "apply_patch", "args": {"patch": again}, "approval_id": short["approval_id"]}),
    )
    .await;
    assert_eq!(status, 403, "an expired id");
    assert_eq!(env.read("a.txt"), "two\n");

    // A dry run needs no approval, changes nothing and is audited.
    let dry = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-two\n+three\n";
    let (status, ran) = run(
        &server,
        json!({"tool_name": "apply_patch", "args": {"patch": dry, "dry_run": true}}),
    )
    .await;
    assert_eq!((status, &ran["result"]["dry_run"]), (200, &json!(true)));
    assert_eq!(env.read("a.txt"), "two\n");
    let audit: Value = server
        .get_json("/api/v1/execution/audit?limit=1&tool=apply_patch")
        .await;
    assert_eq!(audit["entries"][0]["dry_run"], true);

    // Unknown tool, bad arguments.
    assert_eq!(run(&server, json!({"tool_name": "nope"})).await.0, 404);
    assert_eq!(
        run(&server, json!({"tool_name": "filesystem_read", "args": {"path": 1}}))
            .await
            .0,
        422
    );
}

#[tokio::test]
async fn operators_approve_and_deny_pending_calls_over_rest_and_the_cli() {
    let env = TestEnv::strict();
    let server = env.http().await;
    let http = http_client();
    let args = json!({"path": "x.txt", "content": "x"});
    let (status, refused) = run(&server, json!({"tool_name": "filesystem_write", "args": args})).await;
    assert_eq!(status, 403);
    let pending_id = refused["pending_id"].as_str().unwrap().to_owned();
    let list: Value = server.get_json("/api/v1/execution/approvals").await;
    assert_eq!(list["pending"][0]["id"], pending_id.as_str());
    assert!(list["pending"][0]["preview"].as_str().unwrap().contains("x.txt"));

    // The CLI, as an operator would use it.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_execlayer"))
        .args(["approve", &pending_id, "--url", &server.url("")])
        .env_remove("EXECUTION_TOKEN")
        .current_dir(env.dir.path())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, ran) = run(
        &server,
        json!({"tool_name": "filesystem_write", "args": args, "approval_id": pending_id}),
    )
    .await;
    assert_eq!(status, 200, "{ran}");
    assert_eq!(env.read("x.txt"), "x");

    let args2 = json!({"path": "y.txt", "content": "y"});
    let (_, refused) = run(&server, json!({"tool_name": "filesystem_write", "args": args2})).await;
    let id2 = refused["pending_id"].as_str().unwrap().to_owned();
    let r = http
        .post(server.url(&format!("/api/v1/execution/approvals/{id2}/deny")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, denied) = run(
        &server,
        json!({"tool_name": "filesystem_write", "args": args2, "approval_id": id2}),
    )
    .await;
    assert_eq!(status, 403);
    assert!(denied["detail"].as_str().unwrap().contains("denied"), "{denied}");
    assert!(!env.path("y.txt").exists());
    let r = http
        .post(server.url("/api/v1/execution/approvals/nope/approve"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

fn mcp_transport(server: &HttpServer, token: Option<&str>) -> StreamableHttpClientTransport<reqwest::Client> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(server.url("/mcp"));
    if let Some(token) = token {
        let mut headers = HashMap::new();
        headers.insert(
            http::HeaderName::from_static("x-execution-token"),
            http::HeaderValue::from_str(token).unwrap(),
        );
        config = config.custom_headers(headers);
    }
    StreamableHttpClientTransport::with_client(http_client(), config)
}

#[tokio::test]
async fn streamable_http_clients_list_call_and_hear_rest_toggles() {
    let env = with_token(TestEnv::new());
    env.write("a.txt", "over http\n");
    let server = env.http().await;
    let watcher = Watcher::new(ProtocolVersion::V_2025_11_25);
    let client = watcher
        .clone()
        .serve(mcp_transport(&server, Some(TOKEN)))
        .await
        .unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 12);
    let r = call(&client, "filesystem_read", json!({"path": "a.txt"})).await;
    assert_eq!(text(&r), "over http\n");

    let r = http_client()
        .post(server.url("/api/v1/execution/tools/shell_exec/enabled"))
        .header("X-Execution-Token", TOKEN)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::timeout(Duration::from_secs(5), watcher.changed.notified())
        .await
        .expect("tools/list_changed");
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(!names.iter().any(|n| n == "shell_exec"), "{names:?}");
    let r = http_client()
        .post(server.url("/api/v1/execution/run"))
        .header("X-Execution-Token", TOKEN)
        .json(&json!({"tool_name": "shell_exec", "args": {"command": "ls"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "tool disabled");
    // Persisted: a new engine on the same policy file agrees.
    assert!(!env.engine().policy.current().enabled("shell_exec"));

    // A 2026-07-28 client over HTTP: no session, per-request metadata.
    let modern = rmcp::ClientServiceExt::serve_with_lifecycle(
        client_config(ProtocolVersion::V_2026_07_28, ClientCapabilities::default()),
        mcp_transport(&server, Some(TOKEN)),
        rmcp::ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .unwrap();
    let r = call(&modern, "filesystem_read", json!({"path": "a.txt"})).await;
    assert_eq!(text(&r), "over http\n");
}

/// A minimal legacy HTTP+SSE client: GET /sse, POST to the announced endpoint.
struct LegacyClient {
    base: String,
    endpoint: String,
    events: tokio::sync::mpsc::UnboundedReceiver<Value>,
}

impl LegacyClient {
    async fn connect(base: &str) -> Self {
        let response = http_client().get(format!("{base}/sse")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let mut bytes = response.bytes_stream();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
        tokio::spawn(async move {
            let mut buffer = String::new();
            while let Some(Ok(chunk)) = bytes.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    let mut event = "message".to_owned();
                    let mut data = String::new();
                    for line in block.lines() {
                        if let Some(e) = line.strip_prefix("event:") {
                            event = e.trim().to_owned();
                        } else if let Some(d) = line.strip_prefix("data:") {
                            data.push_str(d.trim_start());
                        }
                    }
                    if !data.is_empty() && tx.send((event, data)).is_err() {
                        return;
                    }
                }
            }
        });
        let (event, endpoint) = rx.recv().await.unwrap();
        assert_eq!(event, "endpoint");
        assert!(
            endpoint.starts_with("/messages?sessionId="),
            "relative endpoint: {endpoint}"
        );
        let (json_tx, json_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some((event, data)) = rx.recv().await {
                assert_eq!(event, "message");
                let _ = json_tx.send(serde_json::from_str(&data).unwrap());
            }
        });
        Self {
            base: base.to_owned(),
            endpoint,
            events: json_rx,
        }
    }

    async fn send(&self, message: Value) {
        let r = http_client()
            .post(format!("{}{}", self.base, self.endpoint))
            .json(&message)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }

    async fn request(&mut self, message: Value) -> Value {
        let id = message["id"].clone();
        self.send(message).await;
        loop {
            let event = tokio::time::timeout(Duration::from_secs(10), self.events.recv())
                .await
                .unwrap()
                .unwrap();
            if event["id"] == id {
                return event;
            }
        }
    }
}

#[tokio::test]
async fn legacy_sse_clients_list_and_call_tools() {
    let env = TestEnv::new();
    env.write("a.txt", "legacy\n");
    let server = env.http().await;
    let mut client = LegacyClient::connect(&server.url("")).await;
    let init = client
        .request(json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"legacy","version":"0"}}}))
        .await;
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05");
    client
        .send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    let list = client
        .request(json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}))
        .await;
    assert_eq!(list["result"]["tools"].as_array().unwrap().len(), 12);
    let r = client
        .request(json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"filesystem_read","arguments":{"path":"a.txt"}}}))
        .await;
    assert_eq!(r["result"]["content"][0]["text"], "legacy\n");

    let probe = http_client().post(server.url("/sse")).send().await.unwrap();
    assert_eq!(probe.status(), 405);
    let unknown = http_client()
        .post(server.url("/messages?sessionId=nope"))
        .json(&json!({"jsonrpc":"2.0","method":"ping","id":1}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn fifty_concurrent_clients_each_get_every_answer_and_one_audit_line() {
    let env = TestEnv::strict();
    env.write("a.txt", "load\n");
    let server = Arc::new(env.http().await);
    let mut grants: Vec<String> = Vec::new();
    for _ in 0..50 {
        let grant = server
            .core
            .engine
            .state
            .grant_tool(
                "filesystem_write",
                execlayer::policy::Risk::Medium,
                "op",
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        grants.push(grant.id);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for client_no in 0..50 {
        let server = server.clone();
        let grants = grants.clone();
        tasks.push(tokio::spawn(async move {
            let mut calls = 0usize;
            let mut writes_ok = 0usize;
            while tokio::time::Instant::now() < deadline {
                let (status, body) = run(&server, json!({"tool_name": "filesystem_read", "args": {"path": "a.txt"}})).await;
                assert_eq!(status, 200, "{body}");
                calls += 1;
                // Everyone races for every grant: each must work exactly once.
                let id = &grants[(client_no + calls) % grants.len()];
                let (status, _) = run(
                    &server,
                    json!({"tool_name": "filesystem_write", "args": {"path": format!("w{client_no}.txt"), "content": "x"}, "approval_id": id}),
                )
                .await;
                assert!(status == 200 || status == 403, "{status}");
                calls += 1;
                writes_ok += usize::from(status == 200);
            }
            (calls, writes_ok)
        }));
    }
    let mut total_calls = 0;
    let mut total_writes = 0;
    for t in tasks {
        let (calls, writes) = t.await.unwrap();
        total_calls += calls;
        total_writes += writes;
    }
    assert!(total_calls > 100, "only {total_calls} calls in 3 s");
    assert!(total_writes <= 50, "{total_writes} writes from 50 single-use grants");
    let lines = env.audit_lines();
    assert_eq!(lines.len(), total_calls, "one audit line per call");
    let used = lines
        .iter()
        .filter(|l| l["tool"] == "filesystem_write" && l["decision"] == "allowed")
        .count();
    assert_eq!(used, total_writes);
    let mut ids: Vec<&str> = lines
        .iter()
        .filter(|l| l["decision"] == "allowed" && l["tool"] == "filesystem_write")
        .map(|l| l["approval"]["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "no approval id was consumed twice");
}

#[tokio::test]
async fn elicitation_works_over_streamable_http_sessions_in_both_eras() {
    use crate::suite::approvals::{Answer, Human};
    for (answer, version) in [
        (Answer::Yes, ProtocolVersion::V_2025_11_25),
        (Answer::Decline, ProtocolVersion::V_2025_11_25),
        (Answer::Yes, ProtocolVersion::V_2026_07_28),
        (Answer::Decline, ProtocolVersion::V_2026_07_28),
    ] {
        let env = with_token(TestEnv::strict());
        let server = env.http().await;
        let human = Human::new(answer, version.clone());
        let client = if version >= ProtocolVersion::V_2026_07_28 {
            rmcp::ClientServiceExt::serve_with_lifecycle(
                human.clone(),
                mcp_transport(&server, Some(TOKEN)),
                rmcp::ClientLifecycleMode::Discover {
                    preferred_versions: vec![version.clone()],
                },
            )
            .await
            .unwrap()
        } else {
            human.clone().serve(mcp_transport(&server, Some(TOKEN))).await.unwrap()
        };
        let r = call(
            &client,
            "filesystem_write",
            json!({"path": "h.txt", "content": "over http"}),
        )
        .await;
        assert_eq!(human.questions().len(), 1, "{answer:?} {version}");
        match answer {
            Answer::Yes => {
                assert!(!is_error(&r), "{version}: {}", text(&r));
                assert_eq!(env.read("h.txt"), "over http");
            }
            _ => {
                assert_tool_error(&r, "declined");
                assert!(!env.path("h.txt").exists());
            }
        }
    }
}
