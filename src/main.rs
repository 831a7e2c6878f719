//! The `execlayer` command: parse the CLI, load settings, log to stderr, run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use execlayer::audit::Door;
use execlayer::engine::Engine;
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
    /// Serve MCP over stdio (the default).
    Serve,
    /// Write the tools' and the policy file's JSON schemas.
    Schemas {
        /// Folder to write into.
        #[arg(long, default_value = "schemas")]
        out: PathBuf,
    },
    /// Print the derived model paths as shell `export` lines.
    Env,
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
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("execlayer: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Schemas { out } => {
            let n = execlayer::schemas::write_all(&out)?;
            eprintln!("wrote {n} schema files under {}", out.display());
            Ok(())
        }
        Command::Env => {
            let settings = Settings::load(&std::env::current_dir()?)?;
            print!("{}", execlayer::settings::env_exports(&settings));
            Ok(())
        }
        Command::Serve => {
            let settings = Settings::load(&std::env::current_dir()?)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let result = runtime.block_on(serve(settings));
            // stdin's reader thread cannot be interrupted; do not wait for it.
            runtime.shutdown_timeout(std::time::Duration::from_millis(200));
            result
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let engine = Engine::new(settings)?;
    tracing::info!(
        workspace = %engine.workspace.root().display(),
        policy = %engine.policy.path().display(),
        audit = %engine.audit.path().display(),
        "execlayer serving MCP on stdio"
    );
    let shutdown = CancellationToken::new();
    let core = Core::start(engine, shutdown.clone())?;
    let result = tokio::select! {
        r = serve_stream(&core, Door::Stdio, tokio::io::stdin(), tokio::io::stdout()) => r,
        _ = terminate() => Ok(()),
    };
    shutdown.cancel();
    result
}

async fn terminate() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
