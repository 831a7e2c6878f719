//! A test double of Ollama's HTTP API on loopback, following its documented
//! shapes: `GET /api/version`, `GET /api/tags`, `POST /api/chat` (streamed
//! NDJSON by default, one JSON object with `"stream": false`), and the 404
//! `{"error":"model \"x\" not found, try pulling it first"}` for a missing model.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// How a model behaves.
#[derive(Clone, Debug)]
pub enum Script {
    /// Streams `content` word by word (and `thinking` first, when set).
    Answer { content: String, thinking: Option<String> },
    /// Sends one chunk, then nothing more (never `done`).
    Stall,
    /// Answers 500 with an error body.
    Fail,
    /// Replies in turn: each call takes the next reply (tool calls or text).
    Turns(Vec<Value>),
}

#[derive(Default)]
struct Inner {
    models: HashMap<String, Script>,
    /// Every chat request received, in order.
    requests: Vec<Value>,
    turn: usize,
}

#[derive(Clone, Default)]
pub struct FakeOllama {
    inner: Arc<Mutex<Inner>>,
}

pub struct RunningOllama {
    pub fake: FakeOllama,
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl RunningOllama {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Value> {
        self.fake.inner.lock().unwrap().requests.clone()
    }
}

impl Drop for RunningOllama {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl FakeOllama {
    pub fn with_model(self, name: &str, script: Script) -> Self {
        self.inner.lock().unwrap().models.insert(name.to_owned(), script);
        self
    }

    pub async fn start(self) -> RunningOllama {
        let app = axum::Router::new()
            .route("/api/version", get(|| async { Json(json!({"version": "0.12.3"})) }))
            .route("/api/tags", get(tags))
            .route("/api/chat", post(chat))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await;
        });
        RunningOllama { fake: self, addr, stop }
    }
}

async fn tags(State(fake): State<FakeOllama>) -> Json<Value> {
    let inner = fake.inner.lock().unwrap();
    let mut names: Vec<&String> = inner.models.keys().collect();
    names.sort();
    let models: Vec<Value> = names
        .iter()
        .map(|n| {
            json!({"name": n, "model": n, "modified_at": "2026-11-01T10:00:00Z", "size": 4_683_087_332u64,
                   "digest": "sha256:0000", "details": {"format": "gguf", "family": "qwen2", "parameter_size": "7.6B", "quantization_level": "Q4_K_M"}})
        })
        .collect();
    Json(json!({ "models": models }))
}

fn chunk(model: &str, content: &str, thinking: Option<&str>) -> Value {
    let mut message = json!({"role": "assistant", "content": content});
    if let Some(t) = thinking {
        message["thinking"] = json!(t);
    }
    json!({"model": model, "created_at": "2026-11-25T10:00:00Z", "message": message, "done": false})
}

fn done(model: &str, message: Value) -> Value {
    json!({"model": model, "created_at": "2026-11-25T10:00:01Z", "message": message, "done": true,
           "done_reason": "stop", "total_duration": 1_500_000_000u64, "load_duration": 1_000_000u64,
           "prompt_eval_count": 26, "prompt_eval_duration": 100_000_000u64, "eval_count": 42, "eval_duration": 900_000_000u64})
}

async fn chat(State(fake): State<FakeOllama>, Json(request): Json<Value>) -> Response {
    let model = request["model"].as_str().unwrap_or("").to_owned();
    let stream = request["stream"].as_bool().unwrap_or(true);
    let script = {
        let mut inner = fake.inner.lock().unwrap();
        inner.requests.push(request.clone());
        let script = inner.models.get(&model).cloned();
        match script {
            Some(Script::Turns(turns)) => {
                let reply = turns
                    .get(inner.turn)
                    .cloned()
                    .unwrap_or(json!({"role": "assistant", "content": "(no more turns)"}));
                inner.turn += 1;
                Some((Script::Turns(Vec::new()), Some(reply)))
            }
            other => other.map(|s| (s, None)),
        }
    };
    let Some((script, turn)) = script else {
        let error = format!("model \"{model}\" not found, try pulling it first");
        return (http::StatusCode::NOT_FOUND, Json(json!({ "error": error }))).into_response();
    };
    let lines: Vec<Value> = match (&script, turn) {
        (_, Some(reply)) => vec![done(&model, reply)],
        (Script::Fail, _) => {
            return (
                http::StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "llama runner process has terminated"})),
            )
                .into_response();
        }
        (Script::Answer { content, thinking }, _) => {
            let mut lines = Vec::new();
            if let Some(t) = thinking {
                lines.push(chunk(&model, "", Some(t)));
            }
            for word in content.split_inclusive(' ') {
                lines.push(chunk(&model, word, None));
            }
            lines.push(done(&model, json!({"role": "assistant", "content": ""})));
            lines
        }
        (Script::Stall, _) => vec![chunk(&model, "Thinking", None)],
        (Script::Turns(_), None) => Vec::new(),
    };
    if !stream {
        // One object: the final message with everything in it.
        let mut content = String::new();
        let mut last = json!({});
        for l in &lines {
            content.push_str(l["message"]["content"].as_str().unwrap_or(""));
            last = l.clone();
        }
        if last["message"]["tool_calls"].is_null() {
            last["message"]["content"] = json!(content);
        }
        return Json(last).into_response();
    }
    let stall = matches!(script, Script::Stall);
    let body = futures::stream::unfold((lines.into_iter(), stall), |(mut it, stall)| async move {
        match it.next() {
            Some(line) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Some((Ok::<Bytes, Infallible>(Bytes::from(format!("{line}\n"))), (it, stall)))
            }
            None if stall => {
                tokio::time::sleep(Duration::from_secs(3_600)).await;
                None
            }
            None => None,
        }
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(body))
        .unwrap()
}
