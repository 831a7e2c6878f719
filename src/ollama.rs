//! A small client for Ollama's HTTP API: `/api/version`, `/api/tags`, and
//! `/api/chat` with streamed NDJSON, with a stall timeout between chunks.

use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum OllamaError {
    #[error(
        "cannot reach Ollama at {url}: {message}. Start it with `ollama serve` (run `eval \"$(execlayer env)\"` first so it uses MODELS_ROOT), or set OLLAMA_BASE_URL"
    )]
    Unreachable { url: String, message: String },
    #[error("model `{0}` is not installed in Ollama (pull it with `ollama pull {0}`)")]
    ModelNotFound(String),
    #[error("Ollama answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("Ollama sent no data for {0} s; the model stalled (raise OLLAMA_STALL_TIMEOUT_SECS for slow machines)")]
    Stalled(u64),
    #[error("Ollama's stream broke: {0}")]
    Stream(String),
}

impl OllamaError {
    /// Whether trying another model could help.
    pub fn is_model_problem(&self) -> bool {
        matches!(
            self,
            OllamaError::ModelNotFound(_) | OllamaError::Status { .. } | OllamaError::Stream(_)
        )
    }
}

/// One installed model, from `/api/tags`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ModelInfo {
    pub name: String,
    #[serde(default)]
    pub size: u64,
}

/// What a finished chat produced.
#[derive(Debug, Default, Clone)]
pub struct ChatReply {
    pub model: String,
    pub content: String,
    pub thinking: String,
    pub tool_calls: Vec<Value>,
    pub done_reason: Option<String>,
    pub prompt_eval_count: u64,
    pub eval_count: u64,
    pub total_duration_ns: u64,
}

/// A chat request, as `/api/chat` takes it.
#[derive(Debug, Clone, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Value>,
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub think: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub options: serde_json::Map<String, Value>,
}

#[derive(Clone)]
pub struct Ollama {
    base: String,
    http: reqwest::Client,
    stall: Duration,
}

impl Ollama {
    pub fn new(base: &str, stall: Duration) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .no_proxy()
            .build()
            .unwrap_or_default();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            stall,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, e: reqwest::Error) -> OllamaError {
        OllamaError::Unreachable {
            url: self.base.clone(),
            message: e.to_string(),
        }
    }

    async fn get_json(&self, path: &str) -> Result<Value, OllamaError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.map_err(|e| OllamaError::Stream(e.to_string()))?;
        if status != 200 {
            return Err(OllamaError::Status {
                status,
                message: body["error"].as_str().unwrap_or("").to_owned(),
            });
        }
        Ok(body)
    }

    /// `GET /api/version`.
    pub async fn version(&self) -> Result<String, OllamaError> {
        Ok(self.get_json("/api/version").await?["version"]
            .as_str()
            .unwrap_or("")
            .to_owned())
    }

    /// `GET /api/tags`: the installed models.
    pub async fn models(&self) -> Result<Vec<ModelInfo>, OllamaError> {
        let body = self.get_json("/api/tags").await?;
        Ok(serde_json::from_value(body["models"].clone()).unwrap_or_default())
    }

    /// `POST /api/chat`, streamed; `on_chunk` hears (chunks so far, content so far).
    pub async fn chat(
        &self,
        request: &ChatRequest,
        mut on_chunk: impl FnMut(u64, &str),
    ) -> Result<ChatReply, OllamaError> {
        let response = self
            .http
            .post(format!("{}/api/chat", self.base))
            .json(request)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        if status != 200 {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let message = body["error"].as_str().unwrap_or("").to_owned();
            if status == 404 || message.contains("not found") {
                return Err(OllamaError::ModelNotFound(request.model.clone()));
            }
            return Err(OllamaError::Status { status, message });
        }
        let mut reply = ChatReply {
            model: request.model.clone(),
            ..Default::default()
        };
        let mut stream = response.bytes_stream();
        let mut buffer: Vec<u8> = Vec::new();
        let mut chunks = 0u64;
        loop {
            let next = tokio::time::timeout(self.stall, stream.next())
                .await
                .map_err(|_| OllamaError::Stalled(self.stall.as_secs()))?;
            let Some(bytes) = next else { break };
            let bytes = bytes.map_err(|e| OllamaError::Stream(e.to_string()))?;
            buffer.extend_from_slice(&bytes);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let chunk: Value = serde_json::from_slice(&line).map_err(|e| OllamaError::Stream(e.to_string()))?;
                if absorb(&mut reply, &chunk)? {
                    return Ok(reply);
                }
                chunks += 1;
                on_chunk(chunks, &reply.content);
            }
        }
        if !buffer.iter().all(u8::is_ascii_whitespace) {
            let chunk: Value = serde_json::from_slice(&buffer).map_err(|e| OllamaError::Stream(e.to_string()))?;
            if absorb(&mut reply, &chunk)? {
                return Ok(reply);
            }
        }
        if request.stream {
            Err(OllamaError::Stream("the stream ended before `done: true`".into()))
        } else {
            Ok(reply)
        }
    }
}

/// Adds one chunk to the reply; returns true on the final chunk.
fn absorb(reply: &mut ChatReply, chunk: &Value) -> Result<bool, OllamaError> {
    if let Some(error) = chunk["error"].as_str() {
        return Err(OllamaError::Stream(error.to_owned()));
    }
    if let Some(text) = chunk["message"]["content"].as_str() {
        reply.content.push_str(text);
    }
    if let Some(text) = chunk["message"]["thinking"].as_str() {
        reply.thinking.push_str(text);
    }
    if let Some(calls) = chunk["message"]["tool_calls"].as_array() {
        reply.tool_calls.extend(calls.iter().cloned());
    }
    if let Some(model) = chunk["model"].as_str() {
        reply.model = model.to_owned();
    }
    if chunk["done"] == json!(true) {
        reply.done_reason = chunk["done_reason"].as_str().map(str::to_owned);
        reply.prompt_eval_count = chunk["prompt_eval_count"].as_u64().unwrap_or(0);
        reply.eval_count = chunk["eval_count"].as_u64().unwrap_or(0);
        reply.total_duration_ns = chunk["total_duration"].as_u64().unwrap_or(0);
        return Ok(true);
    }
    Ok(false)
}
