//! Policy: the policy file ([`config`]), the live copy every call reads
//! ([`PolicyStore`]); approval ids live in [`crate::state`].
//!
//! The store keeps the parsed policy behind an `Arc` so a call reads it without
//! touching the disk; changes (REST, a file edit picked up by [`PolicyStore::reload`],
//! SIGHUP) bump a version that MCP sessions watch to send `tools/list_changed`.

pub mod approvals;
pub mod config;
pub mod remember;
pub mod rules;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

pub use approvals::{Approval, ApprovalError, ApprovalState};
pub use config::{ApprovalMode, Policy, PolicyError, PolicyFile, Risk, ToolPolicy};
pub use remember::{MemorySessionAnswers, Remember, RememberOffer, SessionAnswers};
pub use rules::{Rule, RuleDecision, RuleSet, Subject, Verdict};
use tokio::sync::watch;

/// The live policy, its file, and a change signal.
pub struct PolicyStore {
    path: PathBuf,
    tool_risks: Vec<(&'static str, Risk)>,
    current: RwLock<Arc<Policy>>,
    /// (modified time, length) of the file when last read, to skip no-op reloads.
    stamp: RwLock<Option<(SystemTime, u64)>>,
    changes: watch::Sender<u64>,
}

impl PolicyStore {
    /// Loads the policy file at `path` (defaults when it does not exist).
    pub fn open(path: &Path, tool_risks: Vec<(&'static str, Risk)>) -> Result<Self, PolicyError> {
        let policy = PolicyFile::load(path, &tool_risks)?;
        let (changes, _) = watch::channel(0);
        Ok(Self {
            path: path.to_path_buf(),
            stamp: RwLock::new(file_stamp(path)),
            tool_risks,
            current: RwLock::new(Arc::new(policy)),
            changes,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<Policy> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A receiver that sees a new value each time the policy changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Re-reads the file if it changed on disk. Returns whether the policy changed.
    /// A file that no longer parses leaves the policy as it was.
    pub fn reload(&self) -> Result<bool, PolicyError> {
        let stamp = file_stamp(&self.path);
        if *self.stamp.read().unwrap_or_else(|p| p.into_inner()) == stamp {
            return Ok(false);
        }
        let policy = PolicyFile::load(&self.path, &self.tool_risks)?;
        *self.stamp.write().unwrap_or_else(|p| p.into_inner()) = stamp;
        Ok(self.replace(policy))
    }

    fn replace(&self, policy: Policy) -> bool {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if **current == policy {
            return false;
        }
        *current = Arc::new(policy);
        drop(current);
        self.changes.send_modify(|v| *v += 1);
        true
    }

    /// Applies `change` to a copy of the policy, validates it, writes the file
    /// atomically and makes it current. Returns the new policy.
    pub fn update(&self, change: impl FnOnce(&mut Policy) -> Result<(), String>) -> Result<Arc<Policy>, PolicyError> {
        let invalid = |message: String| PolicyError::Invalid {
            path: self.path.display().to_string(),
            message,
        };
        let mut next = (*self.current()).clone();
        change(&mut next).map_err(invalid)?;
        next.validate(&self.tool_risks).map_err(invalid)?;
        crate::fsutil::write_atomic(&self.path, next.to_pretty_json().as_bytes(), true).map_err(|e| {
            PolicyError::Write {
                path: self.path.display().to_string(),
                message: e.to_string(),
            }
        })?;
        *self.stamp.write().unwrap_or_else(|p| p.into_inner()) = file_stamp(&self.path);
        self.replace(next);
        Ok(self.current())
    }

    /// Turns a tool on or off and persists it.
    pub fn set_enabled(&self, tool: &str, enabled: bool) -> Result<Arc<Policy>, PolicyError> {
        self.update(|p| {
            let entry = p
                .tools
                .get_mut(tool)
                .ok_or_else(|| format!("`{tool}` is not a known tool"))?;
            entry.enabled = enabled;
            Ok(())
        })
    }
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RISKS: &[(&str, Risk)] = &[("filesystem_read", Risk::Low), ("shell_exec", Risk::High)];

    #[test]
    fn missing_file_means_defaults_and_unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        let store = PolicyStore::open(&path, RISKS.to_vec()).unwrap();
        assert_eq!(*store.current(), PolicyFile::defaults(RISKS));

        std::fs::write(&path, r#"{"approval_mode":"auto","approval_ttl_seconds":300,"approval_timeout_seconds":120,"max_steps_per_run":10,"max_retries_per_tool":2,"colour":"red"}"#).unwrap();
        let err = PolicyStore::open(&path, RISKS.to_vec()).err().unwrap().to_string();
        assert!(err.contains("colour"), "{err}");

        std::fs::write(&path, r#"{"approval_mode":"sometimes","approval_ttl_seconds":300,"approval_timeout_seconds":120,"max_steps_per_run":10,"max_retries_per_tool":2}"#).unwrap();
        let err = PolicyStore::open(&path, RISKS.to_vec()).err().unwrap().to_string();
        assert!(err.contains("sometimes"), "{err}");

        std::fs::write(&path, r#"{"approval_mode":"auto","approval_ttl_seconds":300,"approval_timeout_seconds":120,"max_steps_per_run":0,"max_retries_per_tool":2}"#).unwrap();
        let err = PolicyStore::open(&path, RISKS.to_vec()).err().unwrap().to_string();
        assert!(err.contains("max_steps_per_run"), "{err}");

        std::fs::write(&path, r#"{"approval_mode":"auto","approval_ttl_seconds":300,"approval_timeout_seconds":120,"max_steps_per_run":3,"max_retries_per_tool":2,"tools":{"rm_rf":{"risk_level":"low"}}}"#).unwrap();
        let err = PolicyStore::open(&path, RISKS.to_vec()).err().unwrap().to_string();
        assert!(err.contains("tools.rm_rf"), "{err}");
    }

    #[test]
    fn left_out_keys_take_defaults_and_bad_rules_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        std::fs::write(&path, r#"{"approval_mode":"auto"}"#).unwrap();
        let policy = PolicyStore::open(&path, RISKS.to_vec()).unwrap().current();
        assert_eq!(policy.approval_mode, ApprovalMode::Auto);
        assert_eq!(policy.approval_ttl_seconds, 300);
        assert_eq!(policy.rules, config::shipped_rules());

        std::fs::write(&path, r#"{"rules":[{"tool":"shell_exec","command":"ls","decision":"allow"},{"tool":"shell_exec","command":"ls","decision":"maybe"}]}"#).unwrap();
        let err = PolicyStore::open(&path, RISKS.to_vec()).err().unwrap().to_string();
        assert!(err.contains("maybe"), "{err}");
        std::fs::write(
            &path,
            r#"{"rules":[{"tool":"shell_exec","command":"ls","decision":"allow","colour":1}]}"#,
        )
        .unwrap();
        let err = PolicyStore::open(&path, RISKS.to_vec()).err().unwrap().to_string();
        assert!(err.contains("colour"), "{err}");
        std::fs::write(
            &path,
            r#"{"rules":[{"tool":"shell_exec","path":"x","decision":"allow"}]}"#,
        )
        .unwrap();
        let err = PolicyStore::open(&path, RISKS.to_vec()).err().unwrap().to_string();
        assert!(err.contains("rules[0].path"), "{err}");
        std::fs::write(&path, r#"{"rules":[{"tool":"nope","decision":"allow"}]}"#).unwrap();
        let err = PolicyStore::open(&path, RISKS.to_vec()).err().unwrap().to_string();
        assert!(err.contains("rules[0].tool"), "{err}");
        std::fs::write(&path, r#"{"rules":[]}"#).unwrap();
        assert!(
            PolicyStore::open(&path, RISKS.to_vec())
                .unwrap()
                .current()
                .rules
                .is_empty()
        );
    }

    #[test]
    fn updates_persist_and_signal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/policy.json");
        let store = PolicyStore::open(&path, RISKS.to_vec()).unwrap();
        let mut rx = store.subscribe();
        store.set_enabled("shell_exec", false).unwrap();
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        let reopened = PolicyStore::open(&path, RISKS.to_vec()).unwrap();
        assert!(!reopened.current().enabled("shell_exec"));
        assert!(store.set_enabled("nope", false).is_err());
        assert!(!store.reload().unwrap(), "an unchanged file is not a change");

        let mut edited = (*store.current()).clone();
        edited.approval_mode = ApprovalMode::Auto;
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, edited.to_pretty_json() + "  ").unwrap();
        assert!(store.reload().unwrap());
        assert!(rx.has_changed().unwrap());
        assert_eq!(store.current().approval_mode, ApprovalMode::Auto);
    }
}
