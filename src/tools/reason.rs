//! `reason`: ask the local Ollama reasoning model, falling back to a second model.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, json};

use super::{Annotations, Tool, ToolContext, ToolError, truncate_str};
use crate::fsutil::looks_binary;
use crate::ollama::{ChatRequest, Ollama, OllamaError};
use crate::policy::Risk;
use crate::workspace::Access;

/// Most bytes taken from one context file, and from all of them.
pub const MAX_CONTEXT_FILE_BYTES: usize = 64 * 1024;
pub const MAX_CONTEXT_BYTES: usize = 256 * 1024;

pub struct Reason;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The question or task for the reasoning model.
    pub prompt: String,
    /// An optional system message.
    #[serde(default)]
    pub system: Option<String>,
    /// Workspace files to include as context (each at most 64 KiB, 256 KiB in all).
    #[serde(default)]
    pub context_paths: Option<Vec<String>>,
    /// Ask a thinking model to return its reasoning separately.
    #[serde(default)]
    pub think: Option<bool>,
    /// Sampling temperature (0 to 2).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Most tokens to generate (1 to 32768).
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// The model that answered.
    pub model: String,
    /// True when the primary model failed and the fallback answered.
    pub fell_back: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// The answer.
    pub content: String,
    /// The model's separate reasoning, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    pub done_reason: Option<String>,
    pub prompt_eval_count: u64,
    pub eval_count: u64,
    pub total_duration_ms: u64,
    /// Context files that were cut to fit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub truncated_context: Vec<String>,
}

impl Tool for Reason {
    const NAME: &'static str = "reason";
    const TITLE: &'static str = "Ask the reasoning model";
    const DESCRIPTION: &'static str = "Ask the local reasoning model (Ollama, OLLAMA_REASONING_MODEL) a question, optionally with workspace files as context. If the model is not installed or fails before answering, the fallback model (OLLAMA_REASONING_FALLBACK) is tried once and the result says so. Returns the answer, the model's separate thinking when asked for, and token counts.";
    const RISK: Risk = Risk::Low;
    const ANNOTATIONS: Annotations = Annotations {
        read_only: true,
        destructive: false,
        idempotent: false,
        open_world: true,
    };
    type Params = Params;
    type Output = Output;

    fn describe(&self, ctx: &ToolContext, params: &Params) -> String {
        format!(
            "ask {} about: {}",
            ctx.settings.ollama.reasoning_model,
            truncate_str(&params.prompt, 200).0
        )
    }

    async fn run(&self, ctx: &ToolContext, params: Params) -> Result<Output, ToolError> {
        if params.prompt.trim().is_empty() {
            return Err(ToolError::new("prompt is empty; ask a question"));
        }
        if let Some(t) = params.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(ToolError::new(format!("temperature must be from 0 to 2; got {t}")));
        }
        if let Some(n) = params.max_tokens
            && !(1..=32_768).contains(&n)
        {
            return Err(ToolError::new(format!("max_tokens must be from 1 to 32768; got {n}")));
        }
        let (context, truncated_context) = read_context(ctx, params.context_paths.as_deref().unwrap_or_default())?;
        let mut messages = Vec::new();
        if let Some(system) = &params.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.push(json!({"role": "user", "content": format!("{}{context}", params.prompt)}));
        let mut options = Map::new();
        if let Some(t) = params.temperature {
            options.insert("temperature".into(), json!(t));
        }
        if let Some(n) = params.max_tokens {
            options.insert("num_predict".into(), json!(n));
        }
        let settings = &ctx.settings.ollama;
        let ollama = Ollama::new(&settings.base_url, settings.stall_timeout);
        let mut request = ChatRequest {
            model: settings.reasoning_model.clone(),
            messages,
            stream: true,
            think: params.think,
            tools: None,
            options,
        };
        let cancel = ctx.cancel.clone();
        let first = tokio::select! {
            r = attempt(&ollama, &request, &ctx.progress) => r,
            _ = cancel.cancelled() => return Err(ToolError::new("reason was cancelled")),
        };
        let (reply, fell_back, fallback_reason) = match first {
            Ok(reply) => (reply, false, None),
            Err((e, produced))
                if !produced && e.is_model_problem() && settings.fallback_model != settings.reasoning_model =>
            {
                let reason = e.to_string();
                request.model = settings.fallback_model.clone();
                let second = tokio::select! {
                    r = attempt(&ollama, &request, &ctx.progress) => r,
                    _ = cancel.cancelled() => return Err(ToolError::new("reason was cancelled")),
                };
                match second {
                    Ok(reply) => (reply, true, Some(reason)),
                    Err((e2, _)) => {
                        return Err(ToolError::new(format!(
                            "the reasoning model failed ({reason}) and so did the fallback: {e2}"
                        )));
                    }
                }
            }
            Err((e, _)) => return Err(ToolError::new(e.to_string())),
        };
        Ok(Output {
            model: reply.model,
            fell_back,
            fallback_reason,
            content: reply.content,
            thinking: (!reply.thinking.is_empty()).then_some(reply.thinking),
            done_reason: reply.done_reason,
            prompt_eval_count: reply.prompt_eval_count,
            eval_count: reply.eval_count,
            total_duration_ms: reply.total_duration_ns / 1_000_000,
            truncated_context,
        })
    }

    fn render(output: Output) -> String {
        let mut text = output.content;
        if output.fell_back {
            text.push_str(&format!(
                "\n\n[execlayer: answered by the fallback model {} because {}]",
                output.model,
                output.fallback_reason.as_deref().unwrap_or("the primary failed")
            ));
        }
        text
    }
}

/// One chat; on failure also says whether any output had arrived (then no
/// fallback is tried, as the model did start answering).
async fn attempt(
    ollama: &Ollama,
    request: &ChatRequest,
    progress: &super::Progress,
) -> Result<crate::ollama::ChatReply, (OllamaError, bool)> {
    let mut seen = false;
    let result = ollama
        .chat(request, |chunks, _| {
            seen = true;
            progress.report(chunks as f64, None, format!("{}: {chunks} chunks", request.model));
        })
        .await;
    result.map_err(|e| (e, seen))
}

/// Reads the context files into a block appended to the prompt.
fn read_context(ctx: &ToolContext, paths: &[String]) -> Result<(String, Vec<String>), ToolError> {
    let mut block = String::new();
    let mut cut = Vec::new();
    for raw in paths {
        let path = ctx.workspace.resolve(raw, Access::Read)?;
        let bytes = std::fs::read(path.physical())
            .map_err(|e| ToolError::new(format!("cannot read context file {}: {e}", path.display())))?;
        if looks_binary(&bytes) {
            return Err(ToolError::new(format!(
                "context file {} is binary; give text files",
                path.display()
            )));
        }
        let text = String::from_utf8_lossy(&bytes);
        let room = MAX_CONTEXT_BYTES
            .saturating_sub(block.len())
            .min(MAX_CONTEXT_FILE_BYTES);
        let (taken, truncated) = truncate_str(&text, room);
        if truncated {
            cut.push(path.display());
        }
        block.push_str(&format!("\n\n--- file: {} ---\n{taken}", path.display()));
        if truncated {
            block.push_str("\n[cut to fit]");
        }
    }
    Ok((block, cut))
}
