//! Test harness: temp workspaces, real git repositories, and MCP clients wired
//! to the real server (in-process over a duplex pipe, or the built binary).
#![allow(dead_code)]

pub mod mount;
pub mod ollama;
pub mod redis;
pub mod scenario;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use execlayer::audit::Door;
use execlayer::engine::Engine;
use execlayer::server::{Core, serve_stream};
use execlayer::settings::{RawEnv, Settings};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
};
use rmcp::service::RunningService;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub type Client<H = ClientConfig> = RunningService<RoleClient, H>;

/// A temp directory holding a workspace (`ws/`), a policy file, an audit log
/// and a HOME, plus the environment that points execlayer at them.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub ws: PathBuf,
    pub config: PathBuf,
    pub audit: PathBuf,
    pub vars: RawEnv,
}

impl TestEnv {
    /// A workspace with `approval_mode: auto`.
    pub fn new() -> Self {
        Self::with_mode("auto")
    }

    /// A workspace with `approval_mode: require_approval`.
    pub fn strict() -> Self {
        Self::with_mode("require_approval")
    }

    pub fn with_mode(mode: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical tempdir");
        let ws = root.join("ws");
        std::fs::create_dir_all(&ws).expect("create ws");
        let config = root.join("config/execution_layer_config.json");
        let audit = root.join("state/audit.jsonl");
        let mut vars = RawEnv::new();
        vars.insert("HOME".into(), root.join("home").display().to_string());
        vars.insert("EXECUTION_WORKSPACE_ROOT".into(), ws.display().to_string());
        vars.insert("EXECUTION_CONFIG".into(), config.display().to_string());
        vars.insert("EXECUTION_AUDIT_LOG".into(), audit.display().to_string());
        vars.insert(
            "SHELL_ALLOWLIST".into(),
            "git status,git diff,git log,ls,echo,cat,sh,bash,env,sleep,printf".into(),
        );
        let env = Self {
            dir,
            ws,
            config,
            audit,
            vars,
        };
        // No rules unless a test adds them: tests of risk-based approval stay as they were.
        env.set_policy(|p| {
            p["approval_mode"] = Value::from(mode);
            p["rules"] = Value::Array(Vec::new());
        });
        env
    }

    /// Rewrites the policy file (starting from the shipped defaults).
    pub fn set_policy(&self, change: impl FnOnce(&mut Value)) {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/execution_layer_config.json");
        let mut policy: Value = match std::fs::read_to_string(&self.config) {
            Ok(text) => serde_json::from_str(&text).expect("policy json"),
            Err(_) => serde_json::from_str(&std::fs::read_to_string(shipped).expect("shipped policy")).expect("json"),
        };
        change(&mut policy);
        std::fs::create_dir_all(self.config.parent().expect("parent")).expect("config dir");
        std::fs::write(&self.config, serde_json::to_string_pretty(&policy).expect("json")).expect("write policy");
    }

    pub fn set_var(&mut self, key: &str, value: &str) {
        self.vars.insert(key.into(), value.into());
    }

    pub fn settings(&self) -> Settings {
        Settings::from_env(&self.vars, self.dir.path()).expect("valid settings")
    }

    pub fn engine(&self) -> Arc<Engine> {
        Engine::new(self.settings()).expect("engine")
    }

    /// A started core (engine + hub) for doors that need one.
    pub fn core(&self) -> Core {
        Core::start(self.engine(), CancellationToken::new()).expect("core")
    }

    /// A default client (protocol 2025-11-25, no elicitation) over a duplex pipe.
    pub async fn client(&self) -> Client {
        self.client_with(client_config(
            ProtocolVersion::V_2025_11_25,
            ClientCapabilities::default(),
        ))
        .await
    }

    /// Any client handler over a duplex pipe to an in-process server.
    pub async fn client_with<H: ClientHandler>(&self, handler: H) -> Client<H> {
        let core = self.core();
        connect(&core, handler).await
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.ws.join(rel)
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).expect("read")
    }

    /// Every audit line, parsed.
    pub fn audit_lines(&self) -> Vec<Value> {
        match std::fs::read_to_string(&self.audit) {
            Ok(text) => text
                .lines()
                .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Runs git in the workspace with a fixed identity.
    pub fn git(&self, args: &[&str]) -> String {
        git_in(&self.ws, args)
    }

    /// Makes the workspace a git repository with one commit of `files`.
    pub fn init_repo(&self, files: &[(&str, &str)]) {
        self.git(&["init", "-q", "-b", "main"]);
        for (p, c) in files {
            self.write(p, c);
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", "initial"]);
    }
}

pub fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn client_config(version: ProtocolVersion, caps: ClientCapabilities) -> ClientConfig {
    ClientConfig::new(caps, Implementation::new("execlayer-tests", "0")).with_protocol_version(version)
}

/// Connects `handler` to a fresh MCP session of `core` over a duplex pipe.
pub async fn connect<H: ClientHandler>(core: &Core, handler: H) -> Client<H> {
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let core = core.clone();
    tokio::spawn(async move {
        let (read, write) = tokio::io::split(server_io);
        let _ = serve_stream(&core, Door::Stdio, read, write).await;
    });
    handler.serve(client_io).await.expect("client connects")
}

/// Calls a tool; panics on a protocol error.
pub async fn call<H: ClientHandler>(client: &Client<H>, tool: &str, args: Value) -> CallToolResult {
    try_call(client, tool, args)
        .await
        .unwrap_or_else(|e| panic!("{tool} failed at the protocol level: {e}"))
}

pub async fn try_call<H: ClientHandler>(
    client: &Client<H>,
    tool: &str,
    args: Value,
) -> Result<CallToolResult, rmcp::ServiceError> {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    if let Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    client.call_tool(params).await
}

/// The text of the first content block.
pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

pub fn is_error(result: &CallToolResult) -> bool {
    result.is_error == Some(true)
}

/// The structured content, which must be present.
pub fn structured(result: &CallToolResult) -> &Value {
    result.structured_content.as_ref().expect("structured content")
}

/// Asserts the call failed as a tool error whose message contains `needle`.
#[track_caller]
pub fn assert_tool_error(result: &CallToolResult, needle: &str) {
    assert!(is_error(result), "expected an error result, got: {}", text(result));
    assert!(
        text(result).contains(needle),
        "error {:?} does not mention {needle:?}",
        text(result)
    );
}

/// A real HTTP server on a loopback port, stopped when dropped.
pub struct HttpServer {
    pub core: Core,
    pub addr: std::net::SocketAddr,
    pub shutdown: CancellationToken,
}

impl HttpServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path` without a token; the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        http_client()
            .get(self.url(path))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON body")
    }

    /// `POST path` without a body or token; the JSON body.
    pub async fn post_json(&self, path: &str) -> Value {
        http_client()
            .post(self.url(path))
            .send()
            .await
            .expect("POST")
            .json()
            .await
            .expect("JSON body")
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestEnv {
    /// Starts the HTTP door on 127.0.0.1:0.
    pub async fn http(&self) -> HttpServer {
        self.http_with(execlayer::http::HttpOptions::default()).await
    }

    pub async fn http_with(&self, options: execlayer::http::HttpOptions) -> HttpServer {
        let shutdown = CancellationToken::new();
        let core = Core::start(self.engine(), shutdown.clone()).expect("core");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(execlayer::http::serve_http(
            core.clone(),
            listener,
            options,
            shutdown.clone(),
        ));
        HttpServer { core, addr, shutdown }
    }
}

/// A plain HTTP client that never uses a proxy.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("reqwest client")
}

/// A client that notes `notifications/tools/list_changed`.
#[derive(Clone)]
pub struct Watcher {
    pub changed: Arc<tokio::sync::Notify>,
    version: ProtocolVersion,
}

impl Watcher {
    pub fn new(version: ProtocolVersion) -> Self {
        Self {
            changed: Arc::default(),
            version,
        }
    }
}

impl ClientHandler for Watcher {
    fn get_info(&self) -> ClientConfig {
        client_config(self.version.clone(), ClientCapabilities::default())
    }

    async fn on_tool_list_changed(&self, _context: rmcp::service::NotificationContext<RoleClient>) {
        self.changed.notify_one();
    }
}

/// The entries of a `filesystem_list` answer, read back from its text (one
/// line each: `dir/`, `link -> target`, `file  (N bytes)`, `name  (special)`),
/// as `[{path, type, size?, target?}]`.
pub fn listed(result: &CallToolResult) -> Value {
    let mut entries = Vec::new();
    for line in text(result).lines() {
        if line.starts_with("[execlayer:") || line.ends_with(" is empty") {
            continue;
        }
        let entry = if let Some(path) = line.strip_suffix("/  (cache directory, not listed)") {
            serde_json::json!({"path": path, "type": "cache"})
        } else if let Some((path, target)) = line.split_once(" -> ") {
            serde_json::json!({"path": path, "type": "symlink", "target": target})
        } else if let Some(path) = line.strip_suffix('/') {
            serde_json::json!({"path": path, "type": "dir"})
        } else if let Some(path) = line.strip_suffix("  (special)") {
            serde_json::json!({"path": path, "type": "other"})
        } else if let Some((path, size)) = line.strip_suffix(" bytes)").and_then(|l| l.rsplit_once("  (")) {
            serde_json::json!({"path": path, "type": "file", "size": size.parse::<u64>().expect("a size")})
        } else {
            serde_json::json!({"path": line, "type": "file"})
        };
        entries.push(entry);
    }
    let count = structured(result)["count"].as_u64().expect("count");
    assert_eq!(
        entries.len() as u64,
        count,
        "the text lists `count` entries:\n{}",
        text(result)
    );
    Value::Array(entries)
}
