//! Brain status: where the local models live (from `MODELS_ROOT`), whether
//! Ollama answers, and whether the reasoning and fallback models are installed.

use std::path::Path;

use schemars::JsonSchema;
use serde::Serialize;

use crate::ollama::Ollama;
use crate::policy::{ApprovalMode, Policy};
use crate::settings::Settings;

/// A configured path and whether it exists.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PathStatus {
    pub path: Option<String>,
    pub exists: bool,
}

impl PathStatus {
    fn of(path: Option<&Path>) -> Self {
        Self {
            path: path.map(|p| p.display().to_string()),
            exists: path.is_some_and(Path::exists),
        }
    }
}

/// One model the server would use.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ModelStatus {
    pub name: String,
    /// Installed in Ollama (false when Ollama cannot be reached).
    pub present: bool,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct OllamaStatus {
    pub url: String,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why it is not reachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Installed models.
    pub models: Vec<String>,
    pub reasoning_model: ModelStatus,
    pub fallback_model: ModelStatus,
}

/// Whether the audit log can take records (calls that change anything need it).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AuditStatus {
    pub path: String,
    pub writable: bool,
    /// Why not, while it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BrainStatus {
    pub models_root: PathStatus,
    pub ollama_models_path: PathStatus,
    pub xtts_model_path: PathStatus,
    pub tts_home: PathStatus,
    pub voice_path: PathStatus,
    pub ollama: OllamaStatus,
    pub workspace_root: String,
    pub approval_mode: ApprovalMode,
    pub enabled_tools: Vec<String>,
    /// What commands may touch: the Landlock ABI, seccomp, namespaces, and what each call gets.
    pub sandbox: crate::sandbox::SandboxReport,
    /// The running server's audit log (absent from `execlayer status`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditStatus>,
}

/// Gathers the status; never fails (an unreachable Ollama is part of the answer).
pub async fn status(settings: &Settings, policy: &Policy, sandbox: &crate::sandbox::Sandbox) -> BrainStatus {
    let m = &settings.models;
    let ollama = Ollama::new(&settings.ollama.base_url, settings.ollama.stall_timeout);
    let (version, models) = tokio::join!(ollama.version(), ollama.models());
    let (reachable, error) = match (&version, &models) {
        (Ok(_), Ok(_)) => (true, None),
        (Err(e), _) | (_, Err(e)) => (false, Some(e.to_string())),
    };
    let names: Vec<String> = models
        .map(|list| list.into_iter().map(|m| m.name).collect())
        .unwrap_or_default();
    let present = |want: &str| names.iter().any(|n| model_matches(n, want));
    BrainStatus {
        models_root: PathStatus::of(m.models_root.as_deref()),
        ollama_models_path: PathStatus::of(m.ollama_models.as_deref()),
        xtts_model_path: PathStatus::of(m.xtts_model_path.as_deref()),
        tts_home: PathStatus::of(m.tts_home.as_deref()),
        voice_path: PathStatus::of(m.voice_path.as_deref()),
        ollama: OllamaStatus {
            url: settings.ollama.base_url.clone(),
            reachable,
            version: version.ok(),
            error,
            reasoning_model: ModelStatus {
                name: settings.ollama.reasoning_model.clone(),
                present: present(&settings.ollama.reasoning_model),
            },
            fallback_model: ModelStatus {
                name: settings.ollama.fallback_model.clone(),
                present: present(&settings.ollama.fallback_model),
            },
            models: names,
        },
        workspace_root: settings.workspace_root.display().to_string(),
        approval_mode: policy.approval_mode,
        enabled_tools: policy
            .tools
            .iter()
            .filter(|(_, t)| t.enabled)
            .map(|(n, _)| n.clone())
            .collect(),
        sandbox: sandbox.report(),
        audit: None,
    }
}

/// Ollama names `llama3` and `llama3:latest` alike.
pub fn model_matches(installed: &str, wanted: &str) -> bool {
    installed == wanted || (!wanted.contains(':') && installed == format!("{wanted}:latest"))
}
