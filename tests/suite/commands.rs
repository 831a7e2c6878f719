//! `shell_exec` as a model reads it: the description lists what may run, the
//! output carries no terminal escapes, the command sees no terminal and no
//! request for colour, and `exit_code` is always there. Real programs (printf,
//! env, git, cargo, rustfmt, python3) through the real MCP client.

use std::process::Stdio;

use rmcp::ServiceExt;
use rmcp::model::CallToolResult;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};

use crate::common::*;

async fn shell(client: &Client, command: &str) -> CallToolResult {
    call(client, "shell_exec", json!({ "command": command })).await
}

/// The real binary over stdio, started with `extra` in its own environment
/// (as a user's shell profile could set them).
async fn binary_client(env: &TestEnv, extra: &[(&str, &str)]) -> Client<()> {
    // The workspace has a HOME of its own: point cargo and rustup at the real ones.
    let home = std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let toolchain = (
        std::env::var_os("CARGO_HOME").unwrap_or_else(|| home.join(".cargo").into()),
        std::env::var_os("RUSTUP_HOME").unwrap_or_else(|| home.join(".rustup").into()),
    );
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_execlayer")).configure(|c| {
        c.arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CARGO_HOME", &toolchain.0)
            .env("RUSTUP_HOME", &toolchain.1)
            .envs(env.vars.iter())
            .envs(extra.iter().copied())
            .current_dir(env.dir.path());
    });
    let (transport, _) = TokioChildProcess::builder(cmd).stderr(Stdio::null()).spawn().unwrap();
    ().serve(transport).await.expect("the binary serves")
}

fn assert_no_escapes(what: &str, s: &str) {
    assert!(!s.contains('\u{1b}'), "{what} holds an escape sequence: {s:?}");
}

#[tokio::test]
async fn the_description_lists_the_commands_allowed_now() {
    let mut env = TestEnv::new();
    env.set_var("SHELL_ALLOWLIST", "git status,cargo test,python -m pytest");
    let client = env.client().await;
    let tools = client.list_all_tools().await.unwrap();
    let shell = tools.iter().find(|t| t.name == "shell_exec").unwrap();
    let description = shell.description.as_deref().unwrap_or_default();
    assert!(
        description.contains("Allowed now: `git status`, `cargo test`, `python -m pytest`."),
        "{description}"
    );
    assert!(description.contains("passed literally") || description.contains("reaches the program literally"));
    // The output schema promises exit_code on every result.
    let required = shell.output_schema.as_ref().unwrap()["required"]
        .as_array()
        .unwrap()
        .clone();
    assert!(required.contains(&json!("exit_code")), "{required:?}");

    // The REST listing says the same.
    let server = env.http().await;
    let listed: Value = server.get_json("/api/v1/execution/tools").await;
    let rest = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "shell_exec")
        .unwrap();
    assert_eq!(rest["description"], description);

    let mut empty = TestEnv::new();
    empty.set_var("SHELL_ALLOWLIST", ",");
    let client = empty.client().await;
    let tools = client.list_all_tools().await.unwrap();
    let description = tools
        .iter()
        .find(|t| t.name == "shell_exec")
        .unwrap()
        .description
        .clone();
    assert!(
        description.unwrap_or_default().contains("every command is refused"),
        "an empty allowlist must say so"
    );
}

#[tokio::test]
async fn escape_sequences_are_removed_from_the_output() {
    let env = TestEnv::new();
    let client = env.client().await;
    // Colour (CSI), a hyperlink and a window title (OSC, ended by ST and by
    // BEL), a cursor move, and a UTF-8 character next to them.
    let r = shell(
        &client,
        r"printf '\033[1;31mred\033[0m \033]8;;https://example.org\033\\link\033]8;;\033\\ \033]0;title\007é\033[2K\033[1Gdone\n'",
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    let s = structured(&r);
    assert_eq!(s["stdout"], "red link édone\n");
    // The byte count is what the program wrote, escapes included.
    assert!(
        s["stdout_bytes"].as_u64().unwrap() > "red link édone\n".len() as u64,
        "{s}"
    );
    assert_no_escapes("text", &text(&r));

    // On stderr too.
    let r = shell(&client, r#"sh -c "printf '\\033[33mwarn\\033[m' >&2""#).await;
    assert_eq!(structured(&r)["stderr"], "warn", "{}", text(&r));
}

#[tokio::test]
async fn a_command_sees_no_terminal_and_no_request_for_colour() {
    let mut env = TestEnv::new();
    env.set_var("SHELL_ALLOWLIST", "env,git config");
    env.init_repo(&[("a.txt", "a\n")]);
    let client = binary_client(
        &env,
        &[
            ("FORCE_COLOR", "1"),
            ("CLICOLOR_FORCE", "1"),
            ("COLORTERM", "truecolor"),
            ("TERM", "xterm-256color"),
            ("CARGO_TERM_COLOR", "always"),
            ("PY_COLORS", "1"),
        ],
    )
    .await;
    let r = call(&client, "shell_exec", json!({"command": "env"})).await;
    let stdout = structured(&r)["stdout"].as_str().unwrap().to_owned();
    let vars: Vec<&str> = stdout.lines().collect();
    for want in [
        "NO_COLOR=1",
        "CLICOLOR=0",
        "TERM=dumb",
        "CARGO_TERM_COLOR=never",
        "PY_COLORS=0",
    ] {
        assert!(vars.contains(&want), "{want} missing:\n{stdout}");
    }
    for gone in ["FORCE_COLOR=", "CLICOLOR_FORCE=", "COLORTERM="] {
        assert!(!vars.iter().any(|v| v.starts_with(gone)), "{gone} reached the command");
    }
    let r = call(&client, "shell_exec", json!({"command": "git config --get color.ui"})).await;
    assert_eq!(structured(&r)["stdout"], "never\n", "{}", text(&r));
    client.cancel().await.unwrap();
}

/// The regression the issue reports: `cargo fmt --check` came back full of
/// raw colour codes. The server here even runs with `CARGO_TERM_COLOR=always`.
#[tokio::test]
async fn cargo_fmt_and_cargo_check_output_comes_back_without_escapes() {
    let mut env = TestEnv::new();
    env.set_var("SHELL_ALLOWLIST", "cargo fmt --check,cargo check");
    env.write(
        "Cargo.toml",
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    );
    env.write("src/main.rs", "fn main(){let x:u8=\"no\";println!(\"{}\",x);}\n");
    let client = binary_client(&env, &[("CARGO_TERM_COLOR", "always"), ("TERM", "xterm-256color")]).await;

    let r = call(
        &client,
        "shell_exec",
        json!({"command": "cargo fmt --check", "timeout_secs": 120}),
    )
    .await;
    let s = structured(&r);
    assert_eq!(s["exit_code"], 1, "{s}");
    let out = s["stdout"].as_str().unwrap();
    assert!(out.contains("Diff in") && out.contains("fn main() {"), "{out}");
    assert_no_escapes("cargo fmt stdout", out);
    assert_no_escapes("cargo fmt stderr", s["stderr"].as_str().unwrap());

    let r = call(
        &client,
        "shell_exec",
        json!({"command": "cargo check --offline", "timeout_secs": 300}),
    )
    .await;
    let s = structured(&r);
    assert_ne!(s["exit_code"], 0, "{s}");
    let err = s["stderr"].as_str().unwrap();
    assert!(err.contains("error[E0308]: mismatched types"), "{err}");
    assert!(err.contains("--> src/main.rs:1:"), "{err}");
    assert_no_escapes("cargo check stderr", err);
    assert_no_escapes("text", &text(&r));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn exit_code_is_always_present_and_null_only_after_a_signal() {
    let mut env = TestEnv::new();
    env.set_var("SHELL_ALLOWLIST", "sh -c,sleep,python3 -c");
    let client = env.client().await;
    for (command, code) in [
        ("sh -c 'exit 0'", json!(0)),
        ("sh -c 'exit 3'", json!(3)),
        (
            r#"python3 -c "import sys; print(sys.version_info[0]); print('a;b')""#,
            json!(0),
        ),
    ] {
        let r = shell(&client, command).await;
        let s = structured(&r).as_object().unwrap();
        assert_eq!(s.get("exit_code"), Some(&code), "{command}: {s:?}");
    }
    let r = shell(
        &client,
        r#"python3 -c "import sys; print(sys.version_info[0]); print('a;b')""#,
    )
    .await;
    assert_eq!(structured(&r)["stdout"], "3\na;b\n");

    let r = shell(&client, "sh -c 'kill -TERM $$'").await;
    let s = structured(&r).as_object().unwrap();
    assert_eq!(s.get("exit_code"), Some(&Value::Null), "{s:?}");
    assert_eq!(s.get("signal"), Some(&json!(15)), "{s:?}");
    assert!(text(&r).contains("killed by signal 15"), "{}", text(&r));

    let r = call(&client, "shell_exec", json!({"command": "sleep 5", "timeout_secs": 1})).await;
    let s = structured(&r).as_object().unwrap();
    assert_eq!(s.get("exit_code"), Some(&Value::Null), "{s:?}");
    assert_eq!(s.get("timed_out"), Some(&json!(true)));
}

#[tokio::test]
async fn an_unquoted_operator_is_refused_naming_it_and_nothing_runs() {
    let mut env = TestEnv::new();
    env.set_var("SHELL_ALLOWLIST", "ls,git status");
    env.write("x/keep.txt", "k");
    let client = env.client().await;
    let r = shell(&client, "ls; rm -rf x").await;
    assert_tool_error(&r, "unquoted `;`");
    assert!(text(&r).contains("no shell"), "{}", text(&r));
    assert!(env.path("x/keep.txt").exists());
    let r = shell(&client, "git status | head").await;
    assert_tool_error(&r, "unquoted `|`");
    assert!(text(&r).contains("pipe"), "{}", text(&r));
    let r = shell(&client, "cargo build").await;
    assert_tool_error(&r, "is not allowed");
    assert!(text(&r).contains("`ls`, `git status`"), "{}", text(&r));
}
