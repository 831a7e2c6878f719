//! The `execlayer` command: parse the CLI, load settings, log to stderr, run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use execlayer::audit::Door;
use execlayer::cli::{self, Remote};
use execlayer::engine::Engine;
use execlayer::http::{DEFAULT_MAX_BODY_BYTES, HttpOptions, serve_http};
use execlayer::server::{Core, serve_stream};
use execlayer::settings::Settings;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "execlayer",
    version,
    about = "A guarded execution layer for LLM agents, served over MCP"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP over stdio (the default) and/or HTTP.
    Serve(ServeArgs),
    /// Write the tools' and the policy file's JSON schemas.
    Schemas {
        /// Folder to write into.
        #[arg(long, default_value = "schemas")]
        out: PathBuf,
    },
    /// Print the derived model paths as shell `export` lines.
    Env,
    /// Model paths (with exists / missing), Ollama and its models, the policy in force.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the calls waiting for approval on every execlayer server of this user
    /// (through their operator sockets), or on the server at --url.
    Approvals(OperatorArgs),
    /// Approve a pending call (the agent then retries with this approval_id).
    Approve {
        id: String,
        /// Also allow calls of the same kind: for the rest of the caller's MCP session,
        /// or always (adds an allow rule to the policy file). Default: this call only.
        #[arg(long, value_parser = ["once", "session", "always"], default_value = "once")]
        remember: String,
        #[command(flatten)]
        remote: OperatorArgs,
    },
    /// Deny a pending call.
    Deny {
        id: String,
        #[command(flatten)]
        remote: OperatorArgs,
    },
    /// List the policy file's rules, numbered as audit lines name them.
    Rules,
    /// List tools, or enable / disable one (persisted in the policy file).
    Tools {
        #[command(subcommand)]
        action: Option<ToolAction>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Show the newest audit lines.
    Audit {
        /// How many lines.
        #[arg(long, default_value_t = 20)]
        tail: usize,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// The original execution layer's smoke check against a running server.
    Smoke(RemoteArgs),
}

#[derive(Subcommand)]
enum ToolAction {
    Enable { name: String },
    Disable { name: String },
}

#[derive(Args)]
struct ServeArgs {
    /// Serve MCP on stdin/stdout (the default when --http is not given).
    #[arg(long)]
    stdio: bool,
    /// Serve HTTP on this address: /mcp, /sse + /messages, /api/v1, the dashboard.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8765")]
    http: Option<SocketAddr>,
    /// Allow a non-loopback address without EXECUTION_TOKEN (not recommended).
    #[arg(long)]
    allow_unauthenticated: bool,
    /// Accept this host name in the Host header (loopback names always are). Repeatable.
    #[arg(long, value_name = "HOST")]
    allowed_host: Vec<String>,
    /// Accept this Origin (scheme://host[:port]); the server's own always is. Repeatable.
    #[arg(long, value_name = "ORIGIN")]
    allowed_origin: Vec<String>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
}

#[derive(Args, Clone)]
struct OperatorArgs {
    /// Talk to the server at this base URL over HTTP instead of the operator sockets.
    #[arg(long, env = "EXECLAYER_URL")]
    url: Option<String>,
}

#[derive(Args, Clone)]
struct RemoteArgs {
    /// The server's base URL.
    #[arg(long, env = "EXECLAYER_URL", default_value = "http://127.0.0.1:8765")]
    url: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EXECLAYER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=warn")),
        )
        .init();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("execlayer: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The server's secrets, removed from its environment once the settings are read.
const SECRET_VARS: &[&str] = &["EXECUTION_TOKEN", "EXECUTION_STATE_KEY", "EXECUTION_STATE_URL"];

/// Makes the server non-dumpable: no other process of the same user can read
/// its memory or `/proc/<pid>/environ` (root with CAP_SYS_PTRACE still can).
/// Commands it starts are dumpable again after their `exec`.
fn keep_memory_private() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot make the server non-dumpable");
        }
    }
}

/// Removes [`SECRET_VARS`] from the environment, first overwriting their
/// values where the kernel shows them (`/proc/<pid>/environ` reads the
/// strings the process started with, whatever `environ` points at later).
/// Must run before any other thread exists.
fn forget_secrets() {
    #[cfg(target_os = "linux")]
    {
        unsafe extern "C" {
            static mut environ: *mut *mut libc::c_char;
        }
        // SAFETY: single-threaded (called before the runtime starts); each
        // entry of `environ` is a NUL-terminated `NAME=value` string that we
        // overwrite in place, within its own length.
        unsafe {
            let mut entry = environ;
            while !entry.is_null() && !(*entry).is_null() {
                let text = std::ffi::CStr::from_ptr(*entry).to_bytes();
                if let Some(eq) = text.iter().position(|b| *b == b'=')
                    && SECRET_VARS.iter().any(|name| name.as_bytes() == &text[..eq])
                {
                    std::ptr::write_bytes((*entry).add(eq + 1), 0, text.len() - eq - 1);
                }
                entry = entry.add(1);
            }
        }
    }
    for name in SECRET_VARS {
        // SAFETY: no other thread exists yet to read the environment.
        unsafe { std::env::remove_var(name) };
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// The token for operator commands: the environment, then `.env`.
fn remote(args: &RemoteArgs) -> anyhow::Result<Remote> {
    let cwd = std::env::current_dir()?;
    let token = std::env::var("EXECUTION_TOKEN").ok().or_else(|| {
        dotenvy::from_path_iter(cwd.join(".env"))
            .ok()?
            .flatten()
            .find(|(k, _)| k == "EXECUTION_TOKEN")
            .map(|(_, v)| v)
    });
    Remote::new(&args.url, token.filter(|t| !t.is_empty()))
}

/// The operator sockets of this user's servers.
fn sockets() -> anyhow::Result<cli::Sockets> {
    let dir = execlayer::operator::default_socket_dir().ok_or_else(|| {
        anyhow::anyhow!("cannot find the operator sockets: set XDG_RUNTIME_DIR or HOME, or pass --url")
    })?;
    Ok(cli::Sockets { dir })
}

/// With no server on the sockets, the HTTP server at the default address, as before.
fn http_of(args: &OperatorArgs) -> RemoteArgs {
    RemoteArgs {
        url: args.url.clone().unwrap_or_else(|| "http://127.0.0.1:8765".into()),
    }
}

/// When neither a socket nor the default HTTP address answered, say both were tried.
fn no_server_found(args: &OperatorArgs, result: anyhow::Result<()>) -> anyhow::Result<()> {
    match (&args.url, result) {
        (None, Err(e)) => {
            let dir = execlayer::operator::default_socket_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default();
            Err(e.context(format!(
                "no execlayer server of this user answered on an operator socket in {dir}, nor over HTTP; is a server running as this user? (give --url for a server elsewhere)"
            )))
        }
        (_, result) => result,
    }
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Schemas { out } => {
            let n = execlayer::schemas::write_all(&out)?;
            eprintln!("wrote {n} schema files under {}", out.display());
            Ok(true)
        }
        Command::Env => {
            let settings = Settings::load(&std::env::current_dir()?)?;
            print!("{}", execlayer::settings::env_exports(&settings));
            Ok(true)
        }
        Command::Status { json } => {
            let settings = Settings::load(&std::env::current_dir()?)?;
            let risks = execlayer::tools::Registry::builtin().risks();
            let policy = execlayer::policy::PolicyFile::load(&settings.config_path, &risks)?;
            let workspace = settings.workspace_root.canonicalize()?;
            let sandbox = execlayer::sandbox::Sandbox::new(&settings.sandbox, &workspace, &[], &[]);
            let status = runtime()?.block_on(execlayer::brain::status(&settings, &policy, &sandbox));
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", execlayer::tools::brain_status::render_text(&status));
            }
            Ok(true)
        }
        Command::Serve(args) => {
            keep_memory_private();
            let settings = Settings::load(&std::env::current_dir()?)?;
            // Still one thread: the runtime is built below.
            forget_secrets();
            let rt = runtime()?;
            let result = rt.block_on(serve(settings, args));
            // stdin's reader thread cannot be interrupted; do not wait for it.
            rt.shutdown_timeout(std::time::Duration::from_millis(200));
            result.map(|()| true)
        }
        Command::Approvals(r) => runtime()?.block_on(async {
            if r.url.is_none() && sockets()?.approvals().await? {
                return Ok(true);
            }
            let result = cli::approvals(&remote(&http_of(&r))?).await;
            no_server_found(&r, result).map(|()| true)
        }),
        Command::Approve {
            id,
            remember,
            remote: r,
        } => runtime()?.block_on(async {
            if r.url.is_none() && sockets()?.decide(&id, true, &remember).await? {
                return Ok(true);
            }
            let result = cli::decide(&remote(&http_of(&r))?, &id, true, &remember).await;
            no_server_found(&r, result).map(|()| true)
        }),
        Command::Deny { id, remote: r } => runtime()?.block_on(async {
            if r.url.is_none() && sockets()?.decide(&id, false, "once").await? {
                return Ok(true);
            }
            let result = cli::decide(&remote(&http_of(&r))?, &id, false, "once").await;
            no_server_found(&r, result).map(|()| true)
        }),
        Command::Rules => {
            let settings = Settings::load(&std::env::current_dir()?)?;
            let risks = execlayer::tools::Registry::builtin().risks();
            let policy = execlayer::policy::PolicyFile::load(&settings.config_path, &risks)?;
            println!("policy file: {}", settings.config_path.display());
            cli::print_rules(&policy);
            Ok(true)
        }
        Command::Tools { action, remote: r } => runtime()?.block_on(async {
            let toggle = match &action {
                Some(ToolAction::Enable { name }) => Some((name.as_str(), true)),
                Some(ToolAction::Disable { name }) => Some((name.as_str(), false)),
                None => None,
            };
            cli::tools(&remote(&r)?, toggle).await.map(|()| true)
        }),
        Command::Audit { tail, remote: r } => {
            runtime()?.block_on(async { cli::audit(&remote(&r)?, tail).await.map(|()| true) })
        }
        Command::Smoke(r) => runtime()?.block_on(async { cli::smoke(&remote(&r)?).await }),
    }
}

async fn serve(settings: Settings, args: ServeArgs) -> anyhow::Result<()> {
    // Installed before any door opens: a SIGTERM that arrives once a client
    // has been answered must end the server cleanly, not by the default action.
    let terminate = terminate();
    if let Some(addr) = args.http
        && !addr.ip().is_loopback()
        && settings.token.is_none()
    {
        if !args.allow_unauthenticated {
            anyhow::bail!(
                "refusing to serve HTTP on non-loopback {addr} without EXECUTION_TOKEN; set a token, bind 127.0.0.1, or pass --allow-unauthenticated"
            );
        }
        tracing::warn!(%addr, "serving HTTP on a non-loopback address WITHOUT a token: anyone who can reach it can run tools");
    }
    let engine = Engine::new(settings)?;
    let shutdown = CancellationToken::new();
    let core = Core::start(engine, shutdown.clone())?;
    let stdio = args.stdio || args.http.is_none();
    let mut doors: Vec<String> = Vec::new();
    if stdio {
        doors.push("stdio".into());
    }
    tracing::info!(
        workspace = %core.engine.workspace.root().display(),
        policy = %core.engine.policy.path().display(),
        audit = %core.engine.audit.path().display(),
        "execlayer starting"
    );
    let http = match args.http {
        Some(addr) => {
            let listener = execlayer::http::bind(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
            let local = listener.local_addr()?;
            doors.push(format!("http://{local}"));
            tracing::info!(%local, "execlayer serving HTTP: /mcp, /sse, /api/v1, dashboard at http://{local}/");
            let options = HttpOptions {
                allowed_hosts: args.allowed_host.clone(),
                allowed_origins: args.allowed_origin.clone(),
                max_body_bytes: args.max_body_bytes,
            };
            Some(tokio::spawn(serve_http(
                core.clone(),
                listener,
                options,
                shutdown.clone(),
            )))
        }
        None => None,
    };
    // The operator channel: approvals answerable in every mode, stdio included.
    let _operator = match execlayer::operator::default_socket_dir() {
        Some(dir) => {
            let info = execlayer::operator::ServerInfo {
                workspace: core.engine.workspace.root().display().to_string(),
                doors,
            };
            match execlayer::operator::start(&core, &dir, info, shutdown.clone()) {
                Ok(socket) => Some(socket),
                Err(e) => {
                    tracing::warn!(error = %e, dir = %dir.display(), "no operator socket: `execlayer approve` cannot reach this server");
                    None
                }
            }
        }
        None => {
            tracing::warn!("no operator socket: neither XDG_RUNTIME_DIR nor HOME is set");
            None
        }
    };
    let result = if stdio {
        tracing::info!("execlayer serving MCP on stdio");
        tokio::select! {
            r = async {
                // Pipes (how MCP clients start servers) go through the IO
                // reactor instead of a blocking thread per read and write.
                let (read, write) = rmcp::transport::stdio_pipes();
                serve_stream(&core, Door::Stdio, read, write).await
            } => r,
            _ = terminate => Ok(()),
        }
    } else {
        tokio::select! {
            r = async { match http { Some(h) => h.await?, None => Ok(()) } } => r,
            _ = terminate => Ok(()),
        }
    };
    shutdown.cancel();
    result
}

/// Registers the handlers for SIGTERM and SIGINT now; the future ends when
/// either arrives.
fn terminate() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        match (term, interrupt) {
            (Ok(mut term), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            (Ok(mut one), Err(_)) | (Err(_), Ok(mut one)) => {
                one.recv().await;
            }
            (Err(_), Err(_)) => std::future::pending().await,
        }
    }
}
