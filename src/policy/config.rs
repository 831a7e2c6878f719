//! The policy file: approval mode, budgets, per-tool switches and risks, rules.
//!
//! [`PolicyFile`] is what `config/execution_layer_config.json` holds, parsed
//! strictly (unknown keys and bad values are errors that name them; keys left
//! out take their defaults); [`Policy`] is the validated form with a setting
//! for every registered tool.

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::rules::{Rule, RuleDecision, RuleSet};

/// How dangerous a call is; approvals are needed from `Medium` up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }
}

/// Whether risky calls need a human yes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// Every enabled tool runs without asking.
    Auto,
    /// Medium- and high-risk calls run only after an approval.
    RequireApproval,
}

impl ApprovalMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMode::Auto => "auto",
            ApprovalMode::RequireApproval => "require_approval",
        }
    }
}

/// One tool's switch and risk level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolPolicy {
    /// Disabled tools are hidden from `tools/list` and refused when called.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Overrides the tool's built-in risk level.
    pub risk_level: Risk,
}

fn yes() -> bool {
    true
}

/// The policy file as written on disk (`config/execution_layer_config.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// `require_approval` (the default): medium- and high-risk calls need a human yes; `auto`: none do (rules may still ask).
    #[serde(default = "default_mode")]
    pub approval_mode: ApprovalMode,
    /// How long an operator-granted approval id stays valid, in seconds (1 to 86400). Default 300.
    #[serde(default = "default_ttl")]
    pub approval_ttl_seconds: u64,
    /// How long to wait for an answer to an approval question, in seconds (1 to 3600). Default 120.
    #[serde(default = "default_timeout")]
    pub approval_timeout_seconds: u64,
    /// Most steps one playbook run may execute (1 to 1000). Default 10.
    #[serde(default = "default_steps")]
    pub max_steps_per_run: u32,
    /// Most retries of one failing playbook step (0 to 10). Default 2.
    #[serde(default = "default_retries")]
    pub max_retries_per_tool: u32,
    /// Per-tool settings; a tool left out gets its built-in defaults.
    #[serde(default)]
    pub tools: BTreeMap<String, ToolPolicy>,
    /// Rules per command and path, checked before risk: of the rules matching a call the strictest wins (`forbid` > `ask` > `allow`). Left out: the shipped rules (read-only git commands and `ls` are allowed); `[]` for none.
    #[serde(default = "shipped_rules")]
    pub rules: RuleSet,
}

fn default_mode() -> ApprovalMode {
    ApprovalMode::RequireApproval
}
fn default_ttl() -> u64 {
    300
}
fn default_timeout() -> u64 {
    120
}
fn default_steps() -> u32 {
    10
}
fn default_retries() -> u32 {
    2
}

/// The rules the shipped policy carries: read-only git commands and `ls` run without asking.
pub fn shipped_rules() -> RuleSet {
    let allow = |command: &str| Rule {
        tool: "shell_exec".into(),
        command: Some(command.into()),
        path: None,
        decision: RuleDecision::Allow,
        reason: None,
        network: None,
        sandbox: None,
    };
    let rules = ["git status", "git diff", "git log", "git show", "ls"]
        .into_iter()
        .map(allow)
        .collect();
    RuleSet::new(rules).unwrap_or_default()
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}: cannot read: {message}")]
    Read { path: String, message: String },
    #[error("{path}: cannot write: {message}")]
    Write { path: String, message: String },
}

/// The validated policy: every registered tool has an entry.
pub type Policy = PolicyFile;

impl PolicyFile {
    /// The built-in policy (identical to the shipped file).
    pub fn defaults(tool_risks: &[(&str, Risk)]) -> Self {
        Self {
            approval_mode: default_mode(),
            approval_ttl_seconds: default_ttl(),
            approval_timeout_seconds: default_timeout(),
            max_steps_per_run: default_steps(),
            max_retries_per_tool: default_retries(),
            rules: shipped_rules(),
            tools: tool_risks
                .iter()
                .map(|(name, risk)| {
                    (
                        (*name).to_owned(),
                        ToolPolicy {
                            enabled: true,
                            risk_level: *risk,
                        },
                    )
                })
                .collect(),
        }
    }

    /// Parses and validates `text`; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str, tool_risks: &[(&str, Risk)]) -> Result<Self, PolicyError> {
        let invalid = |message: String| PolicyError::Invalid {
            path: origin.to_owned(),
            message,
        };
        let mut file: PolicyFile = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        file.validate(tool_risks).map_err(invalid)?;
        for (name, risk) in tool_risks {
            file.tools.entry((*name).to_owned()).or_insert(ToolPolicy {
                enabled: true,
                risk_level: *risk,
            });
        }
        Ok(file)
    }

    /// Checks ranges and tool names; the message names the key.
    pub fn validate(&self, tool_risks: &[(&str, Risk)]) -> Result<(), String> {
        let range = |key: &str, value: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&value) {
                Ok(())
            } else {
                Err(format!("`{key}` is {value}; it must be from {lo} to {hi}"))
            }
        };
        range("approval_ttl_seconds", self.approval_ttl_seconds, 1, 86_400)?;
        range("approval_timeout_seconds", self.approval_timeout_seconds, 1, 3_600)?;
        range("max_steps_per_run", self.max_steps_per_run.into(), 1, 1_000)?;
        range("max_retries_per_tool", self.max_retries_per_tool.into(), 0, 10)?;
        for name in self.tools.keys() {
            if !tool_risks.iter().any(|(known, _)| known == name) {
                let known: Vec<&str> = tool_risks.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "`tools.{name}` is not a known tool; known tools: {}",
                    known.join(", ")
                ));
            }
        }
        let known: Vec<&str> = tool_risks.iter().map(|(n, _)| *n).collect();
        self.rules.validate_tools(&known)
    }

    /// Reads the file at `path`; a missing file means the defaults.
    pub fn load(path: &Path, tool_risks: &[(&str, Risk)]) -> Result<Self, PolicyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &path.display().to_string(), tool_risks),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::defaults(tool_risks)),
            Err(e) => Err(PolicyError::Read {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// Pretty JSON as it is written to disk.
    pub fn to_pretty_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Whether `tool` is enabled (unknown tools are not).
    pub fn enabled(&self, tool: &str) -> bool {
        self.tools.get(tool).is_some_and(|t| t.enabled)
    }

    /// The configured risk of `tool` (unknown tools count as high).
    pub fn risk(&self, tool: &str) -> Risk {
        self.tools.get(tool).map_or(Risk::High, |t| t.risk_level)
    }
}
