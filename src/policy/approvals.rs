//! The approvals store: short-lived, single-use ids that let one risky call run.
//!
//! An id is either *pending* (a refused call waiting for an operator), or
//! *approved* (granted for one tool, and bound to one call's argument digest
//! when it came from a pending call). [`Approvals::consume`] checks the tool,
//! the digest and the expiry and removes the id, so no id works twice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use thiserror::Error;

use super::Risk;

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
    pub remember: Option<super::remember::RememberOffer>,
    /// The MCP session that made the call; only its own calls can use a `session` answer.
    #[serde(skip)]
    pub session: Option<String>,
    /// The door the call came through (`stdio`, `http`, `rest`, `playbook`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub door: Option<String>,
    #[serde(skip)]
    deadline: Instant,
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
}

/// All live approval ids.
#[derive(Debug, Default)]
pub struct Approvals {
    entries: Mutex<HashMap<String, Approval>>,
}

/// A new random id: 128 bits, hex.
pub fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

impl Approvals {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Approval>> {
        // A panic while holding the lock cannot leave an entry half-written.
        let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        guard.retain(|_, a| a.deadline > now);
        guard
    }

    fn make(
        tool: &str,
        digest: Option<&str>,
        preview: &str,
        risk: Risk,
        state: ApprovalState,
        ttl: Duration,
    ) -> Approval {
        Approval {
            id: new_id(),
            tool: tool.to_owned(),
            args_digest: digest.map(str::to_owned),
            preview: preview.to_owned(),
            risk,
            state,
            created_at: SystemTime::now(),
            expires_at: SystemTime::now() + ttl,
            remember: None,
            session: None,
            door: None,
            deadline: Instant::now() + ttl,
        }
    }

    /// Records a refused call that waits for an operator, or returns the id
    /// already pending for the same tool and arguments.
    pub fn request(&self, tool: &str, digest: &str, preview: &str, risk: Risk, ttl: Duration) -> Approval {
        let mut entries = self.lock();
        if let Some(existing) = entries
            .values()
            .find(|a| a.state == ApprovalState::Pending && a.tool == tool && a.args_digest.as_deref() == Some(digest))
        {
            return existing.clone();
        }
        let approval = Self::make(tool, Some(digest), preview, risk, ApprovalState::Pending, ttl);
        entries.insert(approval.id.clone(), approval.clone());
        approval
    }

    /// Notes what a yes to pending `id` could be remembered as, whose session
    /// asked and through which door.
    pub fn annotate(
        &self,
        id: &str,
        offer: Option<super::remember::RememberOffer>,
        session: Option<String>,
        door: &str,
    ) {
        if let Some(entry) = self.lock().get_mut(id) {
            entry.remember = offer;
            entry.session = session;
            entry.door = Some(door.to_owned());
        }
    }

    /// Grants a tool-wide, single-use approval (the seed's `POST /approve?tool_name=`).
    pub fn grant_tool(&self, tool: &str, risk: Risk, by: &str, ttl: Duration) -> Approval {
        let approval = Self::make(
            tool,
            None,
            "any call of this tool",
            risk,
            ApprovalState::Approved { by: by.to_owned() },
            ttl,
        );
        self.lock().insert(approval.id.clone(), approval.clone());
        approval
    }

    /// An operator's answer to a pending id. An approval gets a fresh TTL.
    pub fn decide(&self, id: &str, approve: bool, by: &str, ttl: Duration) -> Result<Approval, ApprovalError> {
        let mut entries = self.lock();
        let entry = entries
            .get_mut(id)
            .ok_or_else(|| ApprovalError::Unknown(id.to_owned()))?;
        if entry.state != ApprovalState::Pending {
            return Err(ApprovalError::NotPending(id.to_owned()));
        }
        entry.state = if approve {
            ApprovalState::Approved { by: by.to_owned() }
        } else {
            ApprovalState::Denied { by: by.to_owned() }
        };
        entry.deadline = Instant::now() + ttl;
        entry.expires_at = SystemTime::now() + ttl;
        Ok(entry.clone())
    }

    /// Uses `id` for one call of `tool` with arguments `digest`. On success the
    /// id is gone; a denied id is gone too.
    pub fn consume(&self, id: &str, tool: &str, digest: &str) -> Result<Approval, ApprovalError> {
        let mut entries = self.lock();
        let entry = entries.get(id).ok_or_else(|| ApprovalError::Unknown(id.to_owned()))?;
        if entry.tool != tool {
            return Err(ApprovalError::WrongTool {
                id: id.to_owned(),
                granted: entry.tool.clone(),
                asked: tool.to_owned(),
            });
        }
        if entry.args_digest.as_deref().is_some_and(|d| d != digest) {
            return Err(ApprovalError::WrongArguments(id.to_owned()));
        }
        match &entry.state {
            ApprovalState::Pending => Err(ApprovalError::StillPending(id.to_owned())),
            ApprovalState::Denied { by } => {
                let err = ApprovalError::Denied {
                    id: id.to_owned(),
                    by: by.clone(),
                };
                entries.remove(id);
                Err(err)
            }
            ApprovalState::Approved { .. } => entries.remove(id).ok_or_else(|| ApprovalError::Unknown(id.to_owned())),
        }
    }

    /// Calls waiting for an operator, oldest first.
    pub fn pending(&self) -> Vec<Approval> {
        let mut list: Vec<Approval> = self
            .lock()
            .values()
            .filter(|a| a.state == ApprovalState::Pending)
            .cloned()
            .collect();
        list.sort_by_key(|a| a.deadline);
        list
    }

    /// Looks an id up without using it.
    pub fn get(&self, id: &str) -> Option<Approval> {
        self.lock().get(id).cloned()
    }

    /// Ends a pending request (its caller went away).
    pub fn withdraw(&self, id: &str) {
        let mut entries = self.lock();
        if entries.get(id).is_some_and(|a| a.state == ApprovalState::Pending) {
            entries.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn a_granted_id_works_once_for_its_tool_only() {
        let store = Approvals::new();
        let a = store.grant_tool("apply_patch", Risk::Medium, "op", TTL);
        assert!(matches!(
            store.consume(&a.id, "shell_exec", "d"),
            Err(ApprovalError::WrongTool { .. })
        ));
        assert!(store.consume(&a.id, "apply_patch", "any").is_ok());
        assert_eq!(
            store.consume(&a.id, "apply_patch", "any").err(),
            Some(ApprovalError::Unknown(a.id.clone()))
        );
    }

    #[test]
    fn a_pending_id_is_bound_to_its_arguments() {
        let store = Approvals::new();
        let p = store.request("shell_exec", "d1", "ls", Risk::High, TTL);
        assert_eq!(store.request("shell_exec", "d1", "ls", Risk::High, TTL).id, p.id);
        assert!(matches!(
            store.consume(&p.id, "shell_exec", "d1"),
            Err(ApprovalError::StillPending(_))
        ));
        store.decide(&p.id, true, "op", TTL).unwrap();
        assert!(matches!(
            store.consume(&p.id, "shell_exec", "d2"),
            Err(ApprovalError::WrongArguments(_))
        ));
        assert!(store.consume(&p.id, "shell_exec", "d1").is_ok());
        assert!(store.consume(&p.id, "shell_exec", "d1").is_err());
    }

    #[test]
    fn denied_and_expired_ids_never_work() {
        let store = Approvals::new();
        let p = store.request("shell_exec", "d", "ls", Risk::High, TTL);
        store.decide(&p.id, false, "op", TTL).unwrap();
        assert!(matches!(
            store.consume(&p.id, "shell_exec", "d"),
            Err(ApprovalError::Denied { .. })
        ));
        let short = store.grant_tool("shell_exec", Risk::High, "op", Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(matches!(
            store.consume(&short.id, "shell_exec", "d"),
            Err(ApprovalError::Unknown(_))
        ));
        assert!(store.pending().is_empty());
    }
}
