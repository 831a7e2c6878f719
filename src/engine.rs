//! The gate: the one path every tool call takes, whichever door it came through.
//!
//! [`Engine::call`] looks the tool up, checks it is enabled, parses the
//! arguments, works out the risk (a dry run is low), decides whether a human yes
//! is needed and gets it (an approval id, an interactive [`Approver`], or an
//! approval the door already verified), runs the tool, writes one audit line,
//! and returns the answer. Doors only translate requests and answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::audit::{ApprovalNote, AuditLog, AuditRecord, Decision, Door};
use crate::policy::{
    ApprovalMode, MemorySessionAnswers, PolicyStore, Remember, RememberOffer, Risk, RuleDecision, SessionAnswers,
    Subject, Verdict,
};
use crate::settings::Settings;
use crate::tools::{APPROVAL_ID_ARG, BoxFuture, Progress, Registry, ToolContext, ToolSpec};
use crate::workspace::Workspace;

/// A request that cannot be served at all: a protocol error, not a tool result.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GateError {
    #[error("unknown tool `{0}`; call tools/list to see the available tools")]
    UnknownTool(String),
    #[error("{0}")]
    InvalidArgs(String),
}

/// Why an operator's answer was not taken.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OperatorError {
    #[error("{0}")]
    Unknown(String),
    #[error("{0}")]
    NotPending(String),
    #[error("{0}")]
    Invalid(String),
    /// The approval state store could not be asked; nothing was decided.
    #[error("{0}")]
    Unavailable(String),
}

/// What an approver is asked: exactly what will happen.
#[derive(Debug, Clone)]
pub struct ApprovalQuestion {
    pub tool: String,
    pub risk: Risk,
    /// A readable account of the action (argv, files and counts, path and size).
    pub details: String,
    /// Digest of the arguments the answer applies to.
    pub args_digest: String,
    pub timeout: Duration,
    /// What a yes could be remembered as; `None`: only this call can be approved.
    pub offer: Option<RememberOffer>,
    /// The rule that asks, when a rule (not the risk) asked.
    pub asked_by: Option<String>,
}

impl ApprovalQuestion {
    /// The message shown to the person who answers.
    pub fn message(&self) -> String {
        let why = match &self.asked_by {
            Some(rule) => format!("{rule} asks before every such call"),
            None => format!("{} risk", self.risk.as_str()),
        };
        let remember = match &self.offer {
            Some(o) => format!(
                "\n\nremember: `once` approves only this call; {}`always` adds an allow rule for {} to the policy file.",
                if o.session {
                    format!("`session` allows {} for the rest of this session; ", o.what)
                } else {
                    String::new()
                },
                o.what
            ),
            None => String::new(),
        };
        format!(
            "execlayer asks to run `{}` ({why}):\n{}{remember}\n\nApprove this call?",
            self.tool, self.details
        )
    }

    /// The `remember` values this question offers.
    pub fn choices(&self) -> Vec<(Remember, String)> {
        RememberOffer::choices(self.offer.as_ref())
    }
}

/// An approver's answer. Anything but an explicit yes is a no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalAnswer {
    /// Yes, remembered for as long as it says.
    Approved(Remember),
    /// Declined, cancelled, malformed, errored or timed out; the reason says which.
    Denied(String),
}

/// Asks a human, inside the caller's client (MCP elicitation).
pub trait Approver: Send + Sync {
    /// The channel's name in the audit log, e.g. `elicitation`.
    fn channel(&self) -> &'static str;
    fn ask<'a>(&'a self, question: &'a ApprovalQuestion) -> BoxFuture<'a, ApprovalAnswer>;
}

/// How this call may obtain a yes when it needs one.
pub enum ApprovalSource<'a> {
    /// Only an `approval_id` argument can approve; otherwise a pending id is issued.
    IdOnly,
    /// Ask this approver when no `approval_id` is given.
    Ask(&'a dyn Approver),
    /// Return [`CallOutcome::NeedsInput`] instead of refusing (2026-07-28 `input_required`).
    Defer,
    /// The door already verified a yes bound to these exact arguments.
    Granted {
        via: &'static str,
        id: Option<String>,
        remember: Remember,
    },
    /// The door already has a no (or a retry it could not verify).
    Refused { via: &'static str, reason: String },
}

/// Who is calling and through which door.
#[derive(Debug, Clone)]
pub struct Caller {
    pub door: Door,
    pub client: Option<String>,
    /// Playbook run id and step index, for steps.
    pub run: Option<(String, usize)>,
    /// The MCP session (the stdio connection, the `Mcp-Session-Id`), when there
    /// is one: session answers are bound to it.
    pub session: Option<String>,
}

impl Caller {
    pub fn new(door: Door) -> Self {
        Self {
            door,
            client: None,
            run: None,
            session: None,
        }
    }
}

/// The answer to a call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResponse {
    /// The main text (for a result with notes, without them).
    pub text: String,
    /// Every content block in order when there is more than `text` (notes,
    /// several files); empty means one block holding `text`.
    pub blocks: Vec<crate::tools::Block>,
    /// Structured content; present only when it conforms to the output schema.
    pub structured: Option<Value>,
    pub is_error: bool,
    pub decision: Decision,
    /// The id to approve, when the call was refused for want of approval.
    pub pending_id: Option<String>,
}

impl ToolResponse {
    fn refused(decision: Decision, text: String) -> Self {
        Self {
            text,
            blocks: Vec::new(),
            structured: None,
            is_error: true,
            decision,
            pending_id: None,
        }
    }
}

/// What came of a call.
#[derive(Debug)]
pub enum CallOutcome {
    Done(ToolResponse),
    /// Approval is needed and the door will ask for it (`ApprovalSource::Defer`).
    NeedsInput(ApprovalQuestion),
}

/// The core: settings, workspace, policy, approvals, audit and tools.
pub struct Engine {
    /// This engine, for tools that make calls of their own (playbooks).
    me: std::sync::Weak<Engine>,
    git: Arc<crate::git::RepoCache>,
    pub settings: Arc<Settings>,
    pub workspace: Arc<Workspace>,
    pub policy: PolicyStore,
    /// Approval ids, used `requestState`s and session answers (memory or Redis).
    pub state: Arc<dyn crate::state::StateStore>,
    pub audit: AuditLog,
    pub registry: Registry,
    /// Yes answers remembered for a session.
    pub sessions: Arc<dyn SessionAnswers>,
    /// The HTTP door's address, when one is open (named in refusals).
    pub http_door: std::sync::OnceLock<String>,
    /// What commands may touch, built once from the settings.
    pub sandbox: Arc<crate::sandbox::Sandbox>,
}

/// Per-call extras from the door.
#[derive(Clone, Default)]
pub struct CallOptions {
    pub cancel: CancellationToken,
    pub progress: Progress,
}

impl Engine {
    /// Builds the engine from validated settings.
    pub fn new(settings: Settings) -> anyhow::Result<Arc<Self>> {
        let mut workspace = Workspace::new(&settings.workspace_root)
            .map_err(|e| anyhow::anyhow!("EXECUTION_WORKSPACE_ROOT {}: {e}", settings.workspace_root.display()))?;
        // execlayer's own files may sit inside the workspace (the defaults put
        // config/ in the current directory): an agent must not rewrite its policy.
        workspace.protect(&settings.config_path, "policy file", false);
        workspace.protect(&settings.playbooks_dir, "playbooks folder", false);
        workspace.protect(&settings.audit_log, "audit log", false);
        workspace.protect(
            &crate::journal::folder_for(&settings.audit_log),
            "commit journal folder",
            false,
        );
        workspace.protect(&crate::state::nonce_file(&settings), "used-requestState file", false);
        if let Some(env_file) = &settings.env_file {
            workspace.protect(env_file, ".env file (it may hold the token)", true);
        }
        let hidden: Vec<std::path::PathBuf> = settings.env_file.iter().cloned().collect();
        let sandbox = crate::sandbox::Sandbox::new(
            &settings.sandbox,
            workspace.root(),
            &[
                settings.config_path.clone(),
                settings.playbooks_dir.clone(),
                settings.audit_log.clone(),
            ],
            &hidden,
        );
        let registry = Registry::for_settings(&settings);
        let policy = PolicyStore::open(&settings.config_path, registry.risks())?;
        // A log that cannot be opened refuses changes instead of stopping the server.
        let audit = AuditLog::open_or_unavailable(&settings.audit_log);
        let state = crate::state::open(&settings)?;
        Ok(Arc::new_cyclic(|me| Self {
            me: me.clone(),
            git: Arc::default(),
            settings: Arc::new(settings),
            workspace: Arc::new(workspace),
            policy,
            state,
            audit,
            registry,
            sessions: Arc::new(MemorySessionAnswers::default()),
            http_door: std::sync::OnceLock::new(),
            sandbox: Arc::new(sandbox),
        }))
    }

    /// The tools that are enabled now, in registry order.
    pub fn enabled_tools(&self) -> Vec<&ToolSpec> {
        let policy = self.policy.current();
        self.registry
            .iter()
            .map(|t| t.spec())
            .filter(|s| policy.enabled(s.name))
            .collect()
    }

    fn context(&self, opts: &CallOptions, policy: Arc<crate::policy::Policy>) -> ToolContext {
        ToolContext {
            workspace: self.workspace.clone(),
            settings: self.settings.clone(),
            cancel: opts.cancel.clone(),
            progress: opts.progress.clone(),
            policy,
            engine: self.me.clone(),
            git: self.git.clone(),
            sandbox: self.sandbox.clone(),
            grant: crate::sandbox::CommandGrant::default(),
            confinement: crate::sandbox::ConfinementNote::default(),
        }
    }

    /// Runs one call through the gate. Requests that cannot be served (an
    /// unknown tool, malformed arguments) are audited too, as `invalid`.
    pub async fn call(
        &self,
        caller: &Caller,
        tool_name: &str,
        args: Option<Map<String, Value>>,
        approval: ApprovalSource<'_>,
        opts: CallOptions,
    ) -> Result<CallOutcome, GateError> {
        let started = Instant::now();
        match self.gate(caller, tool_name, args, approval, opts, started).await {
            Ok(outcome) => Ok(outcome),
            Err((error, args_preview)) => {
                self.record_invalid(caller, tool_name, args_preview, &error, started);
                Err(error)
            }
        }
    }

    fn record_invalid(
        &self,
        caller: &Caller,
        tool_name: &str,
        args_preview: String,
        error: &GateError,
        started: Instant,
    ) {
        let mut record = AuditRecord::new(
            caller.door,
            crate::tools::truncate_str(tool_name, 100).0,
            self.policy.current().risk(tool_name),
            Decision::Invalid,
        );
        record.client = caller.client.clone();
        record.args_preview = args_preview;
        record.error = Some(crate::tools::truncate_str(&error.to_string(), 300).0.to_owned());
        record.duration_ms = started.elapsed().as_millis() as u64;
        record.run_id = caller.run.as_ref().map(|(id, _)| id.clone());
        record.step = caller.run.as_ref().map(|(_, step)| *step);
        if let Err(e) = self.audit.append(&record) {
            tracing::error!(error = %e, "cannot append to the audit log");
        }
    }

    async fn gate(
        &self,
        caller: &Caller,
        tool_name: &str,
        args: Option<Map<String, Value>>,
        approval: ApprovalSource<'_>,
        opts: CallOptions,
        started: Instant,
    ) -> Result<CallOutcome, (GateError, String)> {
        let mut args = args.unwrap_or_default();
        let Some(tool) = self.registry.get(tool_name).cloned() else {
            return Err((
                GateError::UnknownTool(tool_name.to_owned()),
                preview(&Value::Object(args)),
            ));
        };
        let approval_id = match args.remove(APPROVAL_ID_ARG) {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id),
            Some(other) => {
                let error = GateError::InvalidArgs(format!(
                    "invalid arguments for {tool_name}: `approval_id` must be a string, got {other}"
                ));
                return Err((error, preview(&Value::Object(args))));
            }
        };
        let args = Value::Object(args);
        let canonical = canonical_json(&args);
        let digest = digest_of(&canonical);
        let policy = self.policy.current();
        let mut record = AuditRecord::new(caller.door, tool_name, policy.risk(tool_name), Decision::Allowed);
        record.client = caller.client.clone();
        record.args_digest = digest.clone();
        record.args_preview = preview_of(&canonical);
        record.run_id = caller.run.as_ref().map(|(id, _)| id.clone());
        record.step = caller.run.as_ref().map(|(_, step)| *step);

        if !policy.enabled(tool_name) {
            let response = ToolResponse::refused(
                Decision::Disabled,
                format!("tool disabled: {tool_name}; an operator can enable it in the policy"),
            );
            return Ok(CallOutcome::Done(self.finish(record, started, response)));
        }
        let mut prepared = tool
            .prepare(args)
            .map_err(|e| (GateError::InvalidArgs(e), preview_of(&canonical)))?;
        let mut ctx = self.context(&opts, policy.clone());
        // Resolve what the call refers to (a named playbook) once, so that what
        // is approved is exactly what runs.
        if let Err(e) = prepared.bind(&ctx) {
            let response = ToolResponse::refused(Decision::Allowed, e.message);
            return Ok(CallOutcome::Done(self.finish(record, started, response)));
        }
        let dry_run = prepared.dry_run();
        let risk = prepared.risk(&policy, policy.risk(tool_name));
        let digest = prepared.approval_digest().unwrap_or(digest);
        record.dry_run = dry_run;
        record.risk = risk;
        record.args_digest = digest.clone();

        // No side effect without its record: a change the log cannot hold is refused before it runs.
        if !dry_run
            && !tool.spec().annotations.read_only
            && let Err(why) = self.audit.ready_for_change()
        {
            let text = format!(
                "refused: `{tool_name}` did not run because {why}. execlayer runs a call that changes something only when it can record it; ask the operator to free space or fix the audit log's location (EXECUTION_AUDIT_LOG), then retry. Read-only tools still work."
            );
            let response = ToolResponse::refused(Decision::Denied, text);
            return Ok(CallOutcome::Done(self.finish(record, started, response)));
        }

        // Rules first (a dry run changes nothing and is not judged by them).
        // What the call touches is worked out only when a rule, a remembered
        // answer or a question may need it.
        let inner = prepared.inner_calls();
        let may_ask = policy.approval_mode == ApprovalMode::RequireApproval && risk >= Risk::Medium;
        let subject = if dry_run || !(may_ask || !inner.is_empty() || policy.rules.mentions(tool_name)) {
            Subject::default()
        } else {
            prepared.subject(&ctx)
        };
        let verdict = if dry_run {
            None
        } else {
            self.rule_verdict(&policy, tool_name, &subject, &inner, &ctx)
        };
        if let Some(v) = &verdict {
            record.rule = Some(v.label());
            // What the deciding command rule grants the process: network, or no sandbox.
            if let Some(g) = v.rule.grant() {
                ctx.grant = crate::sandbox::CommandGrant {
                    network: g.network,
                    sandbox: g.sandbox,
                };
            }
        }
        if let Some(v) = verdict.as_ref().filter(|v| v.decision == RuleDecision::Forbid) {
            record.approval = Some(ApprovalNote {
                via: "rule".into(),
                id: None,
                answer: Some("forbidden".into()),
            });
            let reason = v.rule.reason.as_deref().unwrap_or("no reason given");
            let text = format!(
                "forbidden: `{tool_name}` did not run; {} forbids it ({reason}). No approval can allow this call: do it another way, or ask the operator to change the policy's rules.",
                v.label()
            );
            let response = ToolResponse::refused(Decision::Denied, text);
            return Ok(CallOutcome::Done(self.finish(record, started, response)));
        }
        let rule_asks = verdict.as_ref().is_some_and(|v| v.decision == RuleDecision::Ask);
        let rule_allows = verdict.as_ref().is_some_and(|v| v.decision == RuleDecision::Allow);
        if rule_allows {
            record.approval = Some(ApprovalNote {
                via: "rule".into(),
                id: None,
                answer: Some("allowed".into()),
            });
        }
        let mut needs_approval = rule_asks
            || (!rule_allows && policy.approval_mode == ApprovalMode::RequireApproval && risk >= Risk::Medium);

        // A yes this session remembered (an `ask` rule asks every time).
        if needs_approval
            && !rule_asks
            && let Some(session) = &caller.session
            && let Some(remembered) = self.sessions.find(session, tool_name, &subject)
        {
            record.rule = Some(format!("session: {}", remembered.rule.summary()));
            record.approval = Some(ApprovalNote {
                via: "remembered".into(),
                id: None,
                answer: Some("approved".into()),
            });
            needs_approval = false;
        }

        // A human is never asked about a call that would fail anyway.
        if needs_approval && let Err(e) = prepared.check(&ctx) {
            let response = ToolResponse::refused(
                Decision::Allowed,
                format!(
                    "{}\n(checked before asking for approval: nothing ran and no one was asked)",
                    e.message
                ),
            );
            return Ok(CallOutcome::Done(self.finish(record, started, response)));
        }
        if needs_approval {
            let offer = if rule_asks {
                None
            } else {
                RememberOffer::for_call(
                    tool_name,
                    &subject,
                    &self.settings.shell_allowlist,
                    caller.session.is_some(),
                )
            };
            let question = || ApprovalQuestion {
                tool: tool_name.to_owned(),
                risk,
                details: prepared.describe(&ctx),
                args_digest: digest.clone(),
                timeout: Duration::from_secs(policy.approval_timeout_seconds),
                offer: offer.clone(),
                asked_by: verdict.as_ref().filter(|_| rule_asks).map(|v| match &v.rule.reason {
                    Some(reason) => format!("{} ({reason})", v.label()),
                    None => v.label(),
                }),
            };
            let who = caller.client.clone().unwrap_or_else(|| "client".into());
            if let Some(id) = approval_id {
                match self.state.consume(&id, tool_name, &digest).await {
                    Ok(granted) => {
                        record.approval = Some(ApprovalNote {
                            via: "approval_id".into(),
                            id: Some(granted.id),
                            answer: Some("approved".into()),
                        });
                    }
                    Err(e) => {
                        record.approval = Some(ApprovalNote {
                            via: "approval_id".into(),
                            id: Some(id),
                            answer: Some("refused".into()),
                        });
                        let text = format!("approval required: {e}");
                        let response = ToolResponse::refused(Decision::Denied, text);
                        return Ok(CallOutcome::Done(self.finish(record, started, response)));
                    }
                }
            } else {
                let (via, id, answer) = match approval {
                    ApprovalSource::Granted { via, id, remember } => (via, id, ApprovalAnswer::Approved(remember)),
                    ApprovalSource::Defer => {
                        // The question goes back with the answer; the retry
                        // that carries the human's answer is recorded on its
                        // own. This line shows a question never answered.
                        record.approval = Some(ApprovalNote {
                            via: "input_required".into(),
                            id: None,
                            answer: Some("asked".into()),
                        });
                        record.decision = Decision::ApprovalRequired;
                        self.append(record, started);
                        return Ok(CallOutcome::NeedsInput(question()));
                    }
                    ApprovalSource::Refused { via, reason } => (via, None, ApprovalAnswer::Denied(reason)),
                    ApprovalSource::Ask(approver) => {
                        let q = question();
                        let answer = tokio::select! {
                            a = approver.ask(&q) => a,
                            _ = opts.cancel.cancelled() => ApprovalAnswer::Denied("the request was cancelled".into()),
                        };
                        (approver.channel(), None, answer)
                    }
                    ApprovalSource::IdOnly => {
                        let q = question();
                        let ttl = Duration::from_secs(policy.approval_ttl_seconds);
                        let pending = match self.state.request(tool_name, &digest, &q.details, risk, ttl).await {
                            Ok(pending) => pending,
                            Err(e) => {
                                record.approval = Some(ApprovalNote {
                                    via: "operator".into(),
                                    id: None,
                                    answer: Some("store unavailable".into()),
                                });
                                let text = format!("approval required: {e}");
                                let response = ToolResponse::refused(Decision::Denied, text);
                                return Ok(CallOutcome::Done(self.finish(record, started, response)));
                            }
                        };
                        let door = serde_json::to_value(caller.door)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default();
                        if let Err(e) = self
                            .state
                            .annotate(&pending.id, offer.clone(), caller.session.clone(), &door)
                            .await
                        {
                            tracing::warn!(id = %pending.id, error = %e, "could not note the remember offer on a pending approval");
                        }
                        record.approval = Some(ApprovalNote {
                            via: "operator".into(),
                            id: Some(pending.id.clone()),
                            answer: Some("pending".into()),
                        });
                        let text = self.approval_required_text(tool_name, &q, &pending.id);
                        let mut response = ToolResponse::refused(Decision::ApprovalRequired, text);
                        response.pending_id = Some(pending.id);
                        return Ok(CallOutcome::Done(self.finish(record, started, response)));
                    }
                };
                match answer {
                    ApprovalAnswer::Approved(remember) => {
                        record.approval = Some(ApprovalNote {
                            via: via.into(),
                            id,
                            answer: Some("approved".into()),
                        });
                        if remember != Remember::Once {
                            match self.remember(remember, offer.as_ref(), caller.session.as_deref(), &who, via) {
                                Ok(label) => {
                                    record.remember = Some(remember.as_str().into());
                                    record.rule = Some(label);
                                }
                                Err(reason) => {
                                    let response = ToolResponse::refused(
                                        Decision::Denied,
                                        format!("denied: {tool_name} did not run ({reason})"),
                                    );
                                    return Ok(CallOutcome::Done(self.finish(record, started, response)));
                                }
                            }
                        }
                    }
                    ApprovalAnswer::Denied(reason) => {
                        record.approval = Some(ApprovalNote {
                            via: via.into(),
                            id,
                            answer: Some(reason.clone()),
                        });
                        let response = ToolResponse::refused(
                            Decision::Denied,
                            format!("denied: {tool_name} did not run ({reason})"),
                        );
                        return Ok(CallOutcome::Done(self.finish(record, started, response)));
                    }
                }
            }
        }

        let confinement = ctx.confinement.clone();
        let result = prepared.run(ctx).await;
        record.sandbox = confinement.take();
        let response = match result {
            Ok(output) => ToolResponse {
                text: output.text,
                blocks: output.blocks,
                structured: Some(output.structured),
                is_error: output.is_error,
                decision: Decision::Allowed,
                pending_id: None,
            },
            Err(e) => ToolResponse {
                text: e.message,
                blocks: Vec::new(),
                structured: None,
                is_error: true,
                decision: Decision::Allowed,
                pending_id: None,
            },
        };
        Ok(CallOutcome::Done(self.finish(record, started, response)))
    }

    /// The rule that decides a call, if any. For a playbook its steps count
    /// too: a step a rule forbids (or asks about) decides the run, and a run
    /// whose every risky step a rule allows is allowed.
    pub fn rule_verdict(
        &self,
        policy: &crate::policy::Policy,
        tool: &str,
        subject: &Subject,
        inner: &[(String, Value)],
        ctx: &ToolContext,
    ) -> Option<Verdict> {
        if policy.rules.is_empty() {
            return None;
        }
        let own = policy.rules.evaluate(tool, subject);
        if inner.is_empty() {
            return own;
        }
        let mut strictest = own.filter(|v| v.decision != RuleDecision::Allow);
        let mut first_allow = None;
        let mut unruled_risky = false;
        for (step_tool, args) in inner {
            let Some(mut step) = self.registry.get(step_tool).and_then(|t| t.prepare(args.clone()).ok()) else {
                continue;
            };
            if step.dry_run() {
                continue;
            }
            let step_subject = if step.bind(ctx).is_ok() {
                step.subject(ctx)
            } else {
                Subject::default()
            };
            match policy.rules.evaluate(step_tool, &step_subject) {
                Some(v) if v.decision == RuleDecision::Allow => {
                    first_allow.get_or_insert(v);
                }
                Some(v) => {
                    if strictest.as_ref().is_none_or(|s| v.decision > s.decision) {
                        strictest = Some(v);
                    }
                }
                None => unruled_risky |= step.risk(policy, policy.risk(step_tool)) >= Risk::Medium,
            }
        }
        strictest.or(if unruled_risky { None } else { first_allow })
    }

    /// Remembers a yes: for the session (bound to `session`), or for good (an
    /// `allow` rule appended to the policy file). Returns how the rule is named.
    pub fn remember(
        &self,
        remember: Remember,
        offer: Option<&RememberOffer>,
        session: Option<&str>,
        who: &str,
        how: &str,
    ) -> Result<String, String> {
        let offer = offer.ok_or("nothing about this call can be remembered; approve it once")?;
        match remember {
            Remember::Once => Ok(String::new()),
            Remember::Session => {
                let session = session.filter(|_| offer.session).ok_or(
                    "`remember: session` needs an MCP session, and this call has none; approve it once or always",
                )?;
                self.sessions.remember(session, offer.rule.clone())?;
                Ok(format!("session: {}", offer.rule.summary()))
            }
            Remember::Always => {
                let mut index = 0;
                self.policy
                    .update(|p| {
                        index = match p.rules.position(&offer.rule) {
                            Some(i) => i,
                            None => p.rules.push(offer.rule.clone())?,
                        };
                        Ok(())
                    })
                    .map_err(|e| format!("cannot add the rule to the policy file: {e}"))?;
                let label = format!("rules[{index}] {}", offer.rule.summary());
                tracing::info!(rule = %label, %who, %how, "remembered an approval as a policy rule");
                Ok(label)
            }
        }
    }

    /// An operator's answer to pending approval `id`, optionally remembered.
    /// A `remember` the pending call cannot take is refused before anything is decided.
    pub async fn decide_operator(
        &self,
        id: &str,
        approve: bool,
        remember: Remember,
        by: &str,
        via: &str,
    ) -> Result<crate::policy::Approval, OperatorError> {
        if approve && remember != Remember::Once {
            let pending = self
                .state
                .get(id)
                .await
                .map_err(|e| OperatorError::Unavailable(e.to_string()))?
                .ok_or_else(|| {
                    OperatorError::Unknown(crate::policy::ApprovalError::Unknown(id.to_owned()).to_string())
                })?;
            match (&pending.remember, remember) {
                (None, _) => {
                    return Err(OperatorError::Invalid(format!(
                        "approval {id} cannot be remembered (nothing about the call can be named as a rule); approve it without --remember"
                    )));
                }
                (Some(o), Remember::Session) if !o.session || pending.session.is_none() => {
                    return Err(OperatorError::Invalid(format!(
                        "approval {id} came from a call without an MCP session; use --remember always, or no --remember"
                    )));
                }
                _ => {}
            }
        }
        let ttl = Duration::from_secs(self.policy.current().approval_ttl_seconds);
        let decided = self.state.decide(id, approve, by, ttl).await.map_err(|e| match e {
            crate::policy::ApprovalError::NotPending(_) => OperatorError::NotPending(e.to_string()),
            crate::policy::ApprovalError::Unavailable { .. } => OperatorError::Unavailable(e.to_string()),
            _ => OperatorError::Unknown(e.to_string()),
        })?;
        let mut label = None;
        if approve && remember != Remember::Once {
            match self.remember(remember, decided.remember.as_ref(), decided.session.as_deref(), by, via) {
                Ok(l) => label = Some(l),
                Err(e) => {
                    self.record_operator(&decided, approve, via, None);
                    return Err(OperatorError::Invalid(format!(
                        "approved {id} for this one call, but could not remember it: {e}"
                    )));
                }
            }
        }
        self.record_operator(&decided, approve, via, label.map(|l| (remember, l)));
        Ok(decided)
    }

    /// The refusal a call without an interactive approver gets: the pending id
    /// and the ways to approve it that work for this server.
    fn approval_required_text(&self, tool_name: &str, q: &ApprovalQuestion, id: &str) -> String {
        let why = match &q.asked_by {
            Some(rule) => format!("{rule} asks before every such call"),
            None => format!(
                "`{tool_name}` is {} risk and this server requires a human yes",
                q.risk.as_str()
            ),
        };
        let remember = match &q.offer {
            Some(o) if o.session => format!(
                " (add `--remember session` to allow {} for the rest of this session, or `--remember always` to add an allow rule)",
                o.what
            ),
            Some(o) => format!(" (add `--remember always` to allow {} from now on)", o.what),
            None => String::new(),
        };
        let http = match self.http_door.get() {
            Some(addr) => format!(
                ", the dashboard at http://{addr}/, or POST http://{addr}/api/v1/execution/approvals/{id}/approve"
            ),
            None => String::new(),
        };
        format!(
            "approval required: {why}.\nWhat it would do: {}\nAsk an operator to approve id {id}: `execlayer approve {id}`{remember}{http}. Then retry the same call with \"approval_id\": \"{id}\".",
            q.details
        )
    }

    /// The digest an approval of this call must be bound to (for a playbook,
    /// its resolved steps; otherwise the arguments without `approval_id`).
    pub fn approval_digest(&self, tool_name: &str, args: Option<&Map<String, Value>>) -> Option<String> {
        let tool = self.registry.get(tool_name)?;
        let mut args = args.cloned().unwrap_or_default();
        args.remove(APPROVAL_ID_ARG);
        let plain = args_digest(&Value::Object(args.clone()));
        let mut prepared = tool.prepare(Value::Object(args)).ok()?;
        let ctx = self.context(&CallOptions::default(), self.policy.current());
        prepared.bind(&ctx).ok()?;
        Some(prepared.approval_digest().unwrap_or(plain))
    }

    /// Audits the step a playbook run stopped before for want of budget.
    pub fn record_budget_stop(&self, run_id: &str, step: usize, tool: &str, risk: Risk) {
        let mut record = AuditRecord::new(Door::Playbook, tool, risk, Decision::BudgetExhausted);
        record.error = Some(format!("max_steps_per_run reached; step {step} was not run"));
        record.run_id = Some(run_id.to_owned());
        record.step = Some(step);
        if let Err(e) = self.audit.append(&record) {
            tracing::error!(error = %e, "cannot append to the audit log");
        }
    }

    /// Audits an operator's answer to an approval (granted, approved or denied),
    /// and what it was remembered as.
    pub fn record_operator(
        &self,
        approval: &crate::policy::Approval,
        approve: bool,
        via: &str,
        remembered: Option<(Remember, String)>,
    ) {
        let decision = if approve { Decision::Allowed } else { Decision::Denied };
        let mut record = AuditRecord::new(Door::Rest, &approval.tool, approval.risk, decision);
        record.client = Some("operator".into());
        record.args_digest = approval.args_digest.clone().unwrap_or_default();
        record.args_preview = crate::tools::truncate_str(&approval.preview, 200).0.to_owned();
        record.approval = Some(ApprovalNote {
            via: via.into(),
            id: Some(approval.id.clone()),
            answer: Some(if approve { "approved" } else { "denied" }.into()),
        });
        if let Some((remember, rule)) = remembered {
            record.remember = Some(remember.as_str().into());
            record.rule = Some(rule);
        }
        if let Err(e) = self.audit.append(&record) {
            tracing::error!(error = %e, "cannot append to the audit log");
        }
    }

    /// Writes the audit line, then hands the response back.
    fn finish(&self, mut record: AuditRecord, started: Instant, response: ToolResponse) -> ToolResponse {
        record.decision = response.decision;
        if response.decision == Decision::Allowed {
            record.outcome = Some(if response.is_error { "error" } else { "ok" }.into());
        }
        if response.is_error {
            record.error = Some(crate::tools::truncate_str(&response.text, 300).0.to_owned());
        }
        self.append(record, started);
        response
    }

    fn append(&self, mut record: AuditRecord, started: Instant) {
        record.duration_ms = started.elapsed().as_millis() as u64;
        if let Err(e) = self.audit.append(&record) {
            tracing::error!(error = %e, path = %self.audit.path().display(), "cannot append to the audit log");
        }
    }
}

/// The digest a call's approval is bound to: its arguments without `approval_id`.
pub fn call_digest(args: Option<&Map<String, Value>>) -> String {
    let mut args = args.cloned().unwrap_or_default();
    args.remove(APPROVAL_ID_ARG);
    args_digest(&Value::Object(args))
}

/// SHA-256 of the arguments' canonical JSON (keys sorted), hex.
pub fn args_digest(args: &Value) -> String {
    digest_of(&canonical_json(args))
}

fn digest_of(canonical: &str) -> String {
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// JSON with object keys sorted at every level, so equal arguments hash
/// equally. serde_json's map is a `BTreeMap` (its `preserve_order` feature is
/// off; a test guards that), so plain serialization is already sorted.
pub fn canonical_json(value: &Value) -> String {
    value.to_string()
}

/// A short, single-line preview of the arguments for the audit log.
fn preview(args: &Value) -> String {
    preview_of(&args.to_string())
}

fn preview_of(text: &str) -> String {
    const MAX: usize = 200;
    let (cut, truncated) = crate::tools::truncate_str(text, MAX);
    if truncated {
        format!("{cut}…")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_arguments_in_any_key_order_have_one_digest() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"z":[1,{"y":2,"x":3}],"c":null}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"c":null,"z":[1,{"x":3,"y":2}]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), r#"{"a":{"c":null,"z":[1,{"x":3,"y":2}]},"b":1}"#);
        assert_eq!(args_digest(&a), args_digest(&b));
        assert_ne!(args_digest(&a), args_digest(&serde_json::json!({"b": 2})));
    }

    /// Found by the `jsonrpc_frame` fuzz target: without serde_json's
    /// `float_roundtrip`, a number read, written and read again could come
    /// back one unit in the last place apart, so a message forwarded, logged
    /// or digested again would not be the one received.
    #[test]
    fn numbers_survive_a_round_trip_exactly() {
        for text in [
            "1.0000000000001845e+32",
            "1.0000000000001843e+32",
            "0.30000000000000004",
            "2.2250738585072014e-308",
            "9007199254740993.0",
        ] {
            let once: Value = serde_json::from_str(text).unwrap();
            let twice: Value = serde_json::from_str(&once.to_string()).unwrap();
            assert_eq!(once, twice, "{text}");
            assert_eq!(once.as_f64(), text.parse::<f64>().ok(), "{text}");
        }
    }
}
