//! The approval state behind one small trait, [`StateStore`]: approval ids
//! (pending, approved, denied) with their previews, consumed `requestState`
//! nonces, and remembered session answers.
//!
//! Two homes: [`memory::MemoryStore`] for one instance (today's behaviour; with
//! a fixed `EXECUTION_STATE_KEY` its consumed nonces also go to a small file so
//! a restart does not forget them) and [`redis::RedisStore`] when
//! `EXECUTION_STATE_URL=redis://…` is set, shared by every instance. Every
//! consume is one atomic step in the store (a mutex in memory; `SET NX` or a
//! Lua script in Redis), so no id and no state works twice whichever instance
//! sees it. A store that cannot be reached answers [`ApprovalError::Unavailable`]:
//! the caller refuses the call, it never approves it.

pub mod memory;
pub mod redis;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use thiserror::Error;

use crate::policy::{RememberOffer, Risk};
use crate::settings::Settings;
use crate::tools::BoxFuture;

/// Where an approval stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ApprovalState {
    Pending,
    Approved { by: String },
    Denied { by: String },
}

/// One approval id and what it is for.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    pub id: String,
    pub tool: String,
    /// The argument digest this id is bound to; `None` for a tool-wide grant.
    pub args_digest: Option<String>,
    /// A readable summary of the call, for the operator.
    pub preview: String,
    pub risk: Risk,
    #[serde(flatten)]
    pub state: ApprovalState,
    #[serde(with = "unix_seconds")]
    pub created_at: SystemTime,
    #[serde(with = "unix_seconds")]
    pub expires_at: SystemTime,
    /// What an operator's yes could be remembered as (`--remember session|always`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remember: Option<RememberOffer>,
    /// The MCP session that made the call; only its own calls can use a `session` answer.
    #[serde(skip)]
    pub session: Option<String>,
    /// The door the call came through (`stdio`, `http`, `rest`, `playbook`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub door: Option<String>,
}

impl Approval {
    fn new(tool: &str, digest: Option<&str>, preview: &str, risk: Risk, state: ApprovalState, ttl: Duration) -> Self {
        let now = SystemTime::now();
        Self {
            id: new_id(),
            tool: tool.to_owned(),
            args_digest: digest.map(str::to_owned),
            preview: preview.to_owned(),
            risk,
            state,
            created_at: now,
            expires_at: now + ttl,
            remember: None,
            session: None,
            door: None,
        }
    }
}

mod unix_seconds {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let secs = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        s.serialize_f64((secs * 1000.0).round() / 1000.0)
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ApprovalError {
    #[error("approval id {0} is unknown, already used, or expired; ask for a new approval")]
    Unknown(String),
    #[error("approval id {id} was granted for `{granted}`, not `{asked}`")]
    WrongTool { id: String, granted: String, asked: String },
    #[error("approval id {0} was granted for different arguments; approve this exact call")]
    WrongArguments(String),
    #[error("approval id {0} is still waiting for an operator")]
    StillPending(String),
    #[error("approval id {id} was denied by {by}")]
    Denied { id: String, by: String },
    #[error("approval id {0} is not pending")]
    NotPending(String),
    /// The shared store could not be asked; nothing was approved or recorded.
    #[error(
        "the approval state store ({store}) is unavailable: {reason}; nothing was approved, so the call did not run. Retry once the store is back; calls that need no approval still work"
    )]
    Unavailable { store: String, reason: String },
}

/// A new random id: 128 bits, hex.
pub fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// The approval state, wherever it lives. Every method is one step in the
/// store: checks and changes happen together or not at all.
pub trait StateStore: Send + Sync {
    /// A short name for logs and errors: `memory` or the Redis address.
    fn describe(&self) -> String;

    /// Records a refused call that waits for an operator, or returns the id
    /// already pending for the same tool and arguments.
    fn request<'a>(
        &'a self,
        tool: &'a str,
        digest: &'a str,
        preview: &'a str,
        risk: Risk,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Approval, ApprovalError>>;

    /// Grants a tool-wide, single-use approval (the seed's `POST /approve?tool_name=`).
    fn grant_tool<'a>(
        &'a self,
        tool: &'a str,
        risk: Risk,
        by: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Approval, ApprovalError>>;

    /// An operator's answer to a pending id. An approval gets a fresh TTL.
    fn decide<'a>(
        &'a self,
        id: &'a str,
        approve: bool,
        by: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Approval, ApprovalError>>;

    /// Uses `id` for one call of `tool` with arguments `digest`. On success the
    /// id is gone; a denied id is gone too.
    fn consume<'a>(
        &'a self,
        id: &'a str,
        tool: &'a str,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<Approval, ApprovalError>>;

    /// Notes what a yes to pending `id` could be remembered as, whose session
    /// asked and through which door. An id that is gone is left alone.
    fn annotate<'a>(
        &'a self,
        id: &'a str,
        offer: Option<RememberOffer>,
        session: Option<String>,
        door: &'a str,
    ) -> BoxFuture<'a, Result<(), ApprovalError>>;

    /// The approval `id`, whatever its state; `None` when unknown or expired.
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Approval>, ApprovalError>>;

    /// Calls waiting for an operator, oldest first.
    fn pending(&self) -> BoxFuture<'_, Result<Vec<Approval>, ApprovalError>>;

    /// Marks a `requestState` nonce used for `ttl`: `Ok(true)` the first time,
    /// `Ok(false)` for every later attempt, on any instance.
    fn consume_nonce<'a>(&'a self, nonce: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool, ApprovalError>>;

    /// Remembers an answer (`key`, e.g. a rule) for one session, for `ttl`.
    fn remember_session<'a>(
        &'a self,
        session_id: &'a str,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), ApprovalError>>;

    /// Whether `key` was remembered for this session and has not expired.
    fn is_remembered<'a>(&'a self, session_id: &'a str, key: &'a str) -> BoxFuture<'a, Result<bool, ApprovalError>>;
}

/// The file (beside the audit log) where consumed nonces persist when the
/// sealing key is fixed and no shared store is set.
pub fn nonce_file(settings: &Settings) -> PathBuf {
    nonce_file_beside(&settings.audit_log)
}

fn nonce_file_beside(audit_log: &Path) -> PathBuf {
    audit_log.with_file_name("used-request-states")
}

/// Opens the store the settings ask for. Redis connects lazily, so a Redis
/// that is down at start only refuses approvals until it is up.
pub fn open(settings: &Settings) -> anyhow::Result<Arc<dyn StateStore>> {
    if let Some(url) = &settings.state_url {
        let store = redis::RedisStore::open(url, settings.state_timeout)?;
        tracing::info!(store = %store.describe(), "approval state is shared through Redis");
        return Ok(Arc::new(store));
    }
    if settings.state_key.is_some() {
        let file = nonce_file(settings);
        tracing::warn!(
            file = %file.display(),
            "EXECUTION_STATE_KEY is set but EXECUTION_STATE_URL is not: approval ids and used requestStates live in this process (used states also in the file, so a restart still refuses them). Another instance sharing this key would accept a requestState this one already used; to run several instances set EXECUTION_STATE_URL=redis://…"
        );
        return Ok(Arc::new(memory::MemoryStore::with_nonce_file(&file)?));
    }
    Ok(Arc::new(memory::MemoryStore::new()))
}
