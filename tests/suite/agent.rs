//! The Ollama agent example, end to end: the model (a scripted double) calls
//! git_status through execlayer, then answers.

use serde_json::json;

use crate::common::ollama::{FakeOllama, Script};
use crate::common::*;

#[tokio::test]
async fn the_agent_example_calls_a_tool_and_prints_the_answer() {
    let turns = vec![
        json!({"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "git_status", "arguments": {}}}]}),
        json!({"role": "assistant", "content": "One file is modified: notes.txt."}),
    ];
    let ollama = FakeOllama::default()
        .with_model("qwen2.5:7b", Script::Turns(turns))
        .start()
        .await;
    let env = TestEnv::new();
    env.init_repo(&[("notes.txt", "v1\n")]);
    env.write("notes.txt", "v2\n");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_execlayer"));
    let example = bin.parent().unwrap().join("examples/ollama_agent");
    assert!(
        example.exists(),
        "cargo test builds examples; missing {}",
        example.display()
    );
    let out = tokio::process::Command::new(example)
        .arg("summarize the uncommitted changes")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.vars.iter())
        .env("EXECLAYER_BIN", bin)
        .env("OLLAMA_BASE_URL", ollama.url())
        .env("OLLAMA_AGENT_MODEL", "qwen2.5:7b")
        .current_dir(env.dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "One file is modified: notes.txt."
    );

    let requests = ollama.requests();
    assert_eq!(requests.len(), 2);
    let tools = requests[0]["tools"].as_array().unwrap();
    assert!(
        tools
            .iter()
            .any(|t| t["function"]["name"] == "git_status" && t["type"] == "function")
    );
    let tool_message = requests[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap()
        .clone();
    assert_eq!(tool_message["tool_name"], "git_status");
    assert!(
        tool_message["content"].as_str().unwrap().contains(" M notes.txt"),
        "{tool_message}"
    );
    // The call went through the gate.
    assert!(
        env.audit_lines()
            .iter()
            .any(|l| l["tool"] == "git_status" && l["client"] == "execlayer-ollama-agent")
    );
}
