//! The HTTP door (axum): MCP over Streamable HTTP at `/mcp`, the legacy
//! HTTP+SSE endpoints, the REST API and the dashboard, behind one guard.

pub mod guard;
pub mod rest;
pub mod sse;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::audit::Door;
use crate::server::Core;

/// How long shutdown waits for open connections to finish.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Largest request body accepted by default (a patch or a file may be large).
pub const DEFAULT_MAX_BODY_BYTES: usize = 20 * 1024 * 1024;

/// How the HTTP door is exposed.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Extra host names accepted in `Host` (loopback names always are).
    pub allowed_hosts: Vec<String>,
    /// Extra origins accepted in `Origin` (the server's own always is).
    pub allowed_origins: Vec<String>,
    pub max_body_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// A JSON error body: `{"error": ..., "detail": ...}`.
pub fn json_error(status: StatusCode, error: &str, detail: Option<String>) -> Response {
    let mut body = json!({ "error": error });
    if let Some(detail) = detail {
        body["detail"] = json!(detail);
    }
    (status, axum::Json(body)).into_response()
}

/// Every route, behind the guard.
pub fn router(core: Core, options: &HttpOptions, shutdown: CancellationToken) -> Router {
    let access = Arc::new(guard::Access::new(
        core.engine.settings.token.as_deref(),
        &options.allowed_hosts,
        &options.allowed_origins,
    ));
    let mcp_core = core.clone();
    let mut config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_cancellation_token(shutdown.child_token());
    config.max_request_body_bytes = options.max_body_bytes;
    let mcp = StreamableHttpService::new(
        move || Ok(mcp_core.mcp(Door::Http)),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    Router::new()
        .route("/healthz", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .route("/", get(dashboard))
        .route_service("/mcp", mcp)
        .layer(axum::middleware::from_fn(session_delete_ok))
        .merge(sse::routes(core.clone()))
        .nest("/api/v1", rest::routes(core))
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(access, guard::guard))
}

/// The dashboard: one self-contained page, compiled into the binary.
const DASHBOARD: &str = include_str!("dashboard/index.html");

async fn dashboard() -> Response {
    (
        [
            (http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (http::header::CACHE_CONTROL, "no-store"),
            (
                http::header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
            ),
            (http::header::X_FRAME_OPTIONS, "DENY"),
        ],
        DASHBOARD,
    )
        .into_response()
}

/// rmcp answers a session `DELETE` with 202; clients (the Python SDK) expect
/// 200 or 204 for a finished termination, so say 204.
async fn session_delete_ok(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let is_delete = request.method() == http::Method::DELETE && request.uri().path() == "/mcp";
    let mut response = next.run(request).await;
    if is_delete && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

/// Serves HTTP on `listener` until `shutdown` is cancelled.
pub async fn serve_http(
    core: Core,
    listener: TcpListener,
    options: HttpOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use axum::serve::ListenerExt;
    if let Ok(addr) = listener.local_addr() {
        let _ = core.engine.http_door.set(addr.to_string());
    }
    let app = router(core, &options, shutdown.clone());
    // Small JSON answers must not wait for delayed ACKs (Nagle): ~40 ms each.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    // Graceful shutdown waits for open connections; a client that stalls
    // mid-request must not hold the server up for ever.
    let grace = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = server => result?,
        () = grace => tracing::warn!("connections still open {} s after shutdown; closing them", SHUTDOWN_GRACE.as_secs()),
    }
    Ok(())
}
