//! The operator channel: every running server, stdio included, answers
//! `list`, `approve` and `deny` on a Unix socket only its user can open.
//!
//! Each server process binds `<dir>/<pid>.sock`, where `<dir>` is
//! `$XDG_RUNTIME_DIR/execlayer` (or `<state dir>/run` without one): the folder
//! is mode 0700 and must belong to this user, the socket is mode 0600, and a
//! connecting process must have this user's uid (checked with the peer's
//! credentials). Sockets left by servers that died are removed when a server
//! starts. The protocol is one JSON request line and one JSON answer line:
//! `{"op":"list"}`, `{"op":"approve","id":ID,"remember":"once|session|always"}`,
//! `{"op":"deny","id":ID}`. `execlayer approvals|approve|deny` ([`crate::cli`])
//! ask every socket in the folder, so no HTTP door is needed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

/// Largest request line accepted.
const MAX_REQUEST: usize = 16 * 1024;
/// How long a client waits for a server's answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The folder of operator sockets, from the environment: `$XDG_RUNTIME_DIR/execlayer`,
/// else `$XDG_STATE_HOME/execlayer/run`, else `$HOME/.local/state/execlayer/run`.
pub fn socket_dir(get: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let abs = |v: Option<String>| v.filter(|v| v.starts_with('/')).map(PathBuf::from);
    if let Some(run) = abs(get("XDG_RUNTIME_DIR")) {
        return Some(run.join("execlayer"));
    }
    if let Some(state) = abs(get("XDG_STATE_HOME")) {
        return Some(state.join("execlayer/run"));
    }
    abs(get("HOME")).map(|h| h.join(".local/state/execlayer/run"))
}

/// The socket folder of this process's environment.
pub fn default_socket_dir() -> Option<PathBuf> {
    socket_dir(|k| std::env::var(k).ok())
}

/// What a server says about itself in `list`.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub workspace: String,
    /// `stdio`, `http://ADDR`.
    pub doors: Vec<String>,
}

#[cfg(unix)]
pub use unix::{OperatorSocket, ask, servers, start};

#[cfg(unix)]
mod unix {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{UnixListener, UnixStream};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::engine::OperatorError;
    use crate::policy::Remember;
    use crate::server::Core;

    /// A bound operator socket; the file is removed when this is dropped.
    pub struct OperatorSocket {
        path: PathBuf,
        shutdown: CancellationToken,
    }

    impl OperatorSocket {
        pub fn path(&self) -> &Path {
            &self.path
        }
    }

    impl Drop for OperatorSocket {
        fn drop(&mut self) {
            self.shutdown.cancel();
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn my_uid() -> u32 {
        // SAFETY: getuid has no preconditions and cannot fail.
        unsafe { libc::getuid() }
    }

    /// Creates the folder (mode 0700) or checks that an existing one is ours and private.
    fn prepare_dir(dir: &Path) -> std::io::Result<()> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let meta = std::fs::symlink_metadata(dir)?;
        if !meta.is_dir() || meta.uid() != my_uid() {
            return Err(std::io::Error::other(format!(
                "{} is not a folder owned by this user; refusing to put the operator socket there",
                dir.display()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    /// The sockets in `dir` (live or not).
    fn sockets_in(dir: &Path) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut list: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sock"))
            .collect();
        list.sort();
        list
    }

    /// Removes sockets nobody listens on any more.
    fn remove_stale(dir: &Path) -> usize {
        let mut removed = 0;
        for path in sockets_in(dir) {
            if let Err(e) = std::os::unix::net::UnixStream::connect(&path)
                && matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                )
                && std::fs::remove_file(&path).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }

    /// Binds this process's socket in `dir` and answers on it until `shutdown`.
    pub fn start(
        core: &Core,
        dir: &Path,
        info: ServerInfo,
        shutdown: CancellationToken,
    ) -> std::io::Result<OperatorSocket> {
        prepare_dir(dir)?;
        let removed = remove_stale(dir);
        if removed > 0 {
            tracing::info!(removed, dir = %dir.display(), "removed operator sockets of servers that are gone");
        }
        let path = dir.join(format!("{}.sock", std::process::id()));
        // Another engine of this process (tests) may already hold the pid's name.
        let path = if path.exists() {
            dir.join(format!(
                "{}-{}.sock",
                std::process::id(),
                &crate::policy::approvals::new_id()[..8]
            ))
        } else {
            path
        };
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let token = shutdown.child_token();
        let core = core.clone();
        let stop = token.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let core = core.clone();
                            let info = info.clone();
                            tokio::spawn(async move { serve_one(&core, &info, stream).await });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "operator socket accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                }
            }
        });
        tracing::info!(socket = %path.display(), "operator channel: `execlayer approvals|approve|deny` reach this server");
        Ok(OperatorSocket { path, shutdown: token })
    }

    async fn serve_one(core: &Core, info: &ServerInfo, stream: UnixStream) {
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == my_uid() => {}
            _ => return,
        }
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        let mut reader = BufReader::new(read.take(MAX_REQUEST as u64));
        let answer = match tokio::time::timeout(CLIENT_TIMEOUT, reader.read_line(&mut line)).await {
            Ok(Ok(_)) => match serde_json::from_str::<Value>(&line) {
                Ok(request) => handle(core, info, &request).await,
                Err(e) => json!({"ok": false, "error": format!("the request is not JSON: {e}")}),
            },
            _ => return,
        };
        let mut text = answer.to_string();
        text.push('\n');
        let _ = write.write_all(text.as_bytes()).await;
    }

    async fn handle(core: &Core, info: &ServerInfo, request: &Value) -> Value {
        let engine = &core.engine;
        let id = request.get("id").and_then(Value::as_str).unwrap_or_default();
        match request.get("op").and_then(Value::as_str) {
            Some("list") => {
                let pending: Vec<Value> = match engine.state.pending().await {
                    Ok(list) => list.iter().map(crate::http::rest::approval_json).collect(),
                    Err(e) => return json!({"ok": false, "kind": "unavailable", "error": e.to_string()}),
                };
                json!({
                    "ok": true,
                    "server": {
                        "pid": std::process::id(),
                        "workspace": info.workspace,
                        "doors": info.doors,
                        "policy": engine.policy.path().display().to_string(),
                    },
                    "pending": pending,
                })
            }
            Some(op @ ("approve" | "deny")) => {
                let approve = op == "approve";
                let remember = match request.get("remember") {
                    None | Some(Value::Null) => Some(Remember::Once),
                    Some(Value::String(s)) => Remember::parse(s),
                    Some(_) => None,
                };
                let Some(remember) = remember else {
                    return json!({"ok": false, "kind": "invalid", "error": "`remember` must be once, session or always"});
                };
                match engine
                    .decide_operator(id, approve, remember, "operator (socket)", "operator (socket)")
                    .await
                {
                    Ok(a) => {
                        json!({"ok": true, "approval": crate::http::rest::approval_json(&a), "remembered": remember.as_str()})
                    }
                    Err(OperatorError::Unknown(e)) => json!({"ok": false, "kind": "unknown", "error": e}),
                    Err(OperatorError::NotPending(e)) => json!({"ok": false, "kind": "not_pending", "error": e}),
                    Err(OperatorError::Invalid(e)) => json!({"ok": false, "kind": "invalid", "error": e}),
                    Err(OperatorError::Unavailable(e)) => json!({"ok": false, "kind": "unavailable", "error": e}),
                }
            }
            _ => json!({"ok": false, "kind": "invalid", "error": "unknown op; use list, approve or deny"}),
        }
    }

    /// The sockets of live servers in `dir`.
    pub fn servers(dir: &Path) -> Vec<PathBuf> {
        sockets_in(dir)
    }

    /// Sends one request to the server at `socket` and reads its answer.
    pub async fn ask(socket: &Path, request: &Value) -> std::io::Result<Value> {
        let exchange = async {
            let mut stream = UnixStream::connect(socket).await?;
            let mut line = request.to_string();
            line.push('\n');
            stream.write_all(line.as_bytes()).await?;
            let mut answer = String::new();
            BufReader::new(stream).read_line(&mut answer).await?;
            serde_json::from_str::<Value>(&answer).map_err(std::io::Error::other)
        };
        tokio::time::timeout(CLIENT_TIMEOUT, exchange)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 5 s"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_dir_wins_and_relative_values_are_ignored() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
        };
        assert_eq!(
            socket_dir(env(&[("XDG_RUNTIME_DIR", "/run/user/1"), ("HOME", "/h")])),
            Some(PathBuf::from("/run/user/1/execlayer"))
        );
        assert_eq!(
            socket_dir(env(&[("XDG_RUNTIME_DIR", "rel"), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.local/state/execlayer/run"))
        );
        assert_eq!(socket_dir(env(&[])), None);
    }
}
