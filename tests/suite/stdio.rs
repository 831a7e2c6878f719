//! The real binary over stdio: what an IDE sees.

use std::process::Stdio;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::ProtocolVersion;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::*;

fn command(env: &TestEnv) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_execlayer"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.vars.iter())
        .current_dir(env.dir.path());
    cmd
}

#[tokio::test]
async fn the_binary_serves_tools_and_announces_policy_edits() {
    let env = TestEnv::new();
    env.init_repo(&[("a.txt", "hello\n")]);
    let watcher = Watcher::new(ProtocolVersion::V_2025_06_18);
    let (transport, _) = TokioChildProcess::builder(command(&env).configure(|_| {}))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = watcher.clone().serve(transport).await.unwrap();
    let info = client.peer_info().unwrap();
    assert_eq!(info.protocol_version, ProtocolVersion::V_2025_06_18);
    assert_eq!(info.server_info.as_ref().unwrap().name, "execlayer");

    assert_eq!(client.list_all_tools().await.unwrap().len(), 12);
    let r = call(&client, "filesystem_read", json!({"path": "a.txt"})).await;
    assert_eq!(text(&r), "hello\n");
    let r = call(&client, "git_status", json!({})).await;
    assert_eq!(structured(&r)["clean"], true);

    // An operator edits the policy file; the running server notices.
    env.set_policy(|p| p["tools"]["filesystem_write"]["enabled"] = json!(false));
    tokio::time::timeout(Duration::from_secs(5), watcher.changed.notified())
        .await
        .expect("tools/list_changed within 5 s");
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(!names.contains(&"filesystem_write".to_owned()), "{names:?}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn stdout_carries_only_protocol_and_eof_ends_the_server() {
    let env = TestEnv::new();
    let mut child = command(&env)
        .env("EXECLAYER_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let messages = [
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
        json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"filesystem_list","arguments":{}}}),
    ];
    for m in &messages {
        stdin.write_all(format!("{m}\n").as_bytes()).await.unwrap();
    }
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("stdout line is not JSON: {line}"));
        assert_eq!(value["jsonrpc"], "2.0", "{line}");
        seen.push(value["id"].clone());
    }
    // Requests are served concurrently: answers may come in any order.
    seen.sort_by_key(|id| id.as_i64());
    assert_eq!(seen, [json!(1), json!(2), json!(3)]);
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits on EOF")
        .unwrap();
    assert!(status.success());
    assert!(lines.next_line().await.unwrap().is_none(), "nothing else on stdout");
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert!(
        stderr.contains("execlayer serving MCP on stdio"),
        "logs go to stderr: {stderr}"
    );
}

#[tokio::test]
async fn a_python_style_discover_probe_gets_an_answer_not_a_closed_pipe() {
    let env = TestEnv::new();
    let mut child = command(&env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let discover = json!({"jsonrpc":"2.0","id":0,"method":"server/discover","params":{"_meta":{
        "io.modelcontextprotocol/protocolVersion":"2026-07-28",
        "io.modelcontextprotocol/clientCapabilities":{},
        "io.modelcontextprotocol/clientInfo":{"name":"py","version":"2"}}}});
    stdin.write_all(format!("{discover}\n").as_bytes()).await.unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    let result = &value["result"];
    assert_eq!(result["resultType"], "complete");
    assert!(
        result["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28"))
    );
    assert!(
        result["ttlMs"].is_number() && result["cacheScope"].is_string(),
        "{result}"
    );
    // The same connection can still start a 2025 session.
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"py","version":"2"}}});
    stdin.write_all(format!("{init}\n").as_bytes()).await.unwrap();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(value["result"]["protocolVersion"], "2025-11-25");
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
}

#[tokio::test]
async fn a_bad_setting_fails_at_start_naming_the_variable() {
    let env = TestEnv::new();
    let out = command(&env)
        .env("SHELL_MAX_TIMEOUT_SECS", "soon")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SHELL_MAX_TIMEOUT_SECS"), "{stderr}");
    assert!(out.stdout.is_empty());
}
