//! The REST API under `/api/v1`, compatible with the original execution layer:
//! tools, run, approvals, audit and config. Calls go through the same gate as
//! MCP; a tool's own failure is a 200 with `is_error: true`.

use std::time::{Duration, SystemTime};

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::json_error;
use crate::audit::{Decision, Door};
use crate::engine::OperatorError;
use crate::engine::{ApprovalSource, CallOptions, CallOutcome, Caller, GateError};
use crate::policy::{Approval, ApprovalError, ApprovalMode, Remember, Rule, RuleSet};
use crate::server::Core;
use crate::tools::APPROVAL_ID_ARG;

pub fn routes(core: Core) -> Router {
    Router::new()
        .route("/execution/tools", get(list_tools))
        .route("/execution/tools/{name}/enabled", post(set_enabled))
        .route("/execution/run", post(run))
        .route("/execution/approve", post(grant))
        .route("/execution/approvals", get(pending))
        .route("/execution/approvals/{id}/approve", post(approve))
        .route("/execution/approvals/{id}/deny", post(deny))
        .route("/execution/audit", get(audit))
        .route("/execution/config", get(get_config).put(put_config))
        .route("/execution/rules", get(get_rules).put(put_rules))
        .route("/brain/status", get(brain_status))
        .route("/execution/stats", get(stats))
        .route("/execution/playbooks", get(playbooks))
        .route("/execution/playbooks/{name}/run", post(run_playbook))
        .with_state(core)
}

async fn list_tools(State(core): State<Core>) -> Json<Value> {
    let policy = core.engine.policy.current();
    let tools: Vec<Value> = core
        .engine
        .registry
        .iter()
        .map(|t| {
            let s = t.spec();
            json!({
                "name": s.name,
                "title": s.title,
                "description": s.description,
                "enabled": policy.enabled(s.name),
                "risk_level": policy.risk(s.name).as_str(),
                "input_schema": Value::Object((*s.input_schema).clone()),
            })
        })
        .collect();
    Json(json!({ "tools": tools, "approval_mode": policy.approval_mode }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnabledBody {
    enabled: bool,
}

async fn set_enabled(State(core): State<Core>, Path(name): Path<String>, body: Option<Json<EnabledBody>>) -> Response {
    let Some(Json(body)) = body else {
        return json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid body",
            Some("send {\"enabled\": true|false}".into()),
        );
    };
    if core.engine.registry.get(&name).is_none() {
        return json_error(StatusCode::NOT_FOUND, "unknown tool", Some(name));
    }
    match core.engine.policy.set_enabled(&name, body.enabled) {
        Ok(_) => {
            tracing::info!(tool = %name, enabled = body.enabled, "tool toggled over REST");
            Json(json!({ "name": name, "enabled": body.enabled })).into_response()
        }
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot save the policy",
            Some(e.to_string()),
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    tool_name: String,
    #[serde(default)]
    args: Option<Map<String, Value>>,
    #[serde(default)]
    approval_id: Option<String>,
}

/// A body that could not be read: too large (413) or not the expected JSON (422).
fn rejected(e: axum::extract::rejection::JsonRejection, what: &str) -> Response {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
            Some("the body is over the server's limit (--max-body-bytes); send less, e.g. split the patch".into()),
        );
    }
    json_error(StatusCode::UNPROCESSABLE_ENTITY, what, Some(e.body_text()))
}

fn caller(headers: &http::HeaderMap) -> Caller {
    let mut caller = Caller::new(Door::Rest);
    caller.client = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| crate::tools::truncate_str(s, 80).0.to_owned());
    caller
}

async fn run(
    State(core): State<Core>,
    headers: http::HeaderMap,
    body: Result<Json<RunBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(body)) => run_call(&core, &headers, body).await,
        Err(e) => rejected(e, "invalid body"),
    }
}

async fn run_call(core: &Core, headers: &http::HeaderMap, body: RunBody) -> Response {
    let mut args = body.args.unwrap_or_default();
    if let Some(id) = body.approval_id {
        args.insert(APPROVAL_ID_ARG.into(), Value::from(id));
    }
    let outcome = core
        .engine
        .call(
            &caller(headers),
            &body.tool_name,
            Some(args),
            ApprovalSource::IdOnly,
            CallOptions::default(),
        )
        .await;
    match outcome {
        Err(GateError::UnknownTool(name)) => json_error(StatusCode::NOT_FOUND, "unknown tool", Some(name)),
        Err(GateError::InvalidArgs(detail)) => {
            json_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid arguments", Some(detail))
        }
        Ok(CallOutcome::NeedsInput(_)) => json_error(StatusCode::FORBIDDEN, "approval required", None),
        Ok(CallOutcome::Done(r)) => match r.decision {
            Decision::Disabled => (
                StatusCode::CONFLICT,
                Json(json!({"error": "tool disabled", "tool_name": body.tool_name, "detail": r.text})),
            )
                .into_response(),
            Decision::ApprovalRequired | Decision::Denied => (
                StatusCode::FORBIDDEN,
                Json(json!({
                    "error": "approval required",
                    "tool_name": body.tool_name,
                    "pending_id": r.pending_id,
                    "detail": r.text,
                })),
            )
                .into_response(),
            _ => {
                // `text` is the main text (a file's text without execlayer's
                // notes); `notes` holds the notes; `blocks`, present when there
                // is more than one block, holds every block in order.
                let mut answer = json!({
                    "tool_name": body.tool_name,
                    "ok": !r.is_error,
                    "is_error": r.is_error,
                    "result": r.structured,
                    "text": r.text,
                    "notes": r.blocks.iter().filter(|b| b.note).map(|b| b.text.as_str()).collect::<Vec<_>>(),
                });
                if !r.blocks.is_empty() {
                    answer["blocks"] = json!(r.blocks);
                }
                Json(answer).into_response()
            }
        },
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// An approval as the REST API and the operator socket show it.
pub fn approval_json(a: &Approval) -> Value {
    let now = SystemTime::now();
    let remember = a.remember.as_ref().map(|o| {
        json!({
            "what": o.what,
            "choices": crate::policy::RememberOffer::choices(Some(o))
                .into_iter()
                .filter(|(r, _)| *r != Remember::Session || a.session.is_some())
                .map(|(r, title)| json!({"value": r.as_str(), "title": title}))
                .collect::<Vec<_>>(),
        })
    });
    json!({
        "remember": remember,
        "door": a.door,
        "id": a.id,
        "tool": a.tool,
        "risk": a.risk,
        "preview": a.preview,
        "state": a.state,
        "bound_to_arguments": a.args_digest.is_some(),
        "created_at": unix(a.created_at),
        "expires_at": unix(a.expires_at),
        "age_seconds": now.duration_since(a.created_at).map(|d| d.as_secs()).unwrap_or(0),
        "expires_in_seconds": a.expires_at.duration_since(now).map(|d| d.as_secs()).unwrap_or(0),
    })
}

#[derive(Deserialize)]
struct GrantQuery {
    tool_name: String,
}

async fn grant(State(core): State<Core>, Query(q): Query<GrantQuery>) -> Response {
    if core.engine.registry.get(&q.tool_name).is_none() {
        return json_error(StatusCode::NOT_FOUND, "unknown tool", Some(q.tool_name));
    }
    let policy = core.engine.policy.current();
    let ttl = Duration::from_secs(policy.approval_ttl_seconds);
    let a = match core
        .engine
        .state
        .grant_tool(&q.tool_name, policy.risk(&q.tool_name), "operator (REST)", ttl)
        .await
    {
        Ok(a) => a,
        Err(e) => return store_error(e),
    };
    core.engine.record_operator(&a, true, "operator", None);
    Json(json!({
        "approval_id": a.id,
        "tool_name": a.tool,
        "expires_at": unix(a.expires_at),
        "expires_in_seconds": ttl.as_secs(),
    }))
    .into_response()
}

/// The state store could not be asked: 503, and nothing changed.
fn store_error(e: ApprovalError) -> Response {
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "approval state store unavailable",
        Some(e.to_string()),
    )
}

async fn pending(State(core): State<Core>) -> Response {
    match core.engine.state.pending().await {
        Ok(list) => {
            let list: Vec<Value> = list.iter().map(approval_json).collect();
            Json(json!({ "pending": list })).into_response()
        }
        Err(e) => store_error(e),
    }
}

/// An operator's answer: `{"remember": "once" | "session" | "always"}` (optional).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DecideBody {
    #[serde(default)]
    remember: Option<String>,
}

async fn decide(core: &Core, id: &str, approve: bool, remember: Remember) -> Response {
    match core
        .engine
        .decide_operator(id, approve, remember, "operator (REST)", "operator (REST)")
        .await
    {
        Ok(a) => {
            let mut body = approval_json(&a);
            body["remembered"] = json!(remember.as_str());
            Json(body).into_response()
        }
        Err(OperatorError::NotPending(e)) => json_error(StatusCode::CONFLICT, "not pending", Some(e)),
        Err(OperatorError::Invalid(e)) => json_error(StatusCode::UNPROCESSABLE_ENTITY, "cannot remember", Some(e)),
        Err(OperatorError::Unknown(e)) => json_error(StatusCode::NOT_FOUND, "unknown approval", Some(e)),
        Err(OperatorError::Unavailable(e)) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "approval state store unavailable",
            Some(e),
        ),
    }
}

async fn approve(State(core): State<Core>, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    let parsed = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(DecideBody::default())
    } else {
        serde_json::from_slice::<DecideBody>(&body)
    };
    let remember = match parsed {
        Err(e) => {
            return json_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid body",
                Some(format!(
                    "{e}; send nothing, or {{\"remember\": \"once\" | \"session\" | \"always\"}}"
                )),
            );
        }
        Ok(b) => match b.remember.as_deref() {
            None => Remember::Once,
            Some(text) => match Remember::parse(text) {
                Some(r) => r,
                None => {
                    return json_error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid remember",
                        Some(format!("`remember` is {text:?}; use once, session or always")),
                    );
                }
            },
        },
    };
    decide(&core, &id, true, remember).await
}

async fn deny(State(core): State<Core>, Path(id): Path<String>) -> Response {
    decide(&core, &id, false, Remember::Once).await
}

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<usize>,
    tool: Option<String>,
    decision: Option<String>,
}

async fn audit(State(core): State<Core>, Query(q): Query<AuditQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).clamp(1, 1_000);
    let engine = core.engine.clone();
    let entries = tokio::task::spawn_blocking(move || {
        engine.audit.tail(limit, |r| {
            q.tool.as_deref().is_none_or(|t| r.tool == t)
                && q.decision.as_deref().is_none_or(|d| {
                    serde_json::to_value(r.decision)
                        .ok()
                        .and_then(|v| v.as_str().map(|s| s == d))
                        == Some(true)
                })
        })
    })
    .await;
    match entries {
        Ok(Ok(entries)) => Json(json!({ "entries": entries })).into_response(),
        Ok(Err(e)) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the audit log",
            Some(e.to_string()),
        ),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the audit log",
            Some(e.to_string()),
        ),
    }
}

async fn playbooks(State(core): State<Core>) -> Json<Value> {
    let (found, errors) = crate::playbook::load_dir(&core.engine.settings.playbooks_dir, &core.engine.registry);
    let list: Vec<Value> = found
        .into_iter()
        .map(|(name, book)| json!({"name": name, "description": book.description, "steps": book.steps}))
        .collect();
    Json(json!({ "playbooks": list, "errors": errors }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PlaybookRunBody {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    approval_id: Option<String>,
}

async fn run_playbook(
    State(core): State<Core>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
    body: Option<Json<PlaybookRunBody>>,
) -> Response {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let run = RunBody {
        tool_name: "run_playbook".into(),
        args: Some(
            json!({"name": name, "dry_run": body.dry_run})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ),
        approval_id: body.approval_id,
    };
    run_call(&core, &headers, run).await
}

/// Calls and errors per tool, from the audit log.
async fn stats(State(core): State<Core>) -> Json<Value> {
    Json(json!({ "tools": core.engine.audit.counts() }))
}

async fn brain_status(State(core): State<Core>) -> Json<Value> {
    let status = crate::brain::status(
        &core.engine.settings,
        &core.engine.policy.current(),
        &core.engine.sandbox,
    )
    .await;
    Json(serde_json::to_value(status).unwrap_or(Value::Null))
}

async fn get_rules(State(core): State<Core>) -> Json<Value> {
    Json(json!({ "rules": core.engine.policy.current().rules }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesBody {
    rules: Vec<Rule>,
}

/// Replaces the rules, validated like the policy file (errors name the rule's index and field).
async fn put_rules(
    State(core): State<Core>,
    body: Result<Json<RulesBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return rejected(e, "invalid rules"),
    };
    let result = core.engine.policy.update(|p| {
        p.rules = RuleSet::new(body.rules)?;
        Ok(())
    });
    match result {
        Ok(policy) => {
            tracing::info!(rules = policy.rules.len(), "rules replaced over REST");
            Json(json!({ "rules": policy.rules })).into_response()
        }
        Err(e @ crate::policy::PolicyError::Invalid { .. }) => {
            json_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid rules", Some(e.to_string()))
        }
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot save the policy",
            Some(e.to_string()),
        ),
    }
}

async fn get_config(State(core): State<Core>) -> Json<Value> {
    Json(serde_json::to_value(&*core.engine.policy.current()).unwrap_or(Value::Null))
}

/// The settings the API may change; tools are toggled through their own route.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigPatch {
    approval_mode: Option<ApprovalMode>,
    approval_ttl_seconds: Option<u64>,
    approval_timeout_seconds: Option<u64>,
    max_steps_per_run: Option<u32>,
    max_retries_per_tool: Option<u32>,
}

async fn put_config(
    State(core): State<Core>,
    body: Result<Json<ConfigPatch>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(patch) = match body {
        Ok(b) => b,
        Err(e) => return rejected(e, "invalid config"),
    };
    let result = core.engine.policy.update(|p| {
        if let Some(v) = patch.approval_mode {
            p.approval_mode = v;
        }
        if let Some(v) = patch.approval_ttl_seconds {
            p.approval_ttl_seconds = v;
        }
        if let Some(v) = patch.approval_timeout_seconds {
            p.approval_timeout_seconds = v;
        }
        if let Some(v) = patch.max_steps_per_run {
            p.max_steps_per_run = v;
        }
        if let Some(v) = patch.max_retries_per_tool {
            p.max_retries_per_tool = v;
        }
        Ok(())
    });
    match result {
        Ok(policy) => Json(serde_json::to_value(&*policy).unwrap_or(Value::Null)).into_response(),
        Err(e @ crate::policy::PolicyError::Invalid { .. }) => {
            json_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid config", Some(e.to_string()))
        }
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot save the policy",
            Some(e.to_string()),
        ),
    }
}
