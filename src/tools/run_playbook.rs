//! `run_playbook`: run a named playbook or a list of steps, each through the
//! gate, under the budget: at most `max_steps_per_run` steps, and per failing
//! step at most `min(step.max_retries, max_retries_per_tool)` retries.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Annotations, Tool, ToolContext, ToolError, truncate_str};
use crate::audit::{Decision, Door};
use crate::engine::{ApprovalSource, CallOptions, CallOutcome, Caller, Engine};
use crate::playbook::{self, Step};
use crate::policy::{ApprovalMode, Policy, Risk};

/// Most bytes of each step's text kept in the result.
pub const MAX_STEP_OUTPUT: usize = 8 * 1024;

pub struct RunPlaybook;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// A playbook from the playbooks folder (see the `playbook://` resources or GET /api/v1/execution/playbooks).
    #[serde(default)]
    pub name: Option<String>,
    /// Steps to run instead of a named playbook: [{"tool", "args", "max_retries"?, "continue_on_error"?, "name"?}].
    #[serde(default)]
    pub steps: Option<Vec<Step>>,
    /// List what would run and which steps need approval, running nothing. Default false.
    #[serde(default)]
    pub dry_run: bool,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    Ok,
    Error,
    Refused,
    Skipped,
    WouldRun,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StepReport {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub tool: String,
    pub risk: Risk,
    /// Whether this step alone would need an approval (dry runs).
    pub needs_approval: bool,
    pub attempts: u32,
    pub outcome: StepOutcome,
    /// The step's text output, or why it failed (cut at 8 KiB).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// The playbook's name, when one was run by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub playbook: Option<String>,
    /// Audit lines of the steps carry this id.
    pub run_id: String,
    pub dry_run: bool,
    /// True when every step that ran ended ok.
    pub completed: bool,
    /// True when max_steps_per_run stopped the run.
    pub budget_exhausted: bool,
    /// The step the budget stopped the run before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_before: Option<usize>,
    /// Why the run stopped early, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    pub steps: Vec<StepReport>,
}

fn step_risk(policy: &Policy, step: &Step) -> Risk {
    let dry = step.args.get("dry_run").and_then(Value::as_bool).unwrap_or(false);
    if dry { Risk::Low } else { policy.risk(&step.tool) }
}

impl Tool for RunPlaybook {
    const NAME: &'static str = "run_playbook";
    const TITLE: &'static str = "Run a playbook";
    const DESCRIPTION: &'static str = "Run a playbook (a named sequence of tool calls from the playbooks folder) or a given list of steps. Each step goes through the same policy, approval and audit as a direct call; one approval covers the whole run and is bound to its exact steps. The run executes at most max_steps_per_run steps; a failing step is retried up to min(step.max_retries, max_retries_per_tool) times, then the run stops unless the step has continue_on_error. `dry_run: true` lists what would run and what needs approval.";
    const RISK: Risk = Risk::Low;
    const ANNOTATIONS: Annotations = Annotations {
        read_only: false,
        destructive: true,
        idempotent: false,
        open_world: true,
    };
    type Params = Params;
    type Output = Output;

    fn is_dry_run(params: &Params) -> bool {
        params.dry_run
    }

    fn bind(&self, ctx: &ToolContext, params: &mut Params) -> Result<(), ToolError> {
        let registry = crate::tools::Registry::builtin();
        match (&params.name, &params.steps) {
            (Some(_), Some(_)) => Err(ToolError::new("give either `name` or `steps`, not both")),
            (None, None) => Err(ToolError::new(
                "give `name` (a playbook from the playbooks folder) or `steps` (a list of tool calls)",
            )),
            (Some(name), None) => {
                let book = playbook::find(&ctx.settings.playbooks_dir, name, &registry).map_err(ToolError::new)?;
                params.steps = Some(book.steps);
                Ok(())
            }
            (None, Some(steps)) => playbook::validate_steps(steps, &registry).map_err(ToolError::new),
        }
    }

    /// The highest risk of its steps (and of run_playbook's own setting).
    fn risk(params: &Params, policy: &Policy, configured: Risk) -> Risk {
        params
            .steps
            .iter()
            .flatten()
            .map(|s| step_risk(policy, s))
            .fold(configured, Risk::max)
    }

    /// An approval covers exactly these steps.
    fn approval_digest(params: &Params) -> Option<String> {
        let steps = serde_json::to_value(params.steps.as_ref()?).ok()?;
        Some(crate::engine::args_digest(
            &json!({ "steps": steps, "dry_run": params.dry_run }),
        ))
    }

    fn inner_calls(params: &Params) -> Vec<(String, Value)> {
        params
            .steps
            .iter()
            .flatten()
            .map(|s| (s.tool.clone(), Value::Object(s.args.clone())))
            .collect()
    }

    fn describe(&self, ctx: &ToolContext, params: &Params) -> String {
        let mut text = format!(
            "run {} ({} steps; at most {} run):",
            params
                .name
                .as_deref()
                .map_or("the given steps".to_owned(), |n| format!("playbook `{n}`")),
            params.steps.as_ref().map_or(0, Vec::len),
            ctx.policy.max_steps_per_run
        );
        for (i, step) in params.steps.iter().flatten().enumerate() {
            let risk = step_risk(&ctx.policy, step);
            let mark = if risk >= Risk::Medium { " (needs approval)" } else { "" };
            text.push_str(&format!(
                "\n  {}. {} {}{mark}",
                i + 1,
                step.tool,
                truncate_str(&Value::Object(step.args.clone()).to_string(), 160).0
            ));
        }
        text
    }

    async fn run(&self, ctx: &ToolContext, params: Params) -> Result<Output, ToolError> {
        let engine = ctx
            .engine
            .upgrade()
            .ok_or_else(|| ToolError::new("internal error: the engine is gone"))?;
        let steps = params.steps.clone().unwrap_or_default();
        let run_id = crate::policy::approvals::new_id();
        let policy = ctx.policy.clone();
        if params.dry_run {
            return Ok(plan_only(&params, &policy, run_id, &steps));
        }
        execute(&engine, ctx, params.name, run_id, &steps, &policy).await
    }

    fn is_error(output: &Output) -> bool {
        !output.completed
    }

    fn render(output: Output) -> String {
        let mut text = String::new();
        let title = output.playbook.as_deref().unwrap_or("steps");
        text.push_str(&if output.dry_run {
            format!("Dry run of {title}: nothing ran.\n")
        } else if output.completed {
            format!("Ran {title}: every step ended ok.\n")
        } else {
            format!(
                "Ran {title}: {}.\n",
                output.stopped_reason.as_deref().unwrap_or("some steps failed")
            )
        });
        for s in &output.steps {
            let outcome = match s.outcome {
                StepOutcome::Ok => "ok",
                StepOutcome::Error => "error",
                StepOutcome::Refused => "refused",
                StepOutcome::Skipped => "skipped",
                StepOutcome::WouldRun if s.needs_approval => "would run (needs approval)",
                StepOutcome::WouldRun => "would run",
            };
            text.push_str(&format!("{}. {} [{}]: {outcome}", s.index + 1, s.tool, s.risk.as_str()));
            if s.attempts > 1 {
                text.push_str(&format!(" after {} attempts", s.attempts));
            }
            text.push('\n');
            if !s.output.is_empty() {
                for line in s.output.lines().take(40) {
                    text.push_str("   ");
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        text
    }
}

fn plan_only(params: &Params, policy: &Policy, run_id: String, steps: &[Step]) -> Output {
    let max = policy.max_steps_per_run as usize;
    let reports = steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let risk = step_risk(policy, step);
            StepReport {
                index: i,
                name: step.name.clone(),
                tool: step.tool.clone(),
                risk,
                needs_approval: policy.approval_mode == ApprovalMode::RequireApproval && risk >= Risk::Medium,
                attempts: 0,
                outcome: if i < max {
                    StepOutcome::WouldRun
                } else {
                    StepOutcome::Skipped
                },
                output: if !policy.enabled(&step.tool) {
                    format!("tool disabled: {}", step.tool)
                } else {
                    String::new()
                },
            }
        })
        .collect();
    Output {
        playbook: params.name.clone(),
        run_id,
        dry_run: true,
        completed: true,
        budget_exhausted: steps.len() > max,
        stopped_before: (steps.len() > max).then_some(max),
        stopped_reason: (steps.len() > max).then(|| format!("max_steps_per_run is {max}")),
        steps: reports,
    }
}

async fn execute(
    engine: &Arc<Engine>,
    ctx: &ToolContext,
    playbook: Option<String>,
    run_id: String,
    steps: &[Step],
    policy: &Policy,
) -> Result<Output, ToolError> {
    let max_steps = policy.max_steps_per_run as usize;
    let mut reports: Vec<StepReport> = Vec::new();
    let mut stopped_reason = None;
    let mut stopped_before = None;
    let mut budget_exhausted = false;
    let mut all_ok = true;
    for (i, step) in steps.iter().enumerate() {
        let skip = |reports: &mut Vec<StepReport>, from: usize| {
            for (j, s) in steps.iter().enumerate().skip(from) {
                reports.push(StepReport {
                    index: j,
                    name: s.name.clone(),
                    tool: s.tool.clone(),
                    risk: step_risk(policy, s),
                    needs_approval: false,
                    attempts: 0,
                    outcome: StepOutcome::Skipped,
                    output: String::new(),
                });
            }
        };
        if i >= max_steps {
            budget_exhausted = true;
            stopped_before = Some(i);
            stopped_reason = Some(format!(
                "budget exhausted: max_steps_per_run is {max_steps}, stopped before step {}",
                i + 1
            ));
            engine.record_budget_stop(&run_id, i, &step.tool, step_risk(policy, step));
            skip(&mut reports, i);
            break;
        }
        if ctx.cancel.is_cancelled() {
            stopped_reason = Some(format!("cancelled before step {}", i + 1));
            skip(&mut reports, i);
            all_ok = false;
            break;
        }
        ctx.progress.report(
            i as f64,
            Some(steps.len() as f64),
            format!("step {}: {}", i + 1, step.tool),
        );
        let attempts_allowed = 1 + step.max_retries.unwrap_or(0).min(policy.max_retries_per_tool);
        let mut caller = Caller::new(Door::Playbook);
        caller.run = Some((run_id.clone(), i));
        let mut attempts = 0;
        let (outcome, output) = loop {
            attempts += 1;
            let call = engine.call(
                &caller,
                &step.tool,
                Some(step.args.clone()),
                // The run as a whole was approved (or needed no approval).
                ApprovalSource::Granted {
                    via: "playbook",
                    id: Some(run_id.clone()),
                    remember: crate::policy::Remember::Once,
                },
                CallOptions {
                    cancel: ctx.cancel.clone(),
                    progress: Default::default(),
                },
            );
            let (outcome, output) = match call.await {
                Ok(CallOutcome::Done(r)) if !r.is_error => (StepOutcome::Ok, r.text),
                Ok(CallOutcome::Done(r)) if r.decision != Decision::Allowed => (StepOutcome::Refused, r.text),
                Ok(CallOutcome::Done(r)) => (StepOutcome::Error, r.text),
                Ok(CallOutcome::NeedsInput(_)) => (StepOutcome::Refused, "approval required".to_owned()),
                Err(e) => (StepOutcome::Refused, e.to_string()),
            };
            if outcome == StepOutcome::Error && attempts < attempts_allowed && !ctx.cancel.is_cancelled() {
                continue;
            }
            break (outcome, output);
        };
        let ok = outcome == StepOutcome::Ok;
        reports.push(StepReport {
            index: i,
            name: step.name.clone(),
            tool: step.tool.clone(),
            risk: step_risk(policy, step),
            needs_approval: false,
            attempts,
            outcome,
            output: truncate_str(&output, MAX_STEP_OUTPUT).0.to_owned(),
        });
        if !ok {
            all_ok = false;
            let stop = outcome == StepOutcome::Refused || !step.continue_on_error;
            if stop {
                stopped_reason = Some(match outcome {
                    StepOutcome::Refused => format!("step {} ({}) was refused", i + 1, step.tool),
                    _ => format!("step {} ({}) failed after {attempts} attempt(s)", i + 1, step.tool),
                });
                skip(&mut reports, i + 1);
                break;
            }
        }
    }
    Ok(Output {
        playbook,
        run_id,
        dry_run: false,
        completed: all_ok && !budget_exhausted,
        budget_exhausted,
        stopped_before,
        stopped_reason,
        steps: reports,
    })
}
