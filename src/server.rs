//! Starting execlayer: the engine, the MCP hub, the policy watcher and the doors.

use std::sync::Arc;
use std::time::Duration;

use rmcp::ServiceExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::audit::Door;
use crate::engine::Engine;
use crate::mcp::{Hub, McpServer};

/// A running core: the engine and the hub every door shares.
#[derive(Clone)]
pub struct Core {
    pub engine: Arc<Engine>,
    pub hub: Arc<Hub>,
}

impl Core {
    /// Starts the hub and the policy watcher (a poll every second, and SIGHUP).
    pub fn start(engine: Arc<Engine>, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let hub = Hub::start(&engine)?;
        spawn_policy_watcher(engine.clone(), shutdown);
        // Temp files a crash left behind are looked for only in the directories
        // the journal lists (see `StagingJournal`), never by walking the workspace.
        let state_dir = engine
            .settings
            .audit_log
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let journal = crate::fsutil::StagingJournal::register(engine.workspace.root(), &state_dir);
        tokio::task::spawn_blocking(move || {
            let removed = journal.sweep(std::time::Duration::from_secs(60));
            if removed > 0 {
                tracing::info!(removed, "removed temp files left by an interrupted write");
            }
        });
        let history = engine.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = history.audit.count_history() {
                tracing::warn!(error = %e, "cannot read the audit history for the dashboard's counts");
            }
        });
        Ok(Self { engine, hub })
    }

    pub fn mcp(&self, door: Door) -> McpServer {
        McpServer::new(self.engine.clone(), self.hub.clone(), door)
    }
}

fn spawn_policy_watcher(engine: Arc<Engine>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP: reloading the policy file");
                }
            }
            match engine.policy.reload() {
                Ok(true) => tracing::info!(path = %engine.policy.path().display(), "policy reloaded"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the policy file changed but does not validate; keeping the previous policy")
                }
            }
        }
    });
}

/// Serves MCP on one byte stream pair (stdio, or a duplex pipe in tests)
/// until the client closes it.
pub async fn serve_stream<R, W>(core: &Core, door: Door, read: R, write: W) -> anyhow::Result<()>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    match core.mcp(door).serve((read, write)).await {
        Ok(running) => {
            running.waiting().await?;
            Ok(())
        }
        // The client went away before starting a session: nothing to serve.
        Err(rmcp::service::ServerInitializeError::ConnectionClosed(_)) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("MCP session failed to start: {e}")),
    }
}
