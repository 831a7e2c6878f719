//! A complete local agent loop: Ollama plans, execlayer acts.
//!
//! It starts `execlayer serve` as a child over stdio (an rmcp client), turns
//! execlayer's tools into Ollama tool definitions, and chats with Ollama
//! (`/api/chat` with `tools`). Each tool call the model makes goes through MCP,
//! so the policy, approvals and audit apply; the result goes back to the model
//! as a `tool` message. It stops at a final answer or after `AGENT_MAX_TURNS`.
//! Approval questions are asked on the terminal (y/N); without a terminal the
//! answer is no.
//!
//! ```sh
//! EXECUTION_WORKSPACE_ROOT=/path/to/project OLLAMA_AGENT_MODEL=qwen2.5:7b \
//!     cargo run --example ollama_agent -- "summarize the uncommitted changes"
//! ```

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use execlayer::ollama::{ChatRequest, Ollama};
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult, ElicitationAction,
    Implementation, ProtocolVersion,
};
use rmcp::service::RequestContext;
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde_json::{Value, json};

const SYSTEM: &str = "You are a careful coding agent. You can use tools that act on one project workspace: read, list and search files, inspect git, write files, apply unified diffs and run allowlisted commands. Use tools to find facts before answering; paths are relative to the workspace root. When you have the answer, reply with it directly.";

/// Answers approval questions on the terminal.
#[derive(Clone)]
struct Terminal;

impl ClientHandler for Terminal {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_elicitation().build(),
            Implementation::new("execlayer-ollama-agent", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let message = match &request {
            ElicitRequestParams::FormElicitationParams { message, .. } => message.clone(),
            _ => return Ok(ElicitResult::new(ElicitationAction::Decline)),
        };
        let yes = tokio::task::spawn_blocking(move || {
            if !std::io::stdin().is_terminal() {
                eprintln!("[agent] approval asked but there is no terminal to answer it: denying\n{message}");
                return false;
            }
            eprint!("\n{message}\n[y/N] ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).is_ok() && line.trim().eq_ignore_ascii_case("y")
        })
        .await
        .unwrap_or(false);
        Ok(if yes {
            ElicitResult::new(ElicitationAction::Accept).with_content(json!({"approve": true}))
        } else {
            ElicitResult::new(ElicitationAction::Decline)
        })
    }
}

fn execlayer_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("EXECLAYER_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/examples/ollama_agent → target/<profile>/execlayer
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|dir| dir.join("execlayer")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("execlayer"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let prompt = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    if prompt.trim().is_empty() {
        anyhow::bail!("usage: ollama_agent \"what to do\"");
    }
    let base = std::env::var("OLLAMA_BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:11434".into());
    let model = std::env::var("OLLAMA_AGENT_MODEL")
        .or_else(|_| std::env::var("OLLAMA_REASONING_FALLBACK"))
        .unwrap_or_else(|_| "qwen2.5:7b".into());
    let max_turns: usize = std::env::var("AGENT_MAX_TURNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);

    let mut command = tokio::process::Command::new(execlayer_binary());
    command.arg("serve").env("EXECLAYER_LOG", "warn");
    let mcp = Terminal.serve(TokioChildProcess::new(command)?).await?;
    let tools: Vec<Value> = mcp
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| {
            json!({"type": "function", "function": {
                "name": t.name,
                "description": t.description.unwrap_or_default(),
                "parameters": Value::Object((*t.input_schema).clone()),
            }})
        })
        .collect();
    eprintln!("[agent] {} tools from execlayer; model {model} at {base}", tools.len());

    let ollama = Ollama::new(&base, Duration::from_secs(600));
    let mut messages = vec![
        json!({"role": "system", "content": SYSTEM}),
        json!({"role": "user", "content": prompt}),
    ];
    for turn in 1..=max_turns {
        let request = ChatRequest {
            model: model.clone(),
            messages: messages.clone(),
            stream: false,
            think: None,
            tools: Some(tools.clone()),
            options: Default::default(),
        };
        let reply = ollama.chat(&request, |_, _| {}).await?;
        if reply.tool_calls.is_empty() {
            println!("{}", reply.content.trim());
            mcp.cancel().await?;
            return Ok(());
        }
        messages.push(json!({"role": "assistant", "content": reply.content, "tool_calls": reply.tool_calls}));
        for call in &reply.tool_calls {
            let name = call["function"]["name"].as_str().unwrap_or("").to_owned();
            let arguments = match &call["function"]["arguments"] {
                Value::Object(map) => map.clone(),
                Value::String(s) => serde_json::from_str(s).unwrap_or_default(),
                _ => Default::default(),
            };
            eprintln!("[agent] turn {turn}: {name} {}", Value::Object(arguments.clone()));
            let content = match mcp
                .call_tool(CallToolRequestParams::new(name.clone()).with_arguments(arguments))
                .await
            {
                Ok(result) => {
                    let text: String = result
                        .content
                        .iter()
                        .filter_map(|c| c.as_text())
                        .map(|t| t.text.clone())
                        .collect();
                    if result.is_error == Some(true) {
                        format!("ERROR: {text}")
                    } else {
                        text
                    }
                }
                Err(e) => format!("ERROR: the call failed: {e}"),
            };
            messages.push(json!({"role": "tool", "tool_name": name, "content": content}));
        }
    }
    mcp.cancel().await?;
    anyhow::bail!("no final answer after {max_turns} turns (raise AGENT_MAX_TURNS)")
}
