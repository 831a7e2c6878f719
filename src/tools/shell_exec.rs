//! `shell_exec`: run one allowlisted command as an argv, never through a shell.
//!
//! The command line is split into words by [`crate::command`] (quotes honoured,
//! nothing expanded, unquoted shell operators refused) and must start with one
//! of the `SHELL_ALLOWLIST` entries, word for word. It runs in the workspace root in its own process
//! group, with secrets removed from its environment and git told to ignore
//! repository settings that run programs; at the timeout, on cancellation and
//! after it exits, the whole group is killed. Output is capped, head and tail kept.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::{Annotations, Tool, ToolContext, ToolError};
use crate::command::check_command;
use crate::policy::Risk;
use crate::settings::Settings;

pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// How often a running command reports progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Bytes kept of each stream: half from the start, half from the end.
pub const MAX_STREAM_BYTES: usize = 64 * 1024;

/// Variables that ask programs for colour, a terminal's features or a pager;
/// a command's output is read by a model, not shown on a terminal.
const TERMINAL_VARS: &[&str] = &[
    "FORCE_COLOR",
    "CLICOLOR_FORCE",
    "COLORTERM",
    "TERM_PROGRAM",
    "LS_COLORS",
    "GREP_COLORS",
];

/// Settings that tell common programs their output goes to no terminal:
/// no colour, no progress bars, no pager, no prompts.
const PLAIN_OUTPUT_ENV: &[(&str, &str)] = &[
    ("NO_COLOR", "1"),
    ("CLICOLOR", "0"),
    ("TERM", "dumb"),
    ("CARGO_TERM_COLOR", "never"),
    ("CARGO_TERM_PROGRESS_WHEN", "never"),
    ("RUST_LOG_STYLE", "never"),
    ("PY_COLORS", "0"),
    ("PYTHON_COLORS", "0"),
    ("NODE_DISABLE_COLORS", "1"),
    ("NPM_CONFIG_COLOR", "false"),
    ("GCC_COLORS", ""),
    ("GIT_TERMINAL_PROMPT", "0"),
    ("GIT_PAGER", "cat"),
    ("PAGER", "cat"),
];

/// Gives a command the environment of a non-terminal, colourless reader.
fn plain_output_env(cmd: &mut Command) {
    for name in TERMINAL_VARS {
        cmd.env_remove(name);
    }
    for (name, value) in PLAIN_OUTPUT_ENV {
        cmd.env(name, value);
    }
}

/// Environment variable names that look secret; they never reach a command.
fn is_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("EXECUTION_")
        || [
            "TOKEN",
            "SECRET",
            "PASSWORD",
            "PASSWD",
            "API_KEY",
            "APIKEY",
            "PRIVATE_KEY",
            "CREDENTIAL",
            "ACCESS_KEY",
            "SESSION_KEY",
            "AUTH",
        ]
        .iter()
        .any(|s| upper.contains(s))
        || upper.starts_with("GIT_")
}

pub struct ShellExec;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The command line, e.g. `cargo test -p core`. It must start with an allowed command. No shell runs: unquoted `;`, `&&`, `|`, `>`, `$( )`, `$VAR`, backquotes and globs are refused; inside quotes ('…' or "…") they are ordinary characters, passed literally (no expansion), e.g. `python3 -c "import x; print(x.f())"`.
    pub command: String,
    /// Seconds before the command and its children are killed. Default 30.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// The argv that ran.
    pub argv: Vec<String>,
    /// The exit status; always present, null only when the process was killed by a signal (at the timeout, or by someone else; see `signal`).
    #[schemars(required)]
    pub exit_code: Option<i32>,
    /// The signal that ended the process, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Standard output, terminal escape sequences (colours and the like) removed; when over 64 KiB, the first and last 32 KiB.
    pub stdout: String,
    /// Standard error, terminal escape sequences removed; when over 64 KiB, the first and last 32 KiB.
    pub stderr: String,
    /// Total bytes written to standard output.
    pub stdout_bytes: u64,
    /// Total bytes written to standard error.
    pub stderr_bytes: u64,
    /// True when the middle of stdout or stderr was left out.
    pub truncated: bool,
    /// True when the command was killed at the timeout.
    pub timed_out: bool,
    pub duration_ms: u64,
}

impl Tool for ShellExec {
    const NAME: &'static str = "shell_exec";
    const TITLE: &'static str = "Run a command";
    const DESCRIPTION: &'static str = "Run one command in the workspace root as a program with arguments; no shell runs. The command line is split into words as a shell would split it (quotes group words), but nothing is expanded: text inside quotes, `$` and backquotes included, reaches the program literally, so `python3 -c \"import x; print(x.f())\"` works. Unquoted `;`, `&&`, `|`, `>`, `<`, `$( )`, `$VAR`, backquotes, globs and line breaks are refused: run one command per call. The command must start with an allowed prefix (the server's SHELL_ALLOWLIST), word for word. The command sees no terminal and is asked for no colour (NO_COLOR, TERM=dumb, CARGO_TERM_COLOR=never); escape sequences left in its output are removed. Returns `exit_code` (null only when killed by a signal), stdout and stderr (each capped at 64 KiB, head and tail kept) and the duration. The command and all its children are killed at the timeout. A non-zero exit is an error result that still carries the output.";
    const RISK: Risk = Risk::High;
    const ANNOTATIONS: Annotations = Annotations {
        read_only: false,
        destructive: true,
        idempotent: false,
        open_world: true,
    };
    type Params = Params;
    type Output = Output;

    fn describe_tool(settings: &Settings) -> Option<String> {
        let allowed = if settings.shell_allowlist.is_empty() {
            "nothing: SHELL_ALLOWLIST is empty, so every command is refused".to_owned()
        } else {
            crate::command::describe_allowlist(&settings.shell_allowlist)
        };
        Some(format!("{} Allowed now: {allowed}.", Self::DESCRIPTION))
    }

    fn check(&self, ctx: &ToolContext, params: &Params) -> Result<(), ToolError> {
        check_timeout(ctx, params)?;
        check_command(&params.command, &ctx.settings.shell_allowlist)
            .map(|_| ())
            .map_err(ToolError::new)
    }

    /// The argv, when the command passes the allowlist (a refused command
    /// names nothing a rule could allow; it fails before running anyway).
    fn subject(&self, ctx: &ToolContext, params: &Params) -> crate::policy::Subject {
        match check_command(&params.command, &ctx.settings.shell_allowlist) {
            Ok(argv) => crate::policy::Subject::argv(argv),
            Err(_) => crate::policy::Subject::default(),
        }
    }

    fn describe(&self, ctx: &ToolContext, params: &Params) -> String {
        let argv = check_command(&params.command, &ctx.settings.shell_allowlist)
            .map(|a| format!("{a:?}"))
            .unwrap_or_else(|e| format!("(refused: {e})"));
        format!(
            "run {argv} in {} with a {} s timeout",
            ctx.workspace.root().display(),
            params.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS)
        )
    }

    async fn run(&self, ctx: &ToolContext, params: Params) -> Result<Output, ToolError> {
        let timeout = check_timeout(ctx, &params)?;
        let argv = check_command(&params.command, &ctx.settings.shell_allowlist).map_err(ToolError::new)?;
        run_argv(ctx, argv, Duration::from_secs(timeout)).await
    }

    fn is_error(output: &Output) -> bool {
        output.failed()
    }

    fn render(output: Output) -> String {
        let mut text = match (output.exit_code, output.timed_out) {
            (_, true) => format!(
                "`{}` timed out after {} ms and was killed",
                output.argv.join(" "),
                output.duration_ms
            ),
            (Some(code), _) => format!(
                "`{}` exited with {code} in {} ms",
                output.argv.join(" "),
                output.duration_ms
            ),
            (None, _) => format!(
                "`{}` was killed by signal {} after {} ms",
                output.argv.join(" "),
                output.signal.unwrap_or(0),
                output.duration_ms
            ),
        };
        text.push('\n');
        if !output.stdout.is_empty() {
            text.push_str("--- stdout ---\n");
            text.push_str(&output.stdout);
            if !output.stdout.ends_with('\n') {
                text.push('\n');
            }
        }
        if !output.stderr.is_empty() {
            text.push_str("--- stderr ---\n");
            text.push_str(&output.stderr);
            if !output.stderr.ends_with('\n') {
                text.push('\n');
            }
        }
        text
    }
}

/// The call's timeout in seconds, within SHELL_MAX_TIMEOUT_SECS.
fn check_timeout(ctx: &ToolContext, params: &Params) -> Result<u64, ToolError> {
    let max = ctx.settings.shell_max_timeout.as_secs();
    let timeout = params.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS.min(max));
    if timeout == 0 || timeout > max {
        return Err(ToolError::new(format!(
            "timeout_secs must be from 1 to {max} (SHELL_MAX_TIMEOUT_SECS); got {timeout}"
        )));
    }
    Ok(timeout)
}

impl Output {
    /// A non-zero exit, a signal or a timeout makes the result an error.
    pub fn failed(&self) -> bool {
        self.timed_out || self.exit_code != Some(0)
    }
}

/// git subcommands that show diffs: they get `--no-ext-diff --no-textconv`,
/// so no external diff program or converter named by the repository runs.
const GIT_DIFF_SUBCOMMANDS: &[&str] = &["diff", "log", "show", "whatchanged"];

/// Marks every process a command starts, so those that leave its process
/// group can still be found and killed.
const RUN_MARKER: &str = "EXECLAYER_RUN_ID";

async fn run_argv(ctx: &ToolContext, mut argv: Vec<String>, timeout: Duration) -> Result<Output, ToolError> {
    let git_config = if argv[0] == "git" {
        if argv
            .get(1)
            .is_some_and(|sub| GIT_DIFF_SUBCOMMANDS.contains(&sub.as_str()))
        {
            argv.splice(2..2, ["--no-ext-diff".to_owned(), "--no-textconv".to_owned()]);
        }
        let root = ctx.workspace.root().to_path_buf();
        tokio::task::spawn_blocking(move || crate::git::safe_cli_config(&root))
            .await
            .map_err(|e| ToolError::new(format!("internal error: {e}")))?
            .map_err(ToolError::new)?
    } else {
        Vec::new()
    };
    let mut git_config = git_config;
    git_config.push(("color.ui".to_owned(), "never".to_owned()));
    let marker = crate::policy::approvals::new_id();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(ctx.workspace.root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .env_clear();
    for (key, value) in std::env::vars_os() {
        if let Some(k) = key.to_str()
            && !is_secret(k)
        {
            cmd.env(&key, value);
        }
    }
    plain_output_env(&mut cmd);
    cmd.env(RUN_MARKER, &marker);
    if !git_config.is_empty() {
        cmd.env("GIT_CONFIG_COUNT", git_config.len().to_string());
        for (i, (k, v)) in git_config.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), k)
                .env(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        ToolError::new(match e.kind() {
            std::io::ErrorKind::NotFound => format!("program `{}` was not found on PATH", argv[0]),
            _ => format!("cannot start `{}`: {e}", argv[0]),
        })
    })?;
    let pgid = child.id().map(|id| id as i32);
    let kill_group = move || {
        if let Some(pgid) = pgid {
            // SAFETY: killpg only sends a signal; a stale group id fails with ESRCH.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    };
    let produced = Arc::new(AtomicU64::new(0));
    let stdout = tokio::spawn(capture(child.stdout.take(), produced.clone()));
    let stderr = tokio::spawn(capture(child.stderr.take(), produced.clone()));
    let mut timed_out = false;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.ok(),
            _ = tokio::time::sleep_until(deadline) => { timed_out = true; break None }
            _ = ctx.cancel.cancelled() => break None,
            _ = tick.tick() => {
                let secs = started.elapsed().as_secs_f64();
                ctx.progress.report(
                    secs.floor(),
                    Some(timeout.as_secs_f64()),
                    format!("`{}` running for {:.0} s, {} bytes of output", argv[0], secs, produced.load(Ordering::Relaxed)),
                );
            }
        }
    };
    // Whatever happened, no process of this command outlives the call: its
    // group, and any that left the group but carry the run's marker.
    kill_group();
    let marked = format!("{RUN_MARKER}={marker}");
    tokio::task::spawn_blocking(move || kill_marked(&marked)).await.ok();
    let status = match status {
        Some(s) => Some(s),
        None => child.wait().await.ok(),
    };
    if ctx.cancel.is_cancelled() && !timed_out {
        return Err(ToolError::new(format!("`{}` was cancelled and killed", argv.join(" "))));
    }
    let grace = Duration::from_millis(500);
    let (out, out_bytes, out_cut) = tokio::time::timeout(grace, stdout)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let (err, err_bytes, err_cut) = tokio::time::timeout(grace, stderr)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    use std::os::unix::process::ExitStatusExt;
    Ok(Output {
        argv,
        exit_code: if timed_out { None } else { status.and_then(|s| s.code()) },
        signal: status.and_then(|s| s.signal()),
        stdout: out,
        stderr: err,
        stdout_bytes: out_bytes,
        stderr_bytes: err_bytes,
        truncated: out_cut || err_cut,
        timed_out,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// Kills every process whose environment holds `marker` (`NAME=value`),
/// repeating while new ones appear (a process may fork as it dies).
fn kill_marked(marker: &str) {
    let me = std::process::id();
    let needle = format!("{marker}\0");
    for _ in 0..5 {
        let mut found = false;
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                // SAFETY: kill only sends a signal to a process we started.
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
                found = true;
            }
        }
        if !found {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads a stream to its end, removes terminal escape sequences (colours,
/// cursor moves, titles, hyperlinks) and keeps the first and last
/// `MAX_STREAM_BYTES / 2` of what is left. Returns the text, the bytes the
/// program wrote, and whether the middle was left out.
async fn capture<R: AsyncRead + Unpin>(stream: Option<R>, produced: Arc<AtomicU64>) -> (String, u64, bool) {
    let Some(mut stream) = stream else {
        return (String::new(), 0, false);
    };
    let mut kept = Capped::default();
    let mut strip = anstream::adapter::StripBytes::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n as u64;
        produced.fetch_add(n as u64, Ordering::Relaxed);
        for printable in strip.strip_next(&buf[..n]) {
            kept.push(printable);
        }
    }
    let (text, cut) = kept.finish();
    (text, total, cut)
}

/// The head and tail of a byte stream, `MAX_STREAM_BYTES / 2` each.
#[derive(Default)]
struct Capped {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    total: u64,
}

impl Capped {
    fn push(&mut self, mut chunk: &[u8]) {
        let half = MAX_STREAM_BYTES / 2;
        self.total += chunk.len() as u64;
        if self.head.len() < half {
            let take = (half - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
        }
        self.tail.extend(chunk);
        if self.tail.len() > half {
            let excess = self.tail.len() - half;
            self.tail.drain(..excess);
        }
    }

    fn finish(self) -> (String, bool) {
        let kept = (self.head.len() + self.tail.len()) as u64;
        let cut = self.total > kept;
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if cut {
            text.push_str(&format!(
                "\n[execlayer: {} bytes left out of the middle]\n",
                self.total - kept
            ));
        }
        let (a, b) = self.tail.as_slices();
        text.push_str(&String::from_utf8_lossy(&[a, b].concat()));
        (text, cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An escape sequence split across two reads is still removed whole, and
    /// the cap counts only what is left.
    #[tokio::test]
    async fn escapes_split_across_reads_are_removed_before_the_cap() {
        let (mut w, r) = tokio::io::duplex(8);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for part in [&b"\x1b[3"[..], b"1mred\x1b", b"[0m \x1b]0;t", b"itle\x07ok\n"] {
                w.write_all(part).await.unwrap();
                w.flush().await.unwrap();
            }
        });
        let (text, total, cut) = capture(Some(r), Arc::default()).await;
        writer.await.unwrap();
        assert_eq!((text.as_str(), total, cut), ("red ok\n", 26, false));

        let mut big = Capped::default();
        big.push(&vec![b'a'; MAX_STREAM_BYTES]);
        assert_eq!(big.finish(), ("a".repeat(MAX_STREAM_BYTES), false));
        let mut over = Capped::default();
        over.push(&vec![b'a'; MAX_STREAM_BYTES + 5]);
        let (text, cut) = over.finish();
        assert!(
            cut && text.contains("5 bytes left out of the middle"),
            "{}",
            &text[..64]
        );
    }

    #[test]
    fn secrets_are_recognised() {
        for name in [
            "EXECUTION_TOKEN",
            "GITHUB_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "OPENAI_API_KEY",
            "GIT_DIR",
        ] {
            assert!(is_secret(name), "{name}");
        }
        for name in ["PATH", "HOME", "LANG", "CARGO_HOME"] {
            assert!(!is_secret(name), "{name}");
        }
    }
}
