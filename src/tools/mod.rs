//! The tools: one file each, and the registry that names them all.
//!
//! A tool implements [`Tool`]: typed `Params` and `Output` (their JSON schemas
//! are the MCP `inputSchema` and `outputSchema`), a default risk, annotations, a
//! readable rendering of its output, and `run`. [`Registry`] erases the types so
//! the engine can list tools and turn raw JSON arguments into a [`Prepared`]
//! call, which can describe itself for an approval before it runs.

pub mod apply_patch;
pub mod brain_status;
pub mod edit_file;
pub mod filesystem_list;
pub mod filesystem_read;
pub mod filesystem_search;
pub mod filesystem_write;
pub mod git_diff;
pub mod git_status;
pub mod reason;
pub mod run_playbook;
pub mod shell_exec;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::policy::{Risk, Subject};
use crate::settings::Settings;
use crate::workspace::{PathError, Workspace};

/// Name of the argument every tool accepts to present an operator's approval.
pub const APPROVAL_ID_ARG: &str = "approval_id";

/// MCP tool annotations: hints for clients, never trusted for security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Annotations {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub open_world: bool,
}

impl Annotations {
    pub const READ_ONLY: Self = Self {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: false,
    };
}

/// A failure of the work itself (not of the request): the caller sees it as a
/// tool result with `isError: true` and a message that says what to do.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{message}")]
pub struct ToolError {
    pub message: String,
}

impl ToolError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl From<PathError> for ToolError {
    fn from(e: PathError) -> Self {
        Self::new(e.to_string())
    }
}

/// Reports progress of a long call to whoever asked (a no-op by default).
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<ProgressFn>>);

/// Receives (progress, total, message).
type ProgressFn = dyn Fn(f64, Option<f64>, String) + Send + Sync;

impl Progress {
    pub fn new(report: impl Fn(f64, Option<f64>, String) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(report)))
    }

    pub fn report(&self, progress: f64, total: Option<f64>, message: impl Into<String>) {
        if let Some(f) = &self.0 {
            f(progress, total, message.into());
        }
    }
}

/// What a running tool may use.
#[derive(Clone)]
pub struct ToolContext {
    pub workspace: Arc<Workspace>,
    pub settings: Arc<Settings>,
    /// Cancelled when the caller gives up; long tools stop and clean up.
    pub cancel: CancellationToken,
    pub progress: Progress,
    /// The policy in force when the call started.
    pub policy: Arc<crate::policy::Policy>,
    /// The engine, for tools that make calls of their own (playbooks).
    pub engine: std::sync::Weak<crate::engine::Engine>,
    /// The workspace's git repository, kept open across calls.
    pub git: Arc<crate::git::RepoCache>,
}

/// One content block of a result: text the work produced, or a note that
/// execlayer adds about it (which lines were shown, how to go on). Notes travel
/// in blocks of their own so that an agent copying a file's text back never
/// copies a note with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Block {
    pub text: String,
    /// True for execlayer's note, false for the work's own text.
    pub note: bool,
}

impl Block {
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            note: false,
        }
    }

    pub fn note(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            note: true,
        }
    }
}

/// A tool's result: a readable text block and the structured content.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    /// The main text: the work's own blocks, joined (for most tools the one block).
    pub text: String,
    /// Every content block in order, when there is more than the main text
    /// (notes, several files); empty means one block holding `text`.
    pub blocks: Vec<Block>,
    pub structured: Value,
    /// The work ran but failed (e.g. a non-zero exit): an error result with output.
    pub is_error: bool,
}

impl ToolOutput {
    /// Builds the output from rendered blocks, keeping a lone text block as
    /// `text` alone (no copy).
    pub fn from_blocks(mut blocks: Vec<Block>, structured: Value, is_error: bool) -> Self {
        if blocks.len() == 1 && !blocks[0].note {
            let text = blocks.pop().map(|b| b.text).unwrap_or_default();
            return Self {
                text,
                blocks,
                structured,
                is_error,
            };
        }
        let mut text: String = blocks.iter().filter(|b| !b.note).map(|b| b.text.as_str()).collect();
        if text.is_empty() && is_error {
            // A failure with notes only (e.g. no file could be read): the
            // notes are what the audit log and REST callers should see.
            text = blocks.iter().map(|b| b.text.as_str()).collect::<Vec<_>>().join("\n");
        }
        Self {
            text,
            blocks,
            structured,
            is_error,
        }
    }
}

/// One tool, with typed parameters and output.
pub trait Tool: Send + Sync + 'static {
    const NAME: &'static str;
    const TITLE: &'static str;
    const DESCRIPTION: &'static str;
    const RISK: Risk;
    const ANNOTATIONS: Annotations;
    type Params: DeserializeOwned + JsonSchema + Send + Sync + 'static;
    type Output: Serialize + JsonSchema + Send + 'static;

    /// A dry run changes nothing and counts as low risk.
    fn is_dry_run(_params: &Self::Params) -> bool {
        false
    }

    /// Resolves what the call refers to, once, before risk and approval are
    /// decided (a named playbook becomes its steps).
    fn bind(&self, _ctx: &ToolContext, _params: &mut Self::Params) -> Result<(), ToolError> {
        Ok(())
    }

    /// Whether the work can succeed, checked before a human is asked to
    /// approve it (a patch that does not apply, a command the allowlist
    /// refuses): the same refusal the run would give, without changing
    /// anything. The run checks again, since files may change meanwhile.
    fn check(&self, _ctx: &ToolContext, _params: &Self::Params) -> Result<(), ToolError> {
        Ok(())
    }

    /// The call's risk, given the configured risk of this tool.
    fn risk(_params: &Self::Params, _policy: &crate::policy::Policy, configured: Risk) -> Risk {
        configured
    }

    /// What an approval must be bound to, when not the raw arguments.
    fn approval_digest(_params: &Self::Params) -> Option<String> {
        None
    }

    /// The description listed to clients when it depends on the settings (the
    /// commands the allowlist permits); `None` lists [`Tool::DESCRIPTION`].
    /// Settings are fixed for the life of a process, so this is worked out once.
    fn describe_tool(_settings: &Settings) -> Option<String> {
        None
    }

    /// What an approver needs to see: exactly what the call will do.
    fn describe(&self, _ctx: &ToolContext, params: &Self::Params) -> String;

    /// What the call touches, for rules: the workspace paths it writes, the
    /// argv it runs. Tools that touch nothing rules can name keep the default.
    fn subject(&self, _ctx: &ToolContext, _params: &Self::Params) -> Subject {
        Subject::default()
    }

    /// Calls made on this call's behalf (a playbook's steps: tool and
    /// arguments), each of which rules also judge.
    fn inner_calls(_params: &Self::Params) -> Vec<(String, Value)> {
        Vec::new()
    }

    fn run(
        &self,
        ctx: &ToolContext,
        params: Self::Params,
    ) -> impl Future<Output = Result<Self::Output, ToolError>> + Send;

    /// The text block shown to models and people (called last, so it may
    /// move the output's text instead of copying it).
    fn render(output: Self::Output) -> String;

    /// The content blocks, when a tool has more to say than one text block
    /// (notes beside a file's text, several files). Default: [`Tool::render`].
    fn render_blocks(output: Self::Output) -> Vec<Block> {
        vec![Block::text(Self::render(output))]
    }

    /// Whether a completed run still counts as a failure (e.g. a non-zero exit).
    fn is_error(_output: &Self::Output) -> bool {
        false
    }
}

/// Static facts about a tool, with its schemas generated once.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: &'static str,
    pub title: &'static str,
    /// What clients are shown: [`Tool::DESCRIPTION`], or [`Tool::describe_tool`]'s
    /// text in a registry built for settings.
    pub description: std::borrow::Cow<'static, str>,
    pub risk: Risk,
    pub annotations: Annotations,
    pub input_schema: Arc<Map<String, Value>>,
    pub output_schema: Arc<Map<String, Value>>,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A call whose arguments parsed: it can be described, then run once.
pub trait Prepared: Send + Sync {
    fn dry_run(&self) -> bool;
    fn bind(&mut self, ctx: &ToolContext) -> Result<(), ToolError>;
    /// Whether the work can succeed (see [`Tool::check`]).
    fn check(&self, ctx: &ToolContext) -> Result<(), ToolError>;
    /// The risk of this call: low for a dry run, else what the tool says.
    fn risk(&self, policy: &crate::policy::Policy, configured: Risk) -> Risk;
    fn approval_digest(&self) -> Option<String>;
    fn describe(&self, ctx: &ToolContext) -> String;
    /// What the call touches, for rules.
    fn subject(&self, ctx: &ToolContext) -> Subject;
    /// Calls made on this call's behalf (a playbook's steps).
    fn inner_calls(&self) -> Vec<(String, Value)>;
    fn run(self: Box<Self>, ctx: ToolContext) -> BoxFuture<'static, Result<ToolOutput, ToolError>>;
}

/// A tool with its types erased, as the registry holds it.
pub trait DynTool: Send + Sync {
    fn spec(&self) -> &ToolSpec;
    /// Parses `args` (without `approval_id`); the error names the bad argument.
    fn prepare(&self, args: Value) -> Result<Box<dyn Prepared>, String>;
}

struct Erased<T: Tool> {
    tool: Arc<T>,
    spec: ToolSpec,
}

struct PreparedCall<T: Tool> {
    tool: Arc<T>,
    params: T::Params,
}

impl<T: Tool> Prepared for PreparedCall<T> {
    fn dry_run(&self) -> bool {
        T::is_dry_run(&self.params)
    }

    fn bind(&mut self, ctx: &ToolContext) -> Result<(), ToolError> {
        self.tool.bind(ctx, &mut self.params)
    }

    fn check(&self, ctx: &ToolContext) -> Result<(), ToolError> {
        self.tool.check(ctx, &self.params)
    }

    fn risk(&self, policy: &crate::policy::Policy, configured: Risk) -> Risk {
        if self.dry_run() {
            Risk::Low
        } else {
            T::risk(&self.params, policy, configured)
        }
    }

    fn approval_digest(&self) -> Option<String> {
        T::approval_digest(&self.params)
    }

    fn describe(&self, ctx: &ToolContext) -> String {
        self.tool.describe(ctx, &self.params)
    }

    fn subject(&self, ctx: &ToolContext) -> Subject {
        self.tool.subject(ctx, &self.params)
    }

    fn inner_calls(&self) -> Vec<(String, Value)> {
        T::inner_calls(&self.params)
    }

    fn run(self: Box<Self>, ctx: ToolContext) -> BoxFuture<'static, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let output = self.tool.run(&ctx, self.params).await?;
            let is_error = T::is_error(&output);
            let structured = serde_json::to_value(&output)
                .map_err(|e| ToolError::new(format!("internal error: cannot encode the result: {e}")))?;
            Ok(ToolOutput::from_blocks(T::render_blocks(output), structured, is_error))
        })
    }
}

impl<T: Tool> DynTool for Erased<T> {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn prepare(&self, args: Value) -> Result<Box<dyn Prepared>, String> {
        let params: T::Params =
            serde_json::from_value(args).map_err(|e| format!("invalid arguments for {}: {e}", T::NAME))?;
        Ok(Box::new(PreparedCall {
            tool: self.tool.clone(),
            params,
        }))
    }
}

/// The JSON schema of `S` as an object map, inlined (no `$ref`s at the top).
pub fn schema_of<S: JsonSchema>() -> Map<String, Value> {
    let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| {
        s.inline_subschemas = true;
    });
    let schema = settings.into_generator().into_root_schema_for::<S>();
    let mut map = match serde_json::to_value(schema) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    map.remove("$schema");
    map.remove("title");
    strip_numeric_formats(&mut map);
    map
}

/// Drops schemars' Rust-specific formats (`uint64`, `double`, ...): they are not
/// JSON Schema formats, and strict validators (the TypeScript SDK's) warn on them.
fn strip_numeric_formats(map: &mut Map<String, Value>) {
    let rust_format = |v: &Value| {
        v.as_str().is_some_and(|f| {
            let digits = f.trim_start_matches(|c: char| c.is_ascii_alphabetic());
            matches!(
                f.trim_end_matches(|c: char| c.is_ascii_digit()),
                "int" | "uint" | "float" | "double"
            ) && digits.chars().all(|c| c.is_ascii_digit())
        })
    };
    if map.get("format").is_some_and(rust_format) {
        map.remove("format");
    }
    for value in map.values_mut() {
        match value {
            Value::Object(inner) => strip_numeric_formats(inner),
            Value::Array(items) => items.iter_mut().for_each(|item| {
                if let Value::Object(inner) = item {
                    strip_numeric_formats(inner);
                }
            }),
            _ => {}
        }
    }
}

fn spec_of<T: Tool>(settings: Option<&Settings>) -> ToolSpec {
    let mut input = schema_of::<T::Params>();
    if input.get("type").is_none() {
        input.insert("type".into(), Value::from("object"));
    }
    let props = input.entry("properties").or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(props) = props {
        props.insert(
            APPROVAL_ID_ARG.into(),
            serde_json::json!({
                "type": "string",
                "description": "A single-use approval id granted by an operator. Only needed after a call was refused with `approval required`: retry the same call with the id it gave."
            }),
        );
    }
    ToolSpec {
        name: T::NAME,
        title: T::TITLE,
        description: settings
            .and_then(T::describe_tool)
            .map_or(std::borrow::Cow::Borrowed(T::DESCRIPTION), std::borrow::Cow::Owned),
        risk: T::RISK,
        annotations: T::ANNOTATIONS,
        input_schema: Arc::new(input),
        output_schema: Arc::new(schema_of::<T::Output>()),
    }
}

fn erase<T: Tool>(tool: T, settings: Option<&Settings>) -> Arc<dyn DynTool> {
    Arc::new(Erased {
        tool: Arc::new(tool),
        spec: spec_of::<T>(settings),
    })
}

/// Every tool, in the order they are listed.
pub struct Registry {
    tools: Vec<Arc<dyn DynTool>>,
}

impl Registry {
    /// The built-in tools with their static descriptions (for schemas and
    /// checks that need no settings).
    pub fn builtin() -> Self {
        Self::build(None)
    }

    /// The built-in tools, described for these settings (e.g. `shell_exec`
    /// lists the commands `SHELL_ALLOWLIST` permits).
    pub fn for_settings(settings: &Settings) -> Self {
        Self::build(Some(settings))
    }

    fn build(settings: Option<&Settings>) -> Self {
        Self {
            tools: vec![
                erase(filesystem_read::FilesystemRead, settings),
                erase(filesystem_write::FilesystemWrite, settings),
                erase(filesystem_list::FilesystemList, settings),
                erase(filesystem_search::FilesystemSearch, settings),
                erase(git_status::GitStatus, settings),
                erase(git_diff::GitDiff, settings),
                erase(edit_file::EditFile, settings),
                erase(apply_patch::ApplyPatch, settings),
                erase(shell_exec::ShellExec, settings),
                erase(run_playbook::RunPlaybook, settings),
                erase(reason::Reason, settings),
                erase(brain_status::BrainStatusTool, settings),
            ],
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn DynTool>> {
        self.tools.iter().find(|t| t.spec().name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn DynTool>> {
        self.tools.iter()
    }

    /// Each tool's name and built-in risk, for the policy defaults.
    pub fn risks(&self) -> Vec<(&'static str, Risk)> {
        self.tools.iter().map(|t| (t.spec().name, t.spec().risk)).collect()
    }
}

/// Keeps the first `max` bytes of `text` (on a char boundary); says whether it cut.
pub fn truncate_str(text: &str, max: usize) -> (&str, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_named_described_and_has_object_schemas() {
        let registry = Registry::builtin();
        let mut names = std::collections::HashSet::new();
        for tool in registry.iter() {
            let spec = tool.spec();
            assert!(names.insert(spec.name), "duplicate tool name {}", spec.name);
            assert!(spec.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            assert!(spec.description.len() > 40, "{} needs a real description", spec.name);
            assert!(!spec.title.is_empty());
            assert_eq!(
                spec.input_schema.get("type"),
                Some(&Value::from("object")),
                "{}",
                spec.name
            );
            assert_eq!(
                spec.output_schema.get("type"),
                Some(&Value::from("object")),
                "{}",
                spec.name
            );
            assert_eq!(
                spec.input_schema.get("additionalProperties"),
                Some(&Value::Bool(false)),
                "{} must refuse unknown arguments",
                spec.name
            );
            let props = spec.input_schema["properties"].as_object().unwrap();
            for (prop, schema) in props {
                assert!(
                    schema.get("description").is_some(),
                    "{}.{prop} has no description",
                    spec.name
                );
            }
            if spec.annotations.read_only {
                assert_eq!(spec.risk, Risk::Low, "{} is read-only but not low risk", spec.name);
            } else if spec.name == "run_playbook" {
                // Its risk is the highest of its steps', worked out per call.
            } else {
                assert!(spec.risk >= Risk::Medium, "{} mutates but is low risk", spec.name);
            }
        }
        assert_eq!(names.len(), 12);
    }

    #[test]
    fn unknown_arguments_are_refused_by_every_tool() {
        for tool in Registry::builtin().iter() {
            let err = tool.prepare(serde_json::json!({"no_such_argument": 1})).err().unwrap();
            assert!(
                err.contains("no_such_argument") || err.contains("missing field"),
                "{}: {err}",
                tool.spec().name
            );
        }
    }
}
