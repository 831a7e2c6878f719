//! The approval state of one instance, in its memory.
//!
//! One mutex per map makes every check-and-change one step. With a fixed
//! sealing key, consumed `requestState` nonces are also appended to a small
//! file (`<expiry unix seconds> <nonce>` per line, flushed to disk before the
//! state is accepted), read back at start, so a restarted instance still
//! refuses a state it accepted before. The file is compacted at start and when
//! it holds many expired lines.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::{Approval, ApprovalError, ApprovalState, StateStore};
use crate::policy::{RememberOffer, Risk};
use crate::tools::BoxFuture;

/// Rewrite the nonce file once it has this many more lines than live nonces.
const COMPACT_AFTER: usize = 4096;

/// Expired entries are dropped once a map has grown past this many (then past
/// twice what was left), so a check stays O(1) on average.
const PRUNE_FROM: usize = 1024;

/// Drops expired entries when `map` has grown past `*next`.
fn prune<K>(map: &mut HashMap<K, SystemTime>, next: &mut usize, now: SystemTime) {
    if map.len() >= (*next).max(PRUNE_FROM) {
        map.retain(|_, expiry| *expiry > now);
        *next = (map.len() * 2).max(PRUNE_FROM);
    }
}

#[derive(Default)]
struct Nonces {
    live: HashMap<String, SystemTime>,
    next_prune: usize,
    /// Where used nonces persist, and the open file with its line count.
    file: Option<(PathBuf, File, usize)>,
}

/// Approval state for one instance.
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, Approval>>,
    nonces: Mutex<Nonces>,
    sessions: Mutex<(Sessions, usize)>,
}

/// Remembered answers by (session, key), with their expiry.
type Sessions = HashMap<(String, String), SystemTime>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave an entry half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose consumed nonces persist in `path` (created if missing).
    pub fn with_nonce_file(path: &Path) -> anyhow::Result<Self> {
        let now = SystemTime::now();
        let mut live = HashMap::new();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                for line in text.lines() {
                    let Some((expiry, nonce)) = line.split_once(' ') else {
                        continue;
                    };
                    let Ok(expiry) = expiry.parse::<u64>() else { continue };
                    let expiry = SystemTime::UNIX_EPOCH + Duration::from_secs(expiry);
                    if expiry > now && !nonce.is_empty() {
                        live.insert(nonce.to_owned(), expiry);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("cannot read the used-requestState file {}: {e}", path.display()),
        }
        let file = rewrite(path, &live)
            .map_err(|e| anyhow::anyhow!("cannot write the used-requestState file {}: {e}", path.display()))?;
        let lines = live.len();
        Ok(Self {
            nonces: Mutex::new(Nonces {
                live,
                next_prune: 0,
                file: Some((path.to_owned(), file, lines)),
            }),
            ..Self::default()
        })
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Approval>> {
        let mut guard = lock(&self.entries);
        let now = SystemTime::now();
        guard.retain(|_, a| a.expires_at > now);
        guard
    }

    fn unavailable(path: &Path, e: std::io::Error) -> ApprovalError {
        ApprovalError::Unavailable {
            store: format!("memory, used states in {}", path.display()),
            reason: format!("cannot record the used requestState: {e}"),
        }
    }
}

/// Writes the live nonces to `path` atomically and opens it for appending.
fn rewrite(path: &Path, live: &HashMap<String, SystemTime>) -> std::io::Result<File> {
    let mut text = String::new();
    let now = SystemTime::now();
    for (nonce, expiry) in live.iter().filter(|(_, expiry)| **expiry > now) {
        text.push_str(&format!("{} {nonce}\n", unix_secs(*expiry)));
    }
    crate::fsutil::write_atomic(path, text.as_bytes(), true)?;
    OpenOptions::new().append(true).open(path)
}

impl StateStore for MemoryStore {
    fn describe(&self) -> String {
        "memory".into()
    }

    fn request<'a>(
        &'a self,
        tool: &'a str,
        digest: &'a str,
        preview: &'a str,
        risk: Risk,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Approval, ApprovalError>> {
        let mut entries = self.entries();
        if let Some(existing) = entries
            .values()
            .find(|a| a.state == ApprovalState::Pending && a.tool == tool && a.args_digest.as_deref() == Some(digest))
        {
            return ready(Ok(existing.clone()));
        }
        let approval = Approval::new(tool, Some(digest), preview, risk, ApprovalState::Pending, ttl);
        entries.insert(approval.id.clone(), approval.clone());
        ready(Ok(approval))
    }

    fn grant_tool<'a>(
        &'a self,
        tool: &'a str,
        risk: Risk,
        by: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Approval, ApprovalError>> {
        let approval = Approval::new(
            tool,
            None,
            "any call of this tool",
            risk,
            ApprovalState::Approved { by: by.to_owned() },
            ttl,
        );
        self.entries().insert(approval.id.clone(), approval.clone());
        ready(Ok(approval))
    }

    fn annotate<'a>(
        &'a self,
        id: &'a str,
        offer: Option<RememberOffer>,
        session: Option<String>,
        door: &'a str,
    ) -> BoxFuture<'a, Result<(), ApprovalError>> {
        if let Some(entry) = self.entries().get_mut(id) {
            entry.remember = offer;
            entry.session = session;
            entry.door = Some(door.to_owned());
        }
        ready(Ok(()))
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Approval>, ApprovalError>> {
        ready(Ok(self.entries().get(id).cloned()))
    }

    fn decide<'a>(
        &'a self,
        id: &'a str,
        approve: bool,
        by: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Approval, ApprovalError>> {
        let mut entries = self.entries();
        let Some(entry) = entries.get_mut(id) else {
            return ready(Err(ApprovalError::Unknown(id.to_owned())));
        };
        if entry.state != ApprovalState::Pending {
            return ready(Err(ApprovalError::NotPending(id.to_owned())));
        }
        entry.state = if approve {
            ApprovalState::Approved { by: by.to_owned() }
        } else {
            ApprovalState::Denied { by: by.to_owned() }
        };
        entry.expires_at = SystemTime::now() + ttl;
        ready(Ok(entry.clone()))
    }

    fn consume<'a>(
        &'a self,
        id: &'a str,
        tool: &'a str,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<Approval, ApprovalError>> {
        let mut entries = self.entries();
        let Some(entry) = entries.get(id) else {
            return ready(Err(ApprovalError::Unknown(id.to_owned())));
        };
        if entry.tool != tool {
            return ready(Err(ApprovalError::WrongTool {
                id: id.to_owned(),
                granted: entry.tool.clone(),
                asked: tool.to_owned(),
            }));
        }
        if entry.args_digest.as_deref().is_some_and(|d| d != digest) {
            return ready(Err(ApprovalError::WrongArguments(id.to_owned())));
        }
        let result = match &entry.state {
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
        };
        ready(result)
    }

    fn pending(&self) -> BoxFuture<'_, Result<Vec<Approval>, ApprovalError>> {
        let mut list: Vec<Approval> = self
            .entries()
            .values()
            .filter(|a| a.state == ApprovalState::Pending)
            .cloned()
            .collect();
        list.sort_by_key(|a| a.created_at);
        ready(Ok(list))
    }

    fn consume_nonce<'a>(&'a self, nonce: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool, ApprovalError>> {
        let mut guard = lock(&self.nonces);
        let nonces = &mut *guard;
        let now = SystemTime::now();
        prune(&mut nonces.live, &mut nonces.next_prune, now);
        if nonces.live.get(nonce).is_some_and(|expiry| *expiry > now) || nonce.contains(['\n', ' ']) {
            return ready(Ok(false));
        }
        let expiry = now + ttl;
        if let Some((path, file, lines)) = &mut nonces.file {
            // On disk before it counts as used: a crash right after must not
            // make the state usable again.
            let line = format!("{} {nonce}\n", unix_secs(expiry));
            if let Err(e) = file.write_all(line.as_bytes()).and_then(|()| file.sync_data()) {
                return ready(Err(Self::unavailable(path, e)));
            }
            *lines += 1;
            if *lines > nonces.live.len() + 1 + COMPACT_AFTER {
                let mut next = nonces.live.clone();
                next.insert(nonce.to_owned(), expiry);
                match rewrite(path, &next) {
                    Ok(f) => {
                        *file = f;
                        *lines = next.len();
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot compact the used-requestState file")
                    }
                }
            }
        }
        nonces.live.insert(nonce.to_owned(), expiry);
        ready(Ok(true))
    }

    fn remember_session<'a>(
        &'a self,
        session_id: &'a str,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), ApprovalError>> {
        let mut guard = lock(&self.sessions);
        let (sessions, next_prune) = &mut *guard;
        let now = SystemTime::now();
        prune(sessions, next_prune, now);
        sessions.insert((session_id.to_owned(), key.to_owned()), now + ttl);
        ready(Ok(()))
    }

    fn is_remembered<'a>(&'a self, session_id: &'a str, key: &'a str) -> BoxFuture<'a, Result<bool, ApprovalError>> {
        let sessions = lock(&self.sessions);
        let now = SystemTime::now();
        let found = sessions
            .0
            .get(&(session_id.to_owned(), key.to_owned()))
            .is_some_and(|expiry| *expiry > now);
        ready(Ok(found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn block<T>(f: BoxFuture<'_, T>) -> T {
        futures::executor::block_on(f)
    }

    #[test]
    fn a_granted_id_works_once_for_its_tool_only() {
        let store = MemoryStore::new();
        let a = block(store.grant_tool("apply_patch", Risk::Medium, "op", TTL)).unwrap();
        assert!(matches!(
            block(store.consume(&a.id, "shell_exec", "d")),
            Err(ApprovalError::WrongTool { .. })
        ));
        assert!(block(store.consume(&a.id, "apply_patch", "any")).is_ok());
        assert_eq!(
            block(store.consume(&a.id, "apply_patch", "any")).err(),
            Some(ApprovalError::Unknown(a.id.clone()))
        );
    }

    #[test]
    fn a_pending_id_is_bound_to_its_arguments() {
        let store = MemoryStore::new();
        let p = block(store.request("shell_exec", "d1", "ls", Risk::High, TTL)).unwrap();
        assert_eq!(
            block(store.request("shell_exec", "d1", "ls", Risk::High, TTL))
                .unwrap()
                .id,
            p.id
        );
        assert!(matches!(
            block(store.consume(&p.id, "shell_exec", "d1")),
            Err(ApprovalError::StillPending(_))
        ));
        block(store.decide(&p.id, true, "op", TTL)).unwrap();
        assert!(matches!(
            block(store.consume(&p.id, "shell_exec", "d2")),
            Err(ApprovalError::WrongArguments(_))
        ));
        assert!(block(store.consume(&p.id, "shell_exec", "d1")).is_ok());
        assert!(block(store.consume(&p.id, "shell_exec", "d1")).is_err());
    }

    #[test]
    fn denied_and_expired_ids_never_work() {
        let store = MemoryStore::new();
        let p = block(store.request("shell_exec", "d", "ls", Risk::High, TTL)).unwrap();
        block(store.decide(&p.id, false, "op", TTL)).unwrap();
        assert!(matches!(
            block(store.consume(&p.id, "shell_exec", "d")),
            Err(ApprovalError::Denied { .. })
        ));
        let short = block(store.grant_tool("shell_exec", Risk::High, "op", Duration::from_millis(1))).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(matches!(
            block(store.consume(&short.id, "shell_exec", "d")),
            Err(ApprovalError::Unknown(_))
        ));
        assert!(block(store.pending()).unwrap().is_empty());
    }

    #[test]
    fn a_used_nonce_stays_used_across_a_restart_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("used-request-states");
        let store = MemoryStore::with_nonce_file(&path).unwrap();
        assert!(block(store.consume_nonce("n1", TTL)).unwrap());
        assert!(!block(store.consume_nonce("n1", TTL)).unwrap());
        assert!(block(store.consume_nonce("short", Duration::ZERO)).unwrap());
        drop(store);
        let again = MemoryStore::with_nonce_file(&path).unwrap();
        assert!(
            !block(again.consume_nonce("n1", TTL)).unwrap(),
            "forgotten after a restart"
        );
        assert!(block(again.consume_nonce("n2", TTL)).unwrap());
        // The expired line was dropped when the file was compacted at start.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("short"), "{text}");
        // Without the file a new store forgets, as a random key would.
        assert!(block(MemoryStore::new().consume_nonce("n1", TTL)).unwrap());
    }

    #[test]
    fn session_answers_are_per_session_and_expire() {
        let store = MemoryStore::new();
        block(store.remember_session("s1", "shell_exec:cargo test", TTL)).unwrap();
        block(store.remember_session("s1", "brief", Duration::ZERO)).unwrap();
        assert!(block(store.is_remembered("s1", "shell_exec:cargo test")).unwrap());
        assert!(!block(store.is_remembered("s2", "shell_exec:cargo test")).unwrap());
        assert!(!block(store.is_remembered("s1", "brief")).unwrap());
    }
}
