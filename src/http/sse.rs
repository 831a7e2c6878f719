//! Legacy HTTP+SSE (protocol 2024-11-05 style): `GET /sse` opens a stream whose
//! first event names the endpoint (`/messages?sessionId=…`) to POST requests
//! to; responses and notifications come back on the stream as `message` events.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use http::StatusCode;
use rmcp::ServiceExt;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use serde::Deserialize;

use super::json_error;
use crate::audit::Door;
use crate::server::Core;

type Sessions = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<ClientJsonRpcMessage>>>>;

#[derive(Clone)]
struct SseState {
    core: Core,
    sessions: Sessions,
}

pub fn routes(core: Core) -> Router {
    let state = SseState {
        core,
        sessions: Arc::default(),
    };
    Router::new()
        .route("/sse", get(open).post(|| async { probe_refused() }))
        .route("/messages", post(message))
        .with_state(state)
}

/// The SDK's fallback probe (`POST /sse`) gets a fast 405.
fn probe_refused() -> Response {
    let mut response = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
        Some("GET /sse opens the legacy event stream; Streamable HTTP clients use /mcp".into()),
    );
    response
        .headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static("GET"));
    response
}

/// Removes the session when the client's stream goes away.
struct SessionGuard {
    id: String,
    sessions: Sessions,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

async fn open(State(state): State<SseState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let id = crate::policy::approvals::new_id();
    let (to_server, from_client) = mpsc::unbounded::<ClientJsonRpcMessage>();
    let (to_client, from_server) = mpsc::unbounded::<ServerJsonRpcMessage>();
    state
        .sessions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id.clone(), to_server);
    let server = state.core.mcp(Door::Http);
    tokio::spawn(async move {
        match server.serve((to_client, from_client)).await {
            Ok(running) => {
                let _ = running.waiting().await;
            }
            Err(e) => tracing::debug!(error = %e, "legacy SSE session ended before it started"),
        }
    });
    let guard = SessionGuard {
        id: id.clone(),
        sessions: state.sessions.clone(),
    };
    let endpoint = Event::default()
        .event("endpoint")
        .data(format!("/messages?sessionId={id}"));
    let messages = from_server.map(move |message| {
        let _keep = &guard;
        let data = serde_json::to_string(&message).unwrap_or_default();
        Ok(Event::default().event("message").data(data))
    });
    Sse::new(futures::stream::once(async { Ok(endpoint) }).chain(messages)).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
struct SessionQuery {
    #[serde(rename = "sessionId")]
    session_id: String,
}

async fn message(State(state): State<SseState>, Query(query): Query<SessionQuery>, body: Bytes) -> Response {
    let message: ClientJsonRpcMessage = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, "invalid JSON-RPC message", Some(e.to_string())),
    };
    let sender = state
        .sessions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&query.session_id)
        .cloned();
    match sender {
        Some(sender) if sender.unbounded_send(message).is_ok() => StatusCode::ACCEPTED.into_response(),
        _ => json_error(
            StatusCode::NOT_FOUND,
            "unknown session",
            Some("open a new stream with GET /sse".into()),
        ),
    }
}
