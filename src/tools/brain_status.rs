//! `brain_status`: model paths, Ollama reachability and models, and the policy in force.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Annotations, Tool, ToolContext, ToolError};
use crate::brain::{self, BrainStatus, PathStatus};
use crate::policy::Risk;

pub struct BrainStatusTool;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {}

impl Tool for BrainStatusTool {
    const NAME: &'static str = "brain_status";
    const TITLE: &'static str = "Model and server status";
    const DESCRIPTION: &'static str = "Report where the local models live (MODELS_ROOT and the Ollama, XTTS, TTS and voice paths derived from it, each with whether it exists), whether Ollama is reachable and its version, which models are installed and whether the reasoning and fallback models are among them, plus the workspace root, the approval mode, the enabled tools, the sandbox commands run in (the Landlock ABI, seccomp, namespaces, what each command may read and write, whether it has network), and whether the audit log can be written (while it cannot, calls that change anything are refused).";
    const RISK: Risk = Risk::Low;
    const ANNOTATIONS: Annotations = Annotations::READ_ONLY;
    type Params = Params;
    type Output = BrainStatus;

    fn describe(&self, _ctx: &ToolContext, _params: &Params) -> String {
        "report model and server status".to_owned()
    }

    async fn run(&self, ctx: &ToolContext, _params: Params) -> Result<BrainStatus, ToolError> {
        let mut status = brain::status(&ctx.settings, &ctx.policy, &ctx.sandbox).await;
        if let Some(engine) = ctx.engine.upgrade() {
            // A fresh check, so the answer is true now (it reserves log space; nothing else).
            let error = engine.audit.ready_for_change().err();
            status.audit = Some(brain::AuditStatus {
                path: engine.audit.path().display().to_string(),
                writable: error.is_none(),
                error,
            });
        }
        Ok(status)
    }

    fn render(s: BrainStatus) -> String {
        render_text(&s)
    }
}

/// The status as readable lines (also `execlayer status`).
pub fn render_text(s: &BrainStatus) -> String {
    let path = |name: &str, p: &PathStatus| match &p.path {
        Some(path) => format!("{name}: {path} ({})\n", if p.exists { "exists" } else { "missing" }),
        None => format!("{name}: (not set)\n"),
    };
    let mut text = String::new();
    text.push_str(&path("MODELS_ROOT", &s.models_root));
    text.push_str(&path("OLLAMA_MODELS", &s.ollama_models_path));
    text.push_str(&path("XTTS_MODEL_PATH", &s.xtts_model_path));
    text.push_str(&path("TTS_HOME", &s.tts_home));
    text.push_str(&path("voice", &s.voice_path));
    let o = &s.ollama;
    if o.reachable {
        text.push_str(&format!(
            "Ollama {} at {}: {} models\n",
            o.version.as_deref().unwrap_or("?"),
            o.url,
            o.models.len()
        ));
    } else {
        text.push_str(&format!(
            "Ollama at {} is NOT reachable: {}\n",
            o.url,
            o.error.as_deref().unwrap_or("")
        ));
    }
    for (role, m) in [("reasoning", &o.reasoning_model), ("fallback", &o.fallback_model)] {
        text.push_str(&format!(
            "{role} model {}: {}\n",
            m.name,
            if m.present { "installed" } else { "missing" }
        ));
    }
    text.push_str(&format!(
        "workspace: {}\napproval_mode: {}\nenabled tools: {}\n",
        s.workspace_root,
        s.approval_mode.as_str(),
        s.enabled_tools.join(", ")
    ));
    let b = &s.sandbox;
    text.push_str(&format!(
        "sandbox: {} ({})\n  landlock: {}\n  seccomp: {}\n  namespaces: {}\n  git metadata: {}\n  each command: {}\n",
        b.mode.as_str(),
        if b.enforced { "enforced" } else { "NOT enforced" },
        b.landlock,
        b.seccomp,
        b.namespaces,
        b.git_metadata,
        b.each_call
    ));
    if let Some(a) = &s.audit {
        match &a.error {
            None => text.push_str(&format!("audit log: {} (writable)\n", a.path)),
            Some(e) => text.push_str(&format!(
                "audit log: {} NOT writable: {e}; calls that change anything are refused\n",
                a.path
            )),
        }
    }
    text
}
