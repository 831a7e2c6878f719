//! The operator channel: the real binary serving stdio only, approved with the
//! real `execlayer approve` over the per-user socket, no HTTP door anywhere.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{ClientCapabilities, ProtocolVersion};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};

use crate::common::*;

/// The test's runtime folder (where `execlayer/<pid>.sock` lives).
fn runtime_dir(env: &TestEnv) -> PathBuf {
    let dir = env.dir.path().join("run");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn server_command(env: &TestEnv) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_execlayer"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.vars.iter())
        .env("XDG_RUNTIME_DIR", runtime_dir(env))
        .current_dir(env.dir.path());
    cmd
}

/// Runs `execlayer ARGS` as the operator would; (success, stdout, stderr).
fn operator(env: &TestEnv, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_execlayer"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", env.vars.get("HOME").unwrap())
        .env("XDG_RUNTIME_DIR", runtime_dir(env))
        // An HTTP fallback must not find anything either.
        .env("EXECLAYER_LOG", "error")
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn spawn_server(env: &TestEnv) -> Client {
    let (transport, _) = TokioChildProcess::builder(server_command(env).configure(|_| {}))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    client_config(ProtocolVersion::V_2025_11_25, ClientCapabilities::default())
        .serve(transport)
        .await
        .unwrap()
}

fn sockets(env: &TestEnv) -> Vec<PathBuf> {
    let dir = runtime_dir(env).join("execlayer");
    match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sock"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn pending_id(result: &rmcp::model::CallToolResult) -> String {
    result
        .meta
        .as_ref()
        .and_then(|m| m.get("execlayer/pending_approval_id"))
        .and_then(Value::as_str)
        .expect("a pending approval id")
        .to_owned()
}

async fn wait_gone(path: &Path) {
    for _ in 0..50 {
        if !path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} is still there", path.display());
}

#[tokio::test]
async fn a_stdio_only_server_is_approved_with_execlayer_approve_and_the_retry_runs() {
    let env = TestEnv::strict();
    // A socket left by a server that died: removed when the next one starts.
    let sock_dir = runtime_dir(&env).join("execlayer");
    std::fs::create_dir_all(&sock_dir).unwrap();
    let stale = sock_dir.join("999999999.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());

    let client = spawn_server(&env).await;
    let r = call(&client, "shell_exec", json!({"command": "echo one"})).await;
    assert_tool_error(&r, "approval required");
    let id = pending_id(&r);
    assert!(text(&r).contains(&format!("`execlayer approve {id}`")), "{}", text(&r));
    assert!(text(&r).contains("--remember session"), "{}", text(&r));
    assert!(
        !text(&r).contains("/api/v1") && !text(&r).contains("dashboard"),
        "a stdio-only server names no HTTP route: {}",
        text(&r)
    );

    let live = sockets(&env);
    assert!(!stale.exists(), "the stale socket was cleaned up");
    assert_eq!(live.len(), 1, "{live:?}");
    let mode = std::fs::metadata(&live[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only the user may open the socket");
    let dir_mode = std::fs::metadata(&sock_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);

    let (ok, out, err) = operator(&env, &["approvals"]);
    assert!(ok, "{err}");
    assert!(out.contains(&id), "{out}");
    assert!(
        out.contains(&env.ws.display().to_string()),
        "the workspace is shown: {out}"
    );
    assert!(out.contains("doors: stdio"), "{out}");
    assert!(out.contains("via stdio"), "{out}");
    assert!(
        out.contains("--remember session: Allow `echo …` for this session"),
        "{out}"
    );

    let (ok, out, err) = operator(&env, &["approve", &id, "--remember", "session"]);
    assert!(ok, "{out} {err}");
    assert!(out.contains(&format!("approved {id}")), "{out}");

    let r = call(&client, "shell_exec", json!({"command": "echo one", "approval_id": id})).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(structured(&r)["stdout"], "one\n");
    // The session answer: the next `echo` in this session needs no approval.
    let r = call(&client, "shell_exec", json!({"command": "echo two"})).await;
    assert!(!is_error(&r), "{}", text(&r));

    // Denying over the socket: the retry is refused.
    let r = call(&client, "filesystem_write", json!({"path": "x.txt", "content": "x"})).await;
    let denied = pending_id(&r);
    let (ok, out, err) = operator(&env, &["deny", &denied]);
    assert!(ok, "{out} {err}");
    let r = call(
        &client,
        "filesystem_write",
        json!({"path": "x.txt", "content": "x", "approval_id": denied}),
    )
    .await;
    assert_tool_error(&r, "denied");
    assert!(!env.path("x.txt").exists());
    // An id no server holds is an error that says so.
    let (ok, _, err) = operator(&env, &["approve", "0000"]);
    assert!(!ok);
    assert!(err.contains("no running execlayer server"), "{err}");

    let lines = env.audit_lines();
    let approved = lines
        .iter()
        .find(|l| l["client"] == "operator" && l["approval"]["id"] == id.as_str())
        .expect("the operator's answer is audited");
    assert_eq!(approved["approval"]["via"], "operator (socket)");
    assert_eq!(approved["remember"], "session");
    assert_eq!(approved["rule"], "session: shell_exec command \"echo\" allow");
    let shell: Vec<&Value> = lines
        .iter()
        .filter(|l| l["tool"] == "shell_exec" && l["client"] != "operator")
        .collect();
    // The retry ran; the session answer already covered it, so the id was not spent.
    assert_eq!(shell[1]["approval"]["via"], "remembered");
    assert_eq!(shell[1]["outcome"], "ok");
    assert_eq!(shell[2]["approval"]["via"], "remembered");

    // The server's socket goes when it does.
    client.cancel().await.unwrap();
    wait_gone(&live[0]).await;
}

#[tokio::test]
async fn approve_always_over_the_socket_leaves_a_rule_a_new_process_honours() {
    let env = TestEnv::strict();
    let client = spawn_server(&env).await;
    let r = call(
        &client,
        "filesystem_write",
        json!({"path": "docs/x.md", "content": "x", "create_dirs": true}),
    )
    .await;
    let id = pending_id(&r);
    let (ok, out, err) = operator(&env, &["approve", &id, "--remember", "always"]);
    assert!(ok, "{out} {err}");
    assert!(out.contains("an allow rule was added"), "{out}");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&env.config).unwrap()).unwrap();
    assert_eq!(
        file["rules"],
        json!([{"tool": "filesystem_write", "path": "docs/x.md", "decision": "allow"}])
    );
    let (ok, out, _) = operator(&env, &["rules"]);
    assert!(ok);
    assert!(
        out.contains("rules[0]  filesystem_write path \"docs/x.md\" allow"),
        "{out}"
    );
    // The retry runs (the new rule allows it; the id is not needed).
    let r = call(
        &client,
        "filesystem_write",
        json!({"path": "docs/x.md", "content": "x", "create_dirs": true, "approval_id": id}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    client.cancel().await.unwrap();

    // A new server process honours the rule: no approval needed.
    let client = spawn_server(&env).await;
    let r = call(
        &client,
        "filesystem_write",
        json!({"path": "docs/x.md", "content": "again"}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(env.read("docs/x.md"), "again");
    let line = env.audit_lines().pop().unwrap();
    assert_eq!(line["rule"], "rules[0] filesystem_write path \"docs/x.md\" allow");
    assert_eq!(line["approval"]["via"], "rule");
    client.cancel().await.unwrap();
}
