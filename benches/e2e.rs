//! End-to-end benchmark harness for MCP tool servers: execlayer and its peers.
//!
//! `cargo bench --bench e2e -- [FLAGS]` (see `--help`). Three modes:
//!
//! - **stdio** (default, `--server CMD`): spawns each server directly (no
//!   shell) and speaks newline-delimited JSON-RPC on its stdin/stdout:
//!   `initialize` (protocol 2025-06-18) → `notifications/initialized` →
//!   `tools/list` → `tools/call`. Measures cold start, tools/list latency,
//!   sequential and pipelined `tools/call`, response size, server CPU per call,
//!   idle and peak RSS. `--compare` runs two servers alternately, A B A B, and
//!   adds the ratio B/A of each metric.
//! - **http** (`--http-url URL` or `--spawn-http CMD`): for each `--clients`
//!   count, that many concurrent Streamable HTTP sessions call one tool in a
//!   loop for `--seconds`.
//! - **exec** (`--exec CMD`): spawns a command N times, the process-per-call
//!   baseline (e.g. `git status --porcelain` against the `git_status` tool).
//!
//! Methodology:
//! - Latency is measured at the pipe: a reader thread timestamps each response
//!   line when its last byte arrives; JSON decoding happens off the clock.
//! - Memory is the server pid's `VmHWM` / `VmRSS` from `/proc/<pid>/status`,
//!   read before the server is closed. Each workload's peak is isolated by
//!   resetting `VmHWM` through `/proc/<pid>/clear_refs` ("5", Linux ≥ 4.0).
//! - Server CPU is utime + stime (and waited-for children) from `/proc/<pid>/stat`.
//! - Each workload runs in a fresh session, so one workload's heap growth does
//!   not show up in the next one's peak.
//!
//! The human table goes to stderr; the results JSON to stdout and `--json-out`.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Display;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use clap::{ArgAction, Parser};
use serde::Serialize;
use serde_json::{Map, Value, json};

const PROTOCOL_VERSION: &str = "2025-06-18";
const CLIENT_NAME: &str = "execlayer-e2e-bench";
/// How much of a server's stderr is kept for error messages.
const STDERR_TAIL_BYTES: usize = 4096;

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

const EXAMPLES: &str = "\
Examples (from the repository root; scripts/bench-peers.sh runs the full comparison):
  cargo bench --bench e2e -- --server 'target/release/execlayer serve' \\
      --env EXECUTION_WORKSPACE_ROOT=/tmp/mcp-bench/ws \\
      --call '{\"tool\":\"filesystem_read\",\"arguments\":{\"path\":\"small.txt\"}}'
  cargo bench --bench e2e -- --compare \\
      --server 'env EXECUTION_WORKSPACE_ROOT=/tmp/mcp-bench/ws target/release/execlayer serve' \\
      --server 'node bench-peers/node/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js /tmp/mcp-bench/ws' \\
      --calls-file ../shared/bench/workloads/execlayer-fs.json --calls-file-b ../shared/bench/workloads/fs.json
  cargo bench --bench e2e -- --spawn-http 'target/release/execlayer serve' --clients 1,8,32 --seconds 5 \\
      --call '{\"tool\":\"filesystem_read\",\"arguments\":{\"path\":\"small.txt\"}}'
  cargo bench --bench e2e -- --exec 'git status --porcelain' --cwd /tmp/mcp-bench/repo -n 200

A workload is {\"tool\": NAME, \"arguments\": {...}, \"label\": optional} or a JSON list of them.";

#[derive(Parser, Debug, Serialize)]
#[command(
    name = "e2e",
    about = "End-to-end benchmark of MCP tool servers over stdio or Streamable HTTP",
    after_help = EXAMPLES
)]
struct Opts {
    /// Server command line (split like a shell would, run without one); an `env K=V ...` prefix sets variables.
    #[arg(long = "server", value_name = "CMD")]
    servers: Vec<String>,
    /// A label per --server (default A, B, ...).
    #[arg(long = "label", value_name = "NAME")]
    labels: Vec<String>,
    /// Extra environment variable for every spawned process. Repeatable.
    #[arg(long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Working directory of every spawned process.
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// Workload as JSON (an object or a list). Repeatable.
    #[arg(long = "call", value_name = "JSON")]
    calls: Vec<String>,
    /// JSON file holding a workload or a list of them. Repeatable.
    #[arg(long = "calls-file", value_name = "FILE")]
    calls_files: Vec<PathBuf>,
    /// Compare mode: the second server's workloads (same number and order as the first's).
    #[arg(long = "call-b", value_name = "JSON")]
    calls_b: Vec<String>,
    /// Compare mode: the second server's workload file.
    #[arg(long = "calls-file-b", value_name = "FILE")]
    calls_files_b: Vec<PathBuf>,
    /// Two --server commands, measured alternately (A B A B ...), with B/A ratios.
    #[arg(long)]
    compare: bool,
    /// Compare mode: rounds of each measurement.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Sequential calls per workload (compare mode: per round); exec mode: spawns.
    #[arg(short = 'n', default_value_t = 200)]
    n: usize,
    /// Warm-up calls per workload (and per HTTP client, and exec spawns), not measured.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Cold-start spawns per server.
    #[arg(long, default_value_t = 10)]
    cold: usize,
    /// Discarded spawns per server before the cold-start spawns.
    #[arg(long, default_value_t = 1)]
    cold_warmup: usize,
    /// tools/list repetitions per server.
    #[arg(long, default_value_t = 20)]
    tools_list: usize,
    /// Requests in flight in a pipelined batch (0 skips pipelining).
    #[arg(long, value_name = "K", default_value_t = 50)]
    pipeline: usize,
    /// Pipelined batches per workload.
    #[arg(long, default_value_t = 5)]
    pipeline_rounds: usize,
    /// Bounds the run: a sequential batch of calls (or of exec spawns) stops early after this long.
    #[arg(long, default_value_t = 15.0)]
    max_seconds: f64,
    /// Seconds to wait for any one response.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// MCP protocol version sent in initialize.
    #[arg(long, default_value = PROTOCOL_VERSION)]
    protocol_version: String,
    /// Count results with isError (or JSON-RPC errors) but do not fail the run.
    #[arg(long)]
    allow_errors: bool,
    /// Print each server's tools as JSON and exit.
    #[arg(long)]
    list_tools: bool,
    /// Also write the results JSON to this file.
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
    /// No progress lines and no table on stderr.
    #[arg(long)]
    quiet: bool,
    /// HTTP mode: the server's MCP endpoint, e.g. http://127.0.0.1:8765/mcp.
    #[arg(long, value_name = "URL")]
    http_url: Option<String>,
    /// HTTP mode: start this server command with `--http 127.0.0.1:PORT` appended, on a free port.
    #[arg(long, value_name = "CMD")]
    spawn_http: Option<String>,
    /// HTTP mode: concurrent sessions, one measurement per count.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 8, 32])]
    clients: Vec<usize>,
    /// HTTP mode: seconds of calls per client count.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// HTTP mode: bearer token (default: $EXECUTION_TOKEN).
    #[arg(long, env = "EXECUTION_TOKEN", hide_env_values = true)]
    #[serde(skip)]
    token: Option<String>,
    /// Exec mode: a command spawned -n times (the process-per-call baseline).
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// Passed by `cargo bench` to every harness = false bench; ignored.
    #[arg(long, hide = true, action = ArgAction::Count)]
    #[serde(skip)]
    bench: u8,
}

enum Mode {
    Stdio,
    Http,
    Exec,
}

impl Opts {
    fn mode(&self) -> Result<Mode> {
        let http = self.http_url.is_some() || self.spawn_http.is_some();
        let exec = self.exec.is_some();
        let stdio = !self.servers.is_empty();
        match (stdio, http, exec) {
            (true, false, false) => Ok(Mode::Stdio),
            (false, true, false) if self.http_url.is_some() && self.spawn_http.is_some() => {
                bail!("give --http-url or --spawn-http, not both")
            }
            (false, true, false) => Ok(Mode::Http),
            (false, false, true) => Ok(Mode::Exec),
            (false, false, false) => bail!(
                "nothing to benchmark: give --server CMD (stdio), --http-url URL or --spawn-http CMD (http), or --exec CMD"
            ),
            _ => bail!("choose one mode: --server (stdio), --http-url / --spawn-http (http), or --exec"),
        }
    }

    fn response_timeout(&self) -> Result<Duration> {
        positive_seconds("--timeout", self.timeout)
    }

    fn batch_limit(&self) -> Result<Duration> {
        positive_seconds("--max-seconds", self.max_seconds)
    }

    fn log(&self, message: impl Display) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }
}

fn positive_seconds(flag: &str, secs: f64) -> Result<Duration> {
    if !(secs.is_finite() && secs > 0.0) {
        bail!("{flag} must be a positive number of seconds, got {secs}");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// What a mode hands back: the results JSON, the human table, and how many
/// calls returned errors.
struct Report {
    json: Value,
    table: String,
    errors: u64,
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    match run(&opts) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(errors) if opts.allow_errors => {
            opts.log(format!(
                "e2e: {errors} calls returned errors (allowed by --allow-errors)"
            ));
            ExitCode::SUCCESS
        }
        Ok(errors) => {
            eprintln!(
                "e2e: {errors} calls returned errors (isError or a JSON-RPC error); pass --allow-errors to accept them"
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("e2e: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: &Opts) -> Result<u64> {
    let started = Instant::now();
    let mut report = match opts.mode()? {
        Mode::Stdio => stdio_main(opts)?,
        Mode::Http => http_main(opts)?,
        Mode::Exec => exec_main(opts)?,
    };
    if let Value::Object(map) = &mut report.json {
        map.insert("machine".into(), machine_info());
        map.insert("settings".into(), serde_json::to_value(opts)?);
        map.insert("elapsed_s".into(), json!(round_to(started.elapsed().as_secs_f64(), 1)));
    }
    emit(opts, &report)?;
    Ok(report.errors)
}

fn emit(opts: &Opts, report: &Report) -> Result<()> {
    let text = serde_json::to_string_pretty(&report.json)?;
    if let Some(path) = &opts.json_out {
        std::fs::write(path, format!("{text}\n")).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !opts.quiet && !report.table.is_empty() {
        eprintln!("\n{}\n", report.table);
    }
    println!("{text}");
    Ok(())
}

// ---------------------------------------------------------------------------
// Commands and workloads
// ---------------------------------------------------------------------------

/// A command to spawn: argv, extra environment, working directory.
#[derive(Debug, Clone)]
struct ProcSpec {
    label: String,
    command: String,
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
}

impl ProcSpec {
    /// Splits `command` like a shell would (quotes, backslashes), without running one.
    /// A leading `env K=V ...` is applied here, so the measured pid is the server itself.
    fn parse(label: &str, command: &str, extra_env: &[String], cwd: Option<&Path>) -> Result<Self> {
        let mut words =
            shell_words::split(command).with_context(|| format!("cannot split the command line {command:?}"))?;
        let mut env = extra_env.iter().map(|kv| parse_env(kv)).collect::<Result<Vec<_>>>()?;
        if words.first().is_some_and(|w| w == "env") {
            words.remove(0);
            while words.first().is_some_and(|w| is_assignment(w)) {
                env.push(parse_env(&words.remove(0))?);
            }
            if words.first().is_some_and(|w| w.starts_with('-')) {
                bail!("`env` options are not supported in {command:?}; use --env K=V");
            }
        }
        if words.is_empty() {
            bail!("the command line {command:?} names no program");
        }
        // A relative path names a program under our directory, not under --cwd.
        let mut program = words.remove(0);
        if program.contains('/') && Path::new(&program).is_relative() {
            let here = std::env::current_dir().context("cannot read the current directory")?;
            program = here.join(&program).display().to_string();
        }
        Ok(Self {
            label: label.to_owned(),
            command: command.to_owned(),
            program,
            args: words,
            env,
            cwd: cwd.map(Path::to_path_buf),
        })
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd
    }

    fn spawn_error(&self, e: std::io::Error) -> anyhow::Error {
        anyhow!("cannot spawn {:?} ({}): {e}", self.program, self.command)
    }
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=')
        .is_some_and(|(k, _)| !k.is_empty() && !k.contains('/'))
}

fn parse_env(kv: &str) -> Result<(String, String)> {
    match kv.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => bail!("an environment setting must look like K=V, got {kv:?}"),
    }
}

/// One tools/call to repeat.
#[derive(Debug, Clone, Serialize)]
struct Workload {
    label: String,
    tool: String,
    arguments: Value,
}

impl Workload {
    fn params(&self) -> Value {
        json!({ "name": self.tool, "arguments": self.arguments })
    }
}

/// Workloads from files first, then inline JSON; repeated labels get `#2`, `#3`...
fn parse_workloads(inline: &[String], files: &[PathBuf]) -> Result<Vec<Workload>> {
    let mut items = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
        items.push((path.display().to_string(), value));
    }
    for text in inline {
        let value: Value = serde_json::from_str(text).with_context(|| format!("--call is not valid JSON: {text}"))?;
        items.push(("--call".to_owned(), value));
    }
    let mut workloads: Vec<Workload> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (source, value) in items {
        let list = match value {
            Value::Array(list) => list,
            one => vec![one],
        };
        for item in list {
            let mut w = workload_from(&item).with_context(|| format!("bad workload in {source}"))?;
            let count = seen.entry(w.label.clone()).or_default();
            *count += 1;
            if *count > 1 {
                w.label = format!("{}#{count}", w.label);
            }
            workloads.push(w);
        }
    }
    Ok(workloads)
}

fn workload_from(item: &Value) -> Result<Workload> {
    let obj = item
        .as_object()
        .ok_or_else(|| anyhow!("expected an object, got {}", clip(item, 200)))?;
    let tool = obj
        .get("tool")
        .or_else(|| obj.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("a workload needs a \"tool\" name: {}", clip(item, 200)))?;
    let arguments = obj.get("arguments").cloned().unwrap_or_else(|| json!({}));
    if !arguments.is_object() {
        bail!("\"arguments\" must be an object: {}", clip(item, 200));
    }
    let label = obj.get("label").and_then(Value::as_str).unwrap_or(tool);
    Ok(Workload {
        label: label.to_owned(),
        tool: tool.to_owned(),
        arguments,
    })
}

/// None for a successful tools/call response, else a short reason.
fn tool_error(msg: &Value) -> Option<String> {
    if let Some(err) = msg.get("error") {
        return Some(format!("JSON-RPC error {}", clip(err, 300)));
    }
    let Some(result) = msg.get("result").and_then(Value::as_object) else {
        return Some("the response has no result object".to_owned());
    };
    if result.get("isError").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let texts: Vec<&str> = result
        .get("content")
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    Some(format!("isError: {}", truncate(&texts.join(" "), 300)))
}

fn clip(value: &Value, max: usize) -> String {
    truncate(&value.to_string(), max)
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

/// Milliseconds: count, min, percentiles (linear interpolation), max, mean.
#[derive(Debug, Clone, Serialize)]
struct Summary {
    n: usize,
    min: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

impl Summary {
    fn of(durations: &[Duration]) -> Option<Self> {
        let ms: Vec<f64> = durations.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        Self::of_ms(&ms)
    }

    fn of_ms(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut xs = values.to_vec();
        xs.sort_by(f64::total_cmp);
        let r = |v: f64| round_to(v, 3);
        Some(Self {
            n: xs.len(),
            min: r(xs[0]),
            p50: r(percentile(&xs, 0.50)),
            p90: r(percentile(&xs, 0.90)),
            p99: r(percentile(&xs, 0.99)),
            max: r(xs[xs.len() - 1]),
            mean: r(xs.iter().sum::<f64>() / xs.len() as f64),
        })
    }
}

/// Percentile of sorted, non-empty values, interpolated linearly between ranks.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = (sorted.len() - 1) as f64 * q;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn median(values: &[f64]) -> Option<f64> {
    Summary::of_ms(values).map(|s| s.p50)
}

fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

// ---------------------------------------------------------------------------
// /proc: memory and CPU of a pid
// ---------------------------------------------------------------------------

/// A `kB` field of `/proc/<pid>/status` (VmHWM, VmRSS).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Resets the pid's VmHWM to its current RSS; false where that is not permitted.
fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// utime + stime + cutime + cstime of the pid, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; count fields after its ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields.get(11..15)?.iter().map(|f| f.parse::<u64>().ok()).sum()
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn ticks_to_ms(ticks: u64) -> f64 {
    ticks as f64 / clock_ticks_per_second() * 1000.0
}

fn kib_to_mib(kib: u64) -> f64 {
    round_to(kib as f64 / 1024.0, 1)
}

/// CPU time of this process's waited-for children so far.
fn children_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

// ---------------------------------------------------------------------------
// Child processes: stderr tail, stopping
// ---------------------------------------------------------------------------

/// The last few KiB a child wrote to stderr, for error messages.
#[derive(Clone, Default)]
struct StderrTail(Arc<Mutex<Vec<u8>>>);

impl StderrTail {
    fn collect(&self, mut from: impl Read + Send + 'static) {
        let tail = self.0.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut kept = tail.lock().unwrap_or_else(|e| e.into_inner());
                        kept.extend_from_slice(&buf[..n]);
                        if kept.len() > 2 * STDERR_TAIL_BYTES {
                            let cut = kept.len() - STDERR_TAIL_BYTES;
                            kept.drain(..cut);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        });
    }

    fn text(&self) -> String {
        let kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let start = kept.len().saturating_sub(STDERR_TAIL_BYTES);
        let text = String::from_utf8_lossy(&kept[start..]).trim_end().to_owned();
        if text.is_empty() { "(empty)".to_owned() } else { text }
    }
}

fn wait_for_exit(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(5)),
            _ => return None,
        }
    }
}

fn send_sigterm(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

/// Waits `grace` for a child already asked to stop (stdin closed or SIGTERM),
/// then escalates to SIGTERM and SIGKILL. Says how it ended.
fn stop_child(child: &mut Child, grace: Duration) -> String {
    if let Some(status) = wait_for_exit(child, grace) {
        return describe_exit(status);
    }
    send_sigterm(child);
    if let Some(status) = wait_for_exit(child, Duration::from_secs(2)) {
        return format!("{} (after SIGTERM)", describe_exit(status));
    }
    let _ = child.kill();
    let _ = child.wait();
    "killed".to_owned()
}

fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => code.to_string(),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => status.to_string(),
    }
}

// ---------------------------------------------------------------------------
// One stdio server session
// ---------------------------------------------------------------------------

/// What the stdout reader thread sends: a complete line with the time its last
/// byte arrived, or the end of the stream.
enum Incoming {
    Line(Vec<u8>, Instant),
    Closed(String),
}

fn spawn_line_reader(mut stdout: ChildStdout) -> Receiver<Incoming> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || read_lines(&mut stdout, &tx));
    rx
}

fn read_lines(stdout: &mut ChildStdout, tx: &Sender<Incoming>) {
    let mut buf = vec![0u8; 1 << 20];
    let mut partial = Vec::new();
    loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) => {
                let _ = tx.send(Incoming::Closed("the server closed its stdout".to_owned()));
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(Incoming::Closed(format!("cannot read the server's stdout: {e}")));
                return;
            }
        };
        let arrived = Instant::now();
        let mut rest = &buf[..n];
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            partial.extend_from_slice(&rest[..i]);
            rest = &rest[i + 1..];
            let line = std::mem::take(&mut partial);
            if !line.trim_ascii().is_empty() && tx.send(Incoming::Line(line, arrived)).is_err() {
                return;
            }
        }
        partial.extend_from_slice(rest);
    }
}

fn encode(msg: &Value) -> Vec<u8> {
    let mut data = msg.to_string().into_bytes();
    data.push(b'\n');
    data
}

fn request_msg(id: u64, method: &str, params: Option<&Value>) -> Value {
    let mut msg = json!({ "jsonrpc": "2.0", "id": id, "method": method });
    if let Some(params) = params {
        msg["params"] = params.clone();
    }
    msg
}

fn response_id(msg: &Value) -> Option<u64> {
    msg.get("id").and_then(Value::as_u64)
}

/// A response to one request, with the times it was written and fully read.
struct Reply {
    msg: Value,
    sent: Instant,
    received: Instant,
    bytes: usize,
}

/// One pipelined batch: time from the first byte written to the last response.
struct Pipelined {
    elapsed: Duration,
    responses: Vec<Value>,
}

#[derive(Default, Clone, Copy)]
struct Counters {
    notifications: u64,
    server_requests: u64,
    stray_responses: u64,
}

/// A spawned server speaking newline-delimited JSON-RPC on stdin/stdout.
struct StdioServer {
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    incoming: Receiver<Incoming>,
    stderr: StderrTail,
    timeout: Duration,
    next_id: u64,
    /// Encoded answers to server→client requests, not yet written.
    replies: Vec<u8>,
    spawned_at: Instant,
    init_result: Value,
    rss_after_init_kib: Option<u64>,
    counters: Counters,
    /// Highest VmHWM seen, across clear_refs resets.
    peak_kib: u64,
}

impl StdioServer {
    fn spawn(spec: &ProcSpec, timeout: Duration) -> Result<Self> {
        let mut cmd = spec.command();
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let spawned_at = Instant::now();
        let mut child = cmd.spawn().map_err(|e| spec.spawn_error(e))?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("spawned {:?} without its stdio pipes", spec.command);
        };
        let tail = StderrTail::default();
        tail.collect(stderr);
        Ok(Self {
            label: spec.label.clone(),
            child,
            stdin: Some(stdin),
            incoming: spawn_line_reader(stdout),
            stderr: tail,
            timeout,
            next_id: 1,
            replies: Vec::new(),
            spawned_at,
            init_result: Value::Null,
            rss_after_init_kib: None,
            counters: Counters::default(),
            peak_kib: 0,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error naming the server, its exit status if it has one, and its stderr tail.
    fn fail(&mut self, what: impl Display) -> anyhow::Error {
        let exited = match self.child.try_wait() {
            Ok(Some(status)) => {
                std::thread::sleep(Duration::from_millis(50)); // let the stderr reader catch up
                format!("exited {}", describe_exit(status))
            }
            _ => "running".to_owned(),
        };
        anyhow!(
            "[{}] {what} (server pid {}, {exited}); stderr tail:\n{}",
            self.label,
            self.pid(),
            self.stderr.text()
        )
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        let result = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(data).and_then(|()| stdin.flush()),
            None => Err(std::io::Error::new(ErrorKind::BrokenPipe, "stdin already closed")),
        };
        result.map_err(|e| self.fail(format!("cannot write to the server's stdin: {e}")))
    }

    fn recv(&mut self, deadline: Instant) -> Result<(Vec<u8>, Instant)> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.incoming.recv_timeout(wait) {
            Ok(Incoming::Line(line, arrived)) => Ok((line, arrived)),
            Ok(Incoming::Closed(why)) => Err(self.fail(why)),
            Err(RecvTimeoutError::Timeout) => Err(self.fail(format!("no response within {:?}", self.timeout))),
            Err(RecvTimeoutError::Disconnected) => Err(self.fail("the server's stdout is closed")),
        }
    }

    fn decode(&mut self, line: &[u8]) -> Result<Value> {
        serde_json::from_slice(line).map_err(|e| {
            let head = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
            self.fail(format!("a line on stdout is not JSON ({e}): {head}"))
        })
    }

    /// True when `msg` is a response. Notifications are counted; requests from
    /// the server are answered (we declared no capabilities: only ping works).
    fn route(&mut self, msg: &Value) -> Result<bool> {
        let Some(obj) = msg.as_object() else {
            return Err(self.fail(format!("unexpected JSON-RPC message: {}", clip(msg, 200))));
        };
        let Some(method) = obj.get("method").and_then(Value::as_str) else {
            return Ok(true);
        };
        match obj.get("id") {
            Some(id) => {
                self.counters.server_requests += 1;
                let reply = if method == "ping" {
                    json!({ "jsonrpc": "2.0", "id": id, "result": {} })
                } else {
                    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32601, "message": "method not found" } })
                };
                self.replies.extend(encode(&reply));
            }
            None => self.counters.notifications += 1,
        }
        Ok(false)
    }

    fn flush_replies(&mut self) -> Result<()> {
        if self.replies.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.replies);
        self.write_all(&data)
    }

    fn notify(&mut self, method: &str) -> Result<()> {
        self.write_all(&encode(&json!({ "jsonrpc": "2.0", "method": method })))
    }

    /// Sends one request and waits for its response.
    fn request(&mut self, method: &str, params: Option<&Value>) -> Result<Reply> {
        let id = self.take_id();
        let data = encode(&request_msg(id, method, params));
        let sent = Instant::now();
        self.write_all(&data)?;
        let deadline = sent + self.timeout;
        loop {
            let (line, received) = self.recv(deadline)?;
            let msg = self.decode(&line)?;
            if self.route(&msg)? {
                if response_id(&msg) == Some(id) {
                    let bytes = line.len();
                    return Ok(Reply {
                        msg,
                        sent,
                        received,
                        bytes,
                    });
                }
                self.counters.stray_responses += 1;
            }
            self.flush_replies()?;
        }
    }

    /// Writes `k` requests without waiting, then reads all `k` responses.
    /// The reader thread drains stdout meanwhile, so a server blocked on a full
    /// stdout pipe cannot deadlock us. Lines are decoded only once enough have
    /// arrived, so decoding stays out of the server's way.
    fn pipeline(&mut self, method: &str, params: &Value, k: usize) -> Result<Pipelined> {
        let first = self.next_id;
        let mut payload = Vec::new();
        for _ in 0..k {
            let id = self.take_id();
            payload.extend(encode(&request_msg(id, method, Some(params))));
        }
        let mut outstanding: BTreeSet<u64> = (first..self.next_id).collect();
        let started = Instant::now();
        self.write_all(&payload)?;
        let deadline = started + self.timeout.mul_f64((k as f64 / 10.0).max(1.0));
        let mut lines = Vec::new();
        let mut responses = Vec::with_capacity(k);
        let mut last = started;
        while !outstanding.is_empty() {
            lines.push(self.recv(deadline)?);
            if lines.len() < outstanding.len() {
                continue;
            }
            for (line, arrived) in std::mem::take(&mut lines) {
                let msg = self.decode(&line)?;
                if !self.route(&msg)? {
                    continue;
                }
                match response_id(&msg) {
                    Some(id) if outstanding.remove(&id) => {
                        last = last.max(arrived);
                        responses.push(msg);
                    }
                    _ => self.counters.stray_responses += 1,
                }
            }
            self.flush_replies()?;
        }
        Ok(Pipelined {
            elapsed: last - started,
            responses,
        })
    }

    /// initialize, then notifications/initialized. Returns spawn → initialize response.
    fn initialize(&mut self, protocol: &str) -> Result<Duration> {
        let params = json!({
            "protocolVersion": protocol,
            "capabilities": {},
            "clientInfo": { "name": CLIENT_NAME, "version": env!("CARGO_PKG_VERSION") },
        });
        let reply = self.request("initialize", Some(&params))?;
        if let Some(err) = reply.msg.get("error") {
            return Err(self.fail(format!("initialize failed: {err}")));
        }
        self.rss_after_init_kib = status_kib(self.pid(), "VmRSS");
        self.init_result = reply.msg.get("result").cloned().unwrap_or(Value::Null);
        self.notify("notifications/initialized")?;
        Ok(reply.received - self.spawned_at)
    }

    /// tools/list, following pagination. Returns the tools and the first page's latency.
    fn list_tools(&mut self) -> Result<(Vec<Value>, Duration)> {
        let mut tools = Vec::new();
        let mut cursor: Option<Value> = None;
        let mut first = None;
        loop {
            let params = cursor.take().map(|c| json!({ "cursor": c }));
            let reply = self.request("tools/list", params.as_ref())?;
            first.get_or_insert(reply.received - reply.sent);
            if let Some(err) = reply.msg.get("error") {
                return Err(self.fail(format!("tools/list failed: {err}")));
            }
            let result = reply.msg.get("result").cloned().unwrap_or(Value::Null);
            if let Some(page) = result.get("tools").and_then(Value::as_array) {
                tools.extend(page.iter().cloned());
            }
            match result.get("nextCursor") {
                Some(c) if !c.is_null() => cursor = Some(c.clone()),
                _ => return Ok((tools, first.unwrap_or_default())),
            }
        }
    }

    /// VmHWM now (since the last reset), in MiB; also folds it into the session peak.
    fn peak_mib(&mut self) -> Option<f64> {
        let hwm = status_kib(self.pid(), "VmHWM")?;
        self.peak_kib = self.peak_kib.max(hwm);
        Some(kib_to_mib(hwm))
    }

    fn reset_peak(&mut self) -> bool {
        self.peak_mib();
        reset_peak_rss(self.pid())
    }

    fn cpu_ticks(&self) -> Option<u64> {
        cpu_ticks(self.pid())
    }

    /// Closes stdin (the MCP way to end a stdio session) and waits for the exit.
    fn close(&mut self) -> String {
        self.stdin.take();
        stop_child(&mut self.child, Duration::from_secs(3))
    }
}

impl Drop for StdioServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Stdio mode: measurements
// ---------------------------------------------------------------------------

/// A server's results.
#[derive(Debug, Serialize)]
struct ServerResult {
    label: String,
    command: String,
    server_info: Value,
    protocol_version: Value,
    tool_count: usize,
    /// spawn → initialize response.
    cold_start_ms: Option<Summary>,
    /// spawn → first tools/list response.
    cold_ready_ms: Option<Summary>,
    tools_list_ms: Option<Summary>,
    /// VmRSS right after the initialize response.
    rss_idle_mib: Option<f64>,
    /// VmRSS after the first tools/list.
    rss_after_tools_list_mib: Option<f64>,
    /// VmHWM over every measuring session (cold-start spawns excluded).
    rss_peak_mib: Option<f64>,
    server_cpu_s_total: f64,
    workloads: Vec<WorkloadResult>,
    notifications_received: u64,
    server_requests_received: u64,
    stray_responses: u64,
    exit_after_stdin_eof: BTreeSet<String>,
    tools: Vec<Value>,
}

impl ServerResult {
    fn new(spec: &ProcSpec) -> Self {
        Self {
            label: spec.label.clone(),
            command: spec.command.clone(),
            server_info: Value::Null,
            protocol_version: Value::Null,
            tool_count: 0,
            cold_start_ms: None,
            cold_ready_ms: None,
            tools_list_ms: None,
            rss_idle_mib: None,
            rss_after_tools_list_mib: None,
            rss_peak_mib: None,
            server_cpu_s_total: 0.0,
            workloads: Vec::new(),
            notifications_received: 0,
            server_requests_received: 0,
            stray_responses: 0,
            exit_after_stdin_eof: BTreeSet::new(),
            tools: Vec::new(),
        }
    }

    fn errors(&self) -> u64 {
        self.workloads
            .iter()
            .map(|w| w.errors + w.pipelined.as_ref().map_or(0, |p| p.errors))
            .sum()
    }

    fn server_name(&self) -> String {
        let name = self.server_info.get("name").and_then(Value::as_str).unwrap_or("?");
        let version = self.server_info.get("version").and_then(Value::as_str).unwrap_or("");
        format!("{name} {version}").trim().to_owned()
    }
}

/// One workload's results on one server.
#[derive(Debug, Serialize)]
struct WorkloadResult {
    label: String,
    tool: String,
    arguments: Value,
    calls: usize,
    errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
    latency_ms: Option<Summary>,
    /// Server-bound rate: 1 / mean latency at the pipe.
    calls_per_s: Option<f64>,
    /// This client's end-to-end rate, its own JSON work included.
    wall_calls_per_s: Option<f64>,
    /// p50 of each round (compare mode).
    round_p50_ms: Vec<f64>,
    response_bytes_mean: Option<f64>,
    server_cpu_ms_per_call: Option<f64>,
    /// VmHWM during the sequential calls (reset before them).
    rss_peak_mib: Option<f64>,
    pipelined: Option<PipelinedResult>,
}

#[derive(Debug, Serialize)]
struct PipelinedResult {
    k: usize,
    rounds: usize,
    req_per_s_median: Option<f64>,
    req_per_s_all: Vec<f64>,
    errors: u64,
    /// VmHWM during the pipelined batches (reset before them).
    rss_peak_mib: Option<f64>,
}

/// One sequential batch of calls.
struct CallBatch {
    latencies: Vec<Duration>,
    bytes: usize,
    errors: u64,
    first_error: Option<String>,
    cpu_ticks: Option<u64>,
    wall: Duration,
}

fn call_batch(server: &mut StdioServer, call: &Workload, n: usize, limit: Duration) -> Result<CallBatch> {
    let params = call.params();
    let mut batch = CallBatch {
        latencies: Vec::with_capacity(n),
        bytes: 0,
        errors: 0,
        first_error: None,
        cpu_ticks: None,
        wall: Duration::ZERO,
    };
    let cpu_before = server.cpu_ticks();
    let start = Instant::now();
    for _ in 0..n {
        let reply = server.request("tools/call", Some(&params))?;
        batch.latencies.push(reply.received - reply.sent);
        batch.bytes += reply.bytes;
        if let Some(err) = tool_error(&reply.msg) {
            batch.errors += 1;
            batch.first_error.get_or_insert(err);
        }
        if start.elapsed() > limit {
            break;
        }
    }
    batch.wall = start.elapsed();
    batch.cpu_ticks = cpu_before.zip(server.cpu_ticks()).map(|(a, b)| b.saturating_sub(a));
    Ok(batch)
}

fn warm_up(server: &mut StdioServer, call: &Workload, n: usize, allow_errors: bool) -> Result<()> {
    let params = call.params();
    for _ in 0..n.max(1) {
        let reply = server.request("tools/call", Some(&params))?;
        if let Some(err) = tool_error(&reply.msg)
            && !allow_errors
        {
            bail!(
                "[{}] tools/call {} failed during warm-up: {err}\n(fix the arguments, or pass --allow-errors to time error responses)",
                server.label,
                call.tool
            );
        }
    }
    Ok(())
}

impl WorkloadResult {
    fn new(call: &Workload, batches: &[CallBatch], pipes: &[Pipelined], k: usize) -> Self {
        let latencies: Vec<Duration> = batches.iter().flat_map(|b| b.latencies.iter().copied()).collect();
        let n = latencies.len();
        let busy: f64 = latencies.iter().map(Duration::as_secs_f64).sum();
        let wall: f64 = batches.iter().map(|b| b.wall.as_secs_f64()).sum();
        let ticks: Option<u64> = batches.iter().map(|b| b.cpu_ticks).sum();
        let per_call = |total: f64| (n > 0).then(|| total / n as f64);
        let rate = |secs: f64| (secs > 0.0).then(|| round_to(n as f64 / secs, 1));
        Self {
            label: call.label.clone(),
            tool: call.tool.clone(),
            arguments: call.arguments.clone(),
            calls: n,
            errors: batches.iter().map(|b| b.errors).sum(),
            first_error: batches.iter().find_map(|b| b.first_error.clone()),
            latency_ms: Summary::of(&latencies),
            calls_per_s: rate(busy),
            wall_calls_per_s: rate(wall),
            round_p50_ms: if batches.len() > 1 {
                batches
                    .iter()
                    .filter_map(|b| Summary::of(&b.latencies))
                    .map(|s| s.p50)
                    .collect()
            } else {
                Vec::new()
            },
            response_bytes_mean: per_call(batches.iter().map(|b| b.bytes as f64).sum()).map(|v| v.round()),
            server_cpu_ms_per_call: ticks.and_then(|t| per_call(ticks_to_ms(t))).map(|v| round_to(v, 3)),
            rss_peak_mib: None,
            pipelined: (!pipes.is_empty()).then(|| PipelinedResult::new(pipes, k)),
        }
    }
}

impl PipelinedResult {
    fn new(pipes: &[Pipelined], k: usize) -> Self {
        let rates: Vec<f64> = pipes
            .iter()
            .map(|p| round_to(k as f64 / p.elapsed.as_secs_f64().max(1e-9), 1))
            .collect();
        Self {
            k,
            rounds: pipes.len(),
            req_per_s_median: median(&rates).map(|v| round_to(v, 1)),
            req_per_s_all: rates,
            errors: pipes
                .iter()
                .flat_map(|p| &p.responses)
                .filter(|msg| tool_error(msg).is_some())
                .count() as u64,
            rss_peak_mib: None,
        }
    }
}

/// Per-server totals over all measuring sessions.
#[derive(Default)]
struct Tally {
    peak_kib: u64,
    cpu_ticks: u64,
    counters: Counters,
    exits: BTreeSet<String>,
}

impl Tally {
    /// Reads the session's last memory and CPU figures, then closes it.
    fn close(&mut self, mut server: StdioServer) {
        server.peak_mib();
        self.peak_kib = self.peak_kib.max(server.peak_kib);
        self.cpu_ticks += server.cpu_ticks().unwrap_or(0);
        self.counters.notifications += server.counters.notifications;
        self.counters.server_requests += server.counters.server_requests;
        self.counters.stray_responses += server.counters.stray_responses;
        self.exits.insert(server.close());
    }
}

/// The stdio measurements for one server, or two in compare mode (their
/// measurements interleaved A B A B so drift on the machine hits both alike).
struct StdioBench<'a> {
    opts: &'a Opts,
    specs: Vec<ProcSpec>,
    /// Per server, its workloads (same count and order for every server).
    workloads: Vec<Vec<Workload>>,
    rounds: usize,
    timeout: Duration,
    limit: Duration,
}

impl StdioBench<'_> {
    fn run(&self) -> Result<Vec<ServerResult>> {
        let mut results: Vec<ServerResult> = self.specs.iter().map(ServerResult::new).collect();
        let mut tallies: Vec<Tally> = self.specs.iter().map(|_| Tally::default()).collect();
        self.cold_starts(&mut results)?;
        self.session_metrics(&mut results, &mut tallies)?;
        for index in 0..self.workloads.first().map_or(0, Vec::len) {
            self.workload(index, &mut results, &mut tallies)?;
        }
        for (result, tally) in results.iter_mut().zip(tallies) {
            result.rss_peak_mib = (tally.peak_kib > 0).then(|| kib_to_mib(tally.peak_kib));
            result.server_cpu_s_total = round_to(ticks_to_ms(tally.cpu_ticks) / 1000.0, 3);
            result.notifications_received = tally.counters.notifications;
            result.server_requests_received = tally.counters.server_requests;
            result.stray_responses = tally.counters.stray_responses;
            result.exit_after_stdin_eof = tally.exits;
        }
        Ok(results)
    }

    fn tag(&self) -> &str {
        if self.specs.len() > 1 {
            "compare"
        } else {
            &self.specs[0].label
        }
    }

    /// One fresh spawn: (spawn → initialize response, spawn → tools/list response).
    fn cold_start(&self, spec: &ProcSpec) -> Result<(Duration, Duration)> {
        let mut server = StdioServer::spawn(spec, self.timeout)?;
        let init = server.initialize(&self.opts.protocol_version)?;
        let reply = server.request("tools/list", None)?;
        let ready = reply.received - server.spawned_at;
        server.close();
        Ok((init, ready))
    }

    fn cold_starts(&self, results: &mut [ServerResult]) -> Result<()> {
        if self.opts.cold == 0 {
            return Ok(());
        }
        self.opts.log(format!(
            "[{}] cold start x{} per server ...",
            self.tag(),
            self.opts.cold
        ));
        for spec in &self.specs {
            for _ in 0..self.opts.cold_warmup {
                self.cold_start(spec)?;
            }
        }
        let mut inits = vec![Vec::new(); self.specs.len()];
        let mut readies = vec![Vec::new(); self.specs.len()];
        for _ in 0..self.opts.cold {
            for ((spec, init), ready) in self.specs.iter().zip(&mut inits).zip(&mut readies) {
                let (a, b) = self.cold_start(spec)?;
                init.push(a);
                ready.push(b);
            }
        }
        for ((result, init), ready) in results.iter_mut().zip(&inits).zip(&readies) {
            result.cold_start_ms = Summary::of(init);
            result.cold_ready_ms = Summary::of(ready);
        }
        Ok(())
    }

    /// Spawns, initializes and lists tools; checks the workloads' tools exist.
    fn open(&self, index: usize) -> Result<(StdioServer, Vec<Value>)> {
        let mut server = StdioServer::spawn(&self.specs[index], self.timeout)?;
        server.initialize(&self.opts.protocol_version)?;
        let (tools, _) = server.list_tools()?;
        let names: BTreeSet<&str> = tools
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str))
            .collect();
        for call in &self.workloads[index] {
            if !names.contains(call.tool.as_str()) {
                bail!(
                    "[{}] tool {:?} is not in tools/list: {}",
                    server.label,
                    call.tool,
                    names.iter().copied().collect::<Vec<_>>().join(", ")
                );
            }
        }
        Ok((server, tools))
    }

    fn open_all(&self) -> Result<Vec<StdioServer>> {
        (0..self.specs.len()).map(|i| self.open(i).map(|(s, _)| s)).collect()
    }

    /// Server info, tool catalogue, idle RSS and tools/list latency.
    fn session_metrics(&self, results: &mut [ServerResult], tallies: &mut [Tally]) -> Result<()> {
        let mut sessions = Vec::new();
        for (index, result) in results.iter_mut().enumerate() {
            let (mut server, tools) = self.open(index)?;
            result.server_info = server.init_result.get("serverInfo").cloned().unwrap_or(Value::Null);
            result.protocol_version = server
                .init_result
                .get("protocolVersion")
                .cloned()
                .unwrap_or(Value::Null);
            result.tool_count = tools.len();
            result.tools = tools.iter().map(tool_summary).collect();
            result.rss_idle_mib = server.rss_after_init_kib.map(kib_to_mib);
            result.rss_after_tools_list_mib = status_kib(server.pid(), "VmRSS").map(kib_to_mib);
            server.peak_mib();
            sessions.push(server);
        }
        let per_round = (self.opts.tools_list / self.rounds).max(1);
        let mut latencies = vec![Vec::new(); sessions.len()];
        for _ in 0..self.rounds {
            for (server, lat) in sessions.iter_mut().zip(&mut latencies) {
                for _ in 0..per_round {
                    let reply = server.request("tools/list", None)?;
                    lat.push(reply.received - reply.sent);
                }
            }
        }
        for (result, lat) in results.iter_mut().zip(&latencies) {
            result.tools_list_ms = Summary::of(lat);
        }
        for (tally, server) in tallies.iter_mut().zip(sessions) {
            tally.close(server);
        }
        Ok(())
    }

    /// One workload: a fresh session per server, warm-up, sequential rounds,
    /// then pipelined rounds, each phase with its own peak RSS.
    fn workload(&self, index: usize, results: &mut [ServerResult], tallies: &mut [Tally]) -> Result<()> {
        let calls: Vec<&Workload> = self.workloads.iter().map(|w| &w[index]).collect();
        let k = self.opts.pipeline;
        let pipe_rounds = if k > 0 { self.opts.pipeline_rounds } else { 0 };
        self.opts.log(format!(
            "[{}] {}: {}x{} sequential calls, {}x{} pipelined, per server ...",
            self.tag(),
            calls[0].label,
            self.rounds,
            self.opts.n,
            pipe_rounds,
            k
        ));
        let mut sessions = self.open_all()?;
        for (server, call) in sessions.iter_mut().zip(&calls) {
            warm_up(server, call, self.opts.warmup, self.opts.allow_errors)?;
        }

        let resets: Vec<bool> = sessions.iter_mut().map(StdioServer::reset_peak).collect();
        let can_reset = resets.iter().all(|&ok| ok);
        let mut batches: Vec<Vec<CallBatch>> = calls.iter().map(|_| Vec::new()).collect();
        for _ in 0..self.rounds {
            for ((server, call), out) in sessions.iter_mut().zip(&calls).zip(&mut batches) {
                out.push(call_batch(server, call, self.opts.n, self.limit)?);
            }
        }
        let seq_peaks: Vec<Option<f64>> = sessions
            .iter_mut()
            .map(|s| s.peak_mib().filter(|_| can_reset))
            .collect();

        for server in &mut sessions {
            server.reset_peak();
        }
        let mut pipes: Vec<Vec<Pipelined>> = calls.iter().map(|_| Vec::new()).collect();
        for _ in 0..pipe_rounds {
            for ((server, call), out) in sessions.iter_mut().zip(&calls).zip(&mut pipes) {
                out.push(server.pipeline("tools/call", &call.params(), k)?);
            }
        }
        let pipe_peaks: Vec<Option<f64>> = sessions
            .iter_mut()
            .map(|s| s.peak_mib().filter(|_| can_reset))
            .collect();

        for (j, result) in results.iter_mut().enumerate() {
            let mut w = WorkloadResult::new(calls[j], &batches[j], &pipes[j], k);
            w.rss_peak_mib = seq_peaks[j];
            if let Some(p) = &mut w.pipelined {
                p.rss_peak_mib = pipe_peaks[j];
            }
            result.workloads.push(w);
        }
        for (tally, server) in tallies.iter_mut().zip(sessions) {
            tally.close(server);
        }
        Ok(())
    }
}

fn tool_summary(tool: &Value) -> Value {
    let schema = tool.get("inputSchema").cloned().unwrap_or(Value::Null);
    let properties: Vec<&String> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().collect())
        .unwrap_or_default();
    json!({
        "name": tool.get("name"),
        "properties": properties,
        "required": schema.get("required").cloned().unwrap_or_else(|| json!([])),
    })
}

fn stdio_specs(opts: &Opts) -> Result<Vec<ProcSpec>> {
    if opts.compare && opts.servers.len() != 2 {
        bail!(
            "--compare needs exactly two --server commands, got {}",
            opts.servers.len()
        );
    }
    if opts.labels.len() > opts.servers.len() {
        bail!("more --label flags than --server commands");
    }
    opts.servers
        .iter()
        .enumerate()
        .map(|(i, cmd)| {
            let default = char::from(b'A' + (i % 26) as u8).to_string();
            let label = opts.labels.get(i).cloned().unwrap_or(default);
            ProcSpec::parse(&label, cmd, &opts.env, opts.cwd.as_deref())
        })
        .collect()
}

/// Per server, its workloads: in compare mode B may have its own (same count
/// and order, labels taken from A's).
fn stdio_workloads(opts: &Opts, servers: usize) -> Result<Vec<Vec<Workload>>> {
    let a = parse_workloads(&opts.calls, &opts.calls_files)?;
    let has_b = !opts.calls_b.is_empty() || !opts.calls_files_b.is_empty();
    if has_b && !opts.compare {
        bail!("--call-b / --calls-file-b need --compare");
    }
    if !has_b {
        return Ok(vec![a; servers]);
    }
    let mut b = parse_workloads(&opts.calls_b, &opts.calls_files_b)?;
    if a.len() != b.len() {
        bail!(
            "B's workloads must match A's in number and order: A has {}, B has {}",
            a.len(),
            b.len()
        );
    }
    for (wa, wb) in a.iter().zip(&mut b) {
        wb.label = wa.label.clone();
    }
    Ok(vec![a, b])
}

fn stdio_main(opts: &Opts) -> Result<Report> {
    let specs = stdio_specs(opts)?;
    let workloads = stdio_workloads(opts, specs.len())?;
    let timeout = opts.response_timeout()?;
    if opts.list_tools {
        return list_tools(opts, &specs, timeout);
    }
    let rounds = if opts.compare { opts.rounds.max(1) } else { 1 };
    let limit = opts.batch_limit()?;
    let results = if opts.compare {
        let bench = StdioBench {
            opts,
            specs,
            workloads,
            rounds,
            timeout,
            limit,
        };
        bench.run()?
    } else {
        // Several servers without --compare: one after the other.
        let mut all = Vec::new();
        for (spec, calls) in specs.into_iter().zip(workloads) {
            let bench = StdioBench {
                opts,
                specs: vec![spec],
                workloads: vec![calls],
                rounds,
                timeout,
                limit,
            };
            all.extend(bench.run()?);
        }
        all
    };
    let errors = results.iter().map(ServerResult::errors).sum();
    let mut json = json!({ "mode": if opts.compare { "compare" } else { "stdio" } });
    let table = if opts.compare {
        let ratios = ratio_json(&results[0], &results[1]);
        json["rounds"] = json!(rounds);
        json["ratio_b_over_a"] = ratios;
        format!(
            "A = {}\nB = {}\n{rounds} rounds, A B A B; B/A > 1 means B is higher (slower, bigger; or more calls/s)\n{}",
            results[0].command,
            results[1].command,
            stdio_table(&results, true)
        )
    } else {
        let heads: String = results
            .iter()
            .map(|r| format!("{} = {}\n", r.label, r.command))
            .collect();
        format!("{heads}{}", stdio_table(&results, false))
    };
    json["results"] = serde_json::to_value(&results)?;
    Ok(Report { json, table, errors })
}

fn list_tools(opts: &Opts, specs: &[ProcSpec], timeout: Duration) -> Result<Report> {
    let mut servers = Vec::new();
    for spec in specs {
        let mut server = StdioServer::spawn(spec, timeout)?;
        server.initialize(&opts.protocol_version)?;
        let (tools, _) = server.list_tools()?;
        servers.push(json!({
            "label": spec.label,
            "command": spec.command,
            "serverInfo": server.init_result.get("serverInfo"),
            "protocolVersion": server.init_result.get("protocolVersion"),
            "tools": tools.iter().map(tool_summary).collect::<Vec<_>>(),
        }));
        server.close();
    }
    Ok(Report {
        json: json!({ "mode": "list-tools", "servers": servers }),
        table: String::new(),
        errors: 0,
    })
}

// ---------------------------------------------------------------------------
// Stdio mode: the table and the B/A ratios
// ---------------------------------------------------------------------------

/// A per-server metric: JSON key, row title, decimals shown, how to read it.
struct Metric {
    key: &'static str,
    title: &'static str,
    decimals: usize,
    get: fn(&ServerResult) -> Option<f64>,
}

/// A per-workload metric.
struct WorkloadMetric {
    key: &'static str,
    title: &'static str,
    decimals: usize,
    get: fn(&WorkloadResult) -> Option<f64>,
}

fn server_metrics() -> Vec<Metric> {
    vec![
        Metric {
            key: "cold_start_p50_ms",
            title: "cold start p50 ms (spawn→initialize)",
            decimals: 1,
            get: |r| r.cold_start_ms.as_ref().map(|s| s.p50),
        },
        Metric {
            key: "cold_start_p90_ms",
            title: "cold start p90 ms",
            decimals: 1,
            get: |r| r.cold_start_ms.as_ref().map(|s| s.p90),
        },
        Metric {
            key: "cold_ready_p50_ms",
            title: "cold ready p50 ms (spawn→tools/list)",
            decimals: 1,
            get: |r| r.cold_ready_ms.as_ref().map(|s| s.p50),
        },
        Metric {
            key: "tools_list_p50_ms",
            title: "tools/list p50 ms",
            decimals: 3,
            get: |r| r.tools_list_ms.as_ref().map(|s| s.p50),
        },
        Metric {
            key: "rss_idle_mib",
            title: "idle RSS MiB (after initialize)",
            decimals: 1,
            get: |r| r.rss_idle_mib,
        },
        Metric {
            key: "rss_peak_mib",
            title: "peak RSS MiB (VmHWM, all sessions)",
            decimals: 1,
            get: |r| r.rss_peak_mib,
        },
        Metric {
            key: "server_cpu_s_total",
            title: "server CPU s (all sessions)",
            decimals: 2,
            get: |r| Some(r.server_cpu_s_total),
        },
    ]
}

fn workload_metrics() -> Vec<WorkloadMetric> {
    vec![
        WorkloadMetric {
            key: "calls",
            title: "calls",
            decimals: 0,
            get: |w| Some(w.calls as f64),
        },
        WorkloadMetric {
            key: "calls_per_s",
            title: "calls/s (1 / mean latency)",
            decimals: 1,
            get: |w| w.calls_per_s,
        },
        WorkloadMetric {
            key: "p50_ms",
            title: "p50 ms",
            decimals: 3,
            get: |w| w.latency_ms.as_ref().map(|s| s.p50),
        },
        WorkloadMetric {
            key: "p99_ms",
            title: "p99 ms",
            decimals: 3,
            get: |w| w.latency_ms.as_ref().map(|s| s.p99),
        },
        WorkloadMetric {
            key: "server_cpu_ms_per_call",
            title: "server CPU ms/call",
            decimals: 3,
            get: |w| w.server_cpu_ms_per_call,
        },
        WorkloadMetric {
            key: "response_kib",
            title: "response KiB",
            decimals: 1,
            get: |w| w.response_bytes_mean.map(|b| b / 1024.0),
        },
        WorkloadMetric {
            key: "rss_peak_mib",
            title: "peak RSS MiB (sequential)",
            decimals: 1,
            get: |w| w.rss_peak_mib,
        },
        WorkloadMetric {
            key: "pipelined_req_per_s",
            title: "pipelined req/s (median)",
            decimals: 1,
            get: |w| w.pipelined.as_ref().and_then(|p| p.req_per_s_median),
        },
        WorkloadMetric {
            key: "pipelined_rss_peak_mib",
            title: "peak RSS MiB (pipelined)",
            decimals: 1,
            get: |w| w.pipelined.as_ref().and_then(|p| p.rss_peak_mib),
        },
        WorkloadMetric {
            key: "errors",
            title: "errors",
            decimals: 0,
            get: |w| Some((w.errors + w.pipelined.as_ref().map_or(0, |p| p.errors)) as f64),
        },
    ]
}

/// b / a, when both are known and a is not zero.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if a != 0.0 => Some(round_to(b / a, 3)),
        _ => None,
    }
}

fn ratio_json(a: &ServerResult, b: &ServerResult) -> Value {
    let mut out = Map::new();
    for m in server_metrics() {
        out.insert(m.key.into(), json!(ratio((m.get)(a), (m.get)(b))));
    }
    let mut workloads = Map::new();
    for (wa, wb) in a.workloads.iter().zip(&b.workloads) {
        let mut w = Map::new();
        for m in workload_metrics() {
            w.insert(m.key.into(), json!(ratio((m.get)(wa), (m.get)(wb))));
        }
        let rounds: Vec<Option<f64>> = wa
            .round_p50_ms
            .iter()
            .zip(&wb.round_p50_ms)
            .map(|(x, y)| ratio(Some(*x), Some(*y)))
            .collect();
        w.insert("p50_per_round".into(), json!(rounds));
        workloads.insert(wa.label.clone(), Value::Object(w));
    }
    out.insert("workloads".into(), Value::Object(workloads));
    Value::Object(out)
}

fn fmt_value(value: Option<f64>, decimals: usize) -> String {
    match value {
        None => "-".to_owned(),
        Some(v) if v.abs() >= 10_000.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.decimals$}"),
    }
}

/// The metrics table; in compare mode with a B/A column.
fn stdio_table(results: &[ServerResult], compare: bool) -> String {
    let mut headers = vec!["metric".to_owned()];
    headers.extend(results.iter().map(|r| r.label.clone()));
    if compare {
        headers.push("B/A".to_owned());
    }
    let mut rows = Vec::new();
    let text_row = |title: &str, cells: Vec<String>| {
        let mut row = vec![title.to_owned()];
        row.extend(cells);
        if compare {
            row.push(String::new());
        }
        row
    };
    rows.push(text_row(
        "server",
        results.iter().map(ServerResult::server_name).collect(),
    ));
    rows.push(text_row(
        "protocol version",
        results
            .iter()
            .map(|r| r.protocol_version.as_str().unwrap_or("-").to_owned())
            .collect(),
    ));
    rows.push(text_row(
        "tools",
        results.iter().map(|r| r.tool_count.to_string()).collect(),
    ));
    for m in server_metrics() {
        let values: Vec<Option<f64>> = results.iter().map(|r| (m.get)(r)).collect();
        rows.push(metric_row(m.title, &values, m.decimals, compare));
    }
    let labels = results.first().map(|r| r.workloads.len()).unwrap_or(0);
    for index in 0..labels {
        let mut head = vec![format!("[{}]", results[0].workloads[index].label)];
        head.extend(results.iter().map(|r| r.workloads[index].tool.clone()));
        if compare {
            head.push(String::new());
        }
        rows.push(head);
        for m in workload_metrics() {
            let values: Vec<Option<f64>> = results.iter().map(|r| (m.get)(&r.workloads[index])).collect();
            rows.push(metric_row(&format!("  {}", m.title), &values, m.decimals, compare));
        }
    }
    render_table(&headers, &rows)
}

fn metric_row(title: &str, values: &[Option<f64>], decimals: usize, compare: bool) -> Vec<String> {
    let mut row = vec![title.to_owned()];
    row.extend(values.iter().map(|v| fmt_value(*v, decimals)));
    if compare {
        row.push(fmt_value(ratio(values[0], values[1]), 3));
    }
    row
}

/// Columns padded to their widest cell; the first left-aligned, the rest right-aligned.
fn render_table(headers: &[String], rows: &[Vec<String>]) -> String {
    let width = |i: usize| {
        std::iter::once(headers)
            .chain(rows.iter().map(Vec::as_slice))
            .filter_map(|r| r.get(i))
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..headers.len()).map(width).collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| if i == 0 { format!("{c:<w$}") } else { format!("{c:>w$}") })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(headers)];
    out.push(widths.iter().map(|&w| "-".repeat(w)).collect::<Vec<_>>().join("  "));
    out.extend(rows.iter().map(|r| line(r)));
    out.join("\n")
}

// ---------------------------------------------------------------------------
// HTTP mode: Streamable HTTP sessions
// ---------------------------------------------------------------------------

/// Incremental parser of a `text/event-stream` body: yields each event's data.
#[derive(Default)]
struct SseParser {
    buf: Vec<u8>,
    data: String,
}

impl SseParser {
    fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(i) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let raw = &self.buf[start..start + i];
            start += i + 1;
            let line = String::from_utf8_lossy(raw);
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                if !self.data.is_empty() {
                    events.push(std::mem::take(&mut self.data));
                }
            } else if let Some(rest) = line.strip_prefix("data:") {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            }
        }
        self.buf.drain(..start);
        events
    }
}

/// A response to one HTTP request: the JSON-RPC message (none for a notification).
struct HttpReply {
    msg: Option<Value>,
    latency: Duration,
    bytes: usize,
}

/// One MCP session over Streamable HTTP, on its own connection pool.
struct HttpSession {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    protocol: String,
    session_id: Option<String>,
    next_id: u64,
    timeout: Duration,
}

impl HttpSession {
    /// POST initialize (reading Mcp-Session-Id), then notifications/initialized.
    async fn open(url: &str, token: Option<&str>, protocol: &str, timeout: Duration) -> Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(2)
            .build()?;
        let mut session = Self {
            http,
            url: url.to_owned(),
            token: token.map(str::to_owned),
            protocol: protocol.to_owned(),
            session_id: None,
            next_id: 1,
            timeout,
        };
        let params = json!({
            "protocolVersion": protocol,
            "capabilities": {},
            "clientInfo": { "name": CLIENT_NAME, "version": env!("CARGO_PKG_VERSION") },
        });
        let reply = session.request("initialize", Some(&params)).await?;
        if let Some(err) = reply.msg.as_ref().and_then(|m| m.get("error")) {
            bail!("initialize failed at {url}: {err}");
        }
        if let Some(v) = reply.msg.as_ref().and_then(|m| m["result"]["protocolVersion"].as_str()) {
            session.protocol = v.to_owned();
        }
        let note = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        session.post(&note, None).await?;
        Ok(session)
    }

    async fn request(&mut self, method: &str, params: Option<&Value>) -> Result<HttpReply> {
        let id = self.next_id;
        self.next_id += 1;
        self.post(&request_msg(id, method, params), Some(id)).await
    }

    async fn call(&mut self, params: &Value) -> Result<HttpReply> {
        self.request("tools/call", Some(params)).await
    }

    async fn post(&mut self, body: &Value, want: Option<u64>) -> Result<HttpReply> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.post_inner(body, want)).await {
            Ok(result) => result,
            Err(_) => bail!("no response from {} within {timeout:?}", self.url),
        }
    }

    async fn post_inner(&mut self, body: &Value, want: Option<u64>) -> Result<HttpReply> {
        let mut request = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json, text/event-stream")
            .body(serde_json::to_vec(body)?);
        if let Some(id) = &self.session_id {
            request = request
                .header("Mcp-Session-Id", id)
                .header("MCP-Protocol-Version", &self.protocol);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let sent = Instant::now();
        let mut response = request
            .send()
            .await
            .map_err(|e| anyhow::Error::new(e).context(format!("POST {}", self.url)))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("POST {} answered {status}: {}", self.url, truncate(&text, 300));
        }
        if self.session_id.is_none()
            && let Some(id) = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok())
        {
            self.session_id = Some(id.to_owned());
        }
        let is_sse = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        match want {
            Some(id) if is_sse => read_sse_response(&mut response, id, sent).await,
            Some(id) => {
                let body = response.bytes().await?;
                let latency = sent.elapsed();
                let msg: Value =
                    serde_json::from_slice(&body).with_context(|| format!("the answer to request {id} is not JSON"))?;
                Ok(HttpReply {
                    msg: Some(msg),
                    latency,
                    bytes: body.len(),
                })
            }
            None => {
                let body = response.bytes().await?;
                Ok(HttpReply {
                    msg: None,
                    latency: sent.elapsed(),
                    bytes: body.len(),
                })
            }
        }
    }

    /// Ends the session (DELETE); failures do not matter here.
    async fn close(self) {
        let Some(id) = &self.session_id else { return };
        let mut request = self.http.delete(&self.url).header("Mcp-Session-Id", id);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), request.send()).await;
    }
}

/// Reads SSE events until the response to `want`; the clock stops when that
/// event is complete. The rest of the stream is drained so the connection can
/// be reused.
async fn read_sse_response(response: &mut reqwest::Response, want: u64, sent: Instant) -> Result<HttpReply> {
    let mut parser = SseParser::default();
    let mut found: Option<HttpReply> = None;
    while let Some(chunk) = response.chunk().await? {
        let arrived = Instant::now();
        for data in parser.feed(&chunk) {
            if found.is_some() {
                continue;
            }
            if let Ok(msg) = serde_json::from_str::<Value>(&data)
                && response_id(&msg) == Some(want)
                && msg.get("method").is_none()
            {
                found = Some(HttpReply {
                    msg: Some(msg),
                    latency: arrived - sent,
                    bytes: data.len(),
                });
            }
        }
    }
    found.ok_or_else(|| anyhow!("the event stream ended without the response to request {want}"))
}

/// A server started by `--spawn-http`.
struct HttpServer {
    spec: ProcSpec,
    child: Child,
    stderr: StderrTail,
    url: String,
    startup: Duration,
    peak_kib: u64,
}

impl HttpServer {
    async fn spawn(spec: ProcSpec, timeout: Duration) -> Result<Self> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = spec.command();
        cmd.args(["--http", &addr]);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|e| spec.spawn_error(e))?;
        let tail = StderrTail::default();
        if let Some(stderr) = child.stderr.take() {
            tail.collect(stderr);
        }
        let mut server = Self {
            spec,
            child,
            stderr: tail,
            url: format!("http://{addr}/mcp"),
            startup: Duration::ZERO,
            peak_kib: 0,
        };
        server.wait_healthy(&format!("http://{addr}/healthz"), timeout).await?;
        server.startup = started.elapsed();
        Ok(server)
    }

    async fn wait_healthy(&mut self, health: &str, timeout: Duration) -> Result<()> {
        let probe = reqwest::Client::builder().no_proxy().build()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                bail!(
                    "{:?} exited ({}) before {health} answered; stderr tail:\n{}",
                    self.spec.command,
                    describe_exit(status),
                    self.stderr.text()
                );
            }
            if let Ok(response) = probe.get(health).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{health} did not answer within {timeout:?}; stderr tail:\n{}",
                    self.stderr.text()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn peak_mib(&mut self) -> Option<f64> {
        let hwm = status_kib(self.pid(), "VmHWM")?;
        self.peak_kib = self.peak_kib.max(hwm);
        Some(kib_to_mib(hwm))
    }

    fn stop(&mut self) -> String {
        send_sigterm(&self.child);
        stop_child(&mut self.child, Duration::from_secs(3))
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// What one client did during a measurement.
#[derive(Default)]
struct ClientRun {
    latencies: Vec<Duration>,
    bytes: usize,
    errors: u64,
    first_error: Option<String>,
}

async fn client_loop(mut session: HttpSession, params: Value, deadline: Instant) -> (HttpSession, Result<ClientRun>) {
    let mut run = ClientRun::default();
    while Instant::now() < deadline {
        match session.call(&params).await {
            Ok(reply) => {
                run.latencies.push(reply.latency);
                run.bytes += reply.bytes;
                if let Some(err) = reply.msg.as_ref().and_then(tool_error) {
                    run.errors += 1;
                    run.first_error.get_or_insert(err);
                }
            }
            Err(e) => return (session, Err(e)),
        }
    }
    (session, Ok(run))
}

#[derive(Debug, Serialize)]
struct HttpLevel {
    clients: usize,
    seconds: f64,
    calls: usize,
    errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
    calls_per_s: f64,
    latency_ms: Option<Summary>,
    response_bytes_mean: Option<f64>,
    server_cpu_ms_per_call: Option<f64>,
    rss_peak_mib: Option<f64>,
}

async fn warm_up_http(session: &mut HttpSession, params: &Value, n: usize, allow_errors: bool) -> Result<()> {
    for _ in 0..n.max(1) {
        let reply = session.call(params).await?;
        if let Some(err) = reply.msg.as_ref().and_then(tool_error)
            && !allow_errors
        {
            bail!("tools/call failed during warm-up: {err}\n(fix the arguments, or pass --allow-errors)");
        }
    }
    Ok(())
}

/// `clients` concurrent sessions calling in a loop for `--seconds`.
async fn http_level(
    opts: &Opts,
    url: &str,
    call: &Workload,
    clients: usize,
    server: Option<&mut HttpServer>,
) -> Result<HttpLevel> {
    let timeout = opts.response_timeout()?;
    let seconds = positive_seconds("--seconds", opts.seconds)?;
    let token = opts.token.as_deref().filter(|t| !t.is_empty());
    let params = call.params();
    let opening = (0..clients).map(|_| HttpSession::open(url, token, &opts.protocol_version, timeout));
    let mut sessions = futures::future::try_join_all(opening).await?;
    let warming = sessions
        .iter_mut()
        .map(|s| warm_up_http(s, &params, opts.warmup, opts.allow_errors));
    futures::future::try_join_all(warming).await?;

    let pid = server.as_ref().map(|s| s.pid());
    let can_reset = pid.is_some_and(reset_peak_rss);
    let cpu_before = pid.and_then(cpu_ticks);
    let start = Instant::now();
    let deadline = start + seconds;
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|s| tokio::spawn(client_loop(s, params.clone(), deadline)))
        .collect();
    let mut runs = Vec::new();
    let mut finished = Vec::new();
    for task in tasks {
        let (session, run) = task.await.context("a client task panicked")?;
        finished.push(session);
        runs.push(run);
    }
    let wall = start.elapsed();
    let cpu = cpu_before
        .zip(pid.and_then(cpu_ticks))
        .map(|(a, b)| b.saturating_sub(a));
    let peak = match server {
        Some(s) => s.peak_mib().filter(|_| can_reset),
        None => None,
    };
    futures::future::join_all(finished.into_iter().map(HttpSession::close)).await;
    let runs = runs.into_iter().collect::<Result<Vec<_>>>()?;

    let latencies: Vec<Duration> = runs.iter().flat_map(|r| r.latencies.iter().copied()).collect();
    let n = latencies.len();
    Ok(HttpLevel {
        clients,
        seconds: round_to(wall.as_secs_f64(), 3),
        calls: n,
        errors: runs.iter().map(|r| r.errors).sum(),
        first_error: runs.iter().find_map(|r| r.first_error.clone()),
        calls_per_s: round_to(n as f64 / wall.as_secs_f64(), 1),
        latency_ms: Summary::of(&latencies),
        response_bytes_mean: (n > 0).then(|| (runs.iter().map(|r| r.bytes).sum::<usize>() as f64 / n as f64).round()),
        server_cpu_ms_per_call: cpu.filter(|_| n > 0).map(|t| round_to(ticks_to_ms(t) / n as f64, 3)),
        rss_peak_mib: peak,
    })
}

fn http_main(opts: &Opts) -> Result<Report> {
    let workloads = parse_workloads(&opts.calls, &opts.calls_files)?;
    let [call] = workloads.as_slice() else {
        bail!(
            "HTTP mode needs exactly one workload (--call JSON), got {}",
            workloads.len()
        );
    };
    if opts.clients.is_empty() || opts.clients.contains(&0) {
        bail!("--clients needs positive counts, e.g. 1,8,32");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(http_bench(opts, call))
}

async fn http_bench(opts: &Opts, call: &Workload) -> Result<Report> {
    let timeout = opts.response_timeout()?;
    let mut server = match &opts.spawn_http {
        Some(cmd) => {
            let spec = ProcSpec::parse("http", cmd, &opts.env, opts.cwd.as_deref())?;
            opts.log(format!("[http] starting {cmd} ..."));
            Some(HttpServer::spawn(spec, timeout).await?)
        }
        None => None,
    };
    let url = match (&server, &opts.http_url) {
        (Some(s), _) => s.url.clone(),
        (None, Some(url)) => url.clone(),
        (None, None) => bail!("HTTP mode needs --http-url or --spawn-http"),
    };
    let idle = server
        .as_ref()
        .and_then(|s| status_kib(s.pid(), "VmRSS"))
        .map(kib_to_mib);
    let mut levels = Vec::new();
    for &clients in &opts.clients {
        opts.log(format!(
            "[http] {} x {clients} clients for {}s ...",
            call.label, opts.seconds
        ));
        levels.push(http_level(opts, &url, call, clients, server.as_mut()).await?);
    }
    let server_json = match server.as_mut() {
        Some(s) => {
            s.peak_mib();
            let exit = s.stop();
            json!({
                "command": s.spec.command,
                "startup_ms": round_to(s.startup.as_secs_f64() * 1000.0, 1),
                "rss_idle_mib": idle,
                "rss_peak_mib": kib_to_mib(s.peak_kib),
                "exit_after_sigterm": exit,
            })
        }
        None => Value::Null,
    };
    let errors = levels.iter().map(|l| l.errors).sum();
    let table = http_table(&url, call, &levels);
    let json = json!({
        "mode": "http",
        "url": url,
        "workload": call,
        "server": server_json,
        "levels": levels,
    });
    Ok(Report { json, table, errors })
}

fn http_table(url: &str, call: &Workload, levels: &[HttpLevel]) -> String {
    let headers: Vec<String> = [
        "clients",
        "calls",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "CPU ms/call",
        "peak RSS MiB",
        "errors",
    ]
    .map(String::from)
    .to_vec();
    let rows: Vec<Vec<String>> = levels
        .iter()
        .map(|l| {
            vec![
                l.clients.to_string(),
                l.calls.to_string(),
                fmt_value(Some(l.calls_per_s), 1),
                fmt_value(l.latency_ms.as_ref().map(|s| s.p50), 3),
                fmt_value(l.latency_ms.as_ref().map(|s| s.p99), 3),
                fmt_value(l.server_cpu_ms_per_call, 3),
                fmt_value(l.rss_peak_mib, 1),
                l.errors.to_string(),
            ]
        })
        .collect();
    format!(
        "{url}  tools/call {} {}\n{}",
        call.tool,
        call.arguments,
        render_table(&headers, &rows)
    )
}

// ---------------------------------------------------------------------------
// Exec mode: one process per call
// ---------------------------------------------------------------------------

fn exec_main(opts: &Opts) -> Result<Report> {
    let Some(command) = &opts.exec else {
        bail!("exec mode needs --exec CMD");
    };
    let spec = ProcSpec::parse("exec", command, &opts.env, opts.cwd.as_deref())?;
    let limit = opts.batch_limit()?;
    opts.log(format!(
        "[exec] {command}: {} warm-up + {} runs ...",
        opts.warmup, opts.n
    ));
    for _ in 0..opts.warmup {
        let output = spec
            .command()
            .stdin(Stdio::null())
            .output()
            .map_err(|e| spec.spawn_error(e))?;
        if !output.status.success() && !opts.allow_errors {
            let stderr = String::from_utf8_lossy(&output.stderr);
            bail!(
                "{command:?} exited {} during warm-up (pass --allow-errors to time it anyway); stderr: {}",
                describe_exit(output.status),
                truncate(stderr.trim(), 300)
            );
        }
    }
    let mut latencies = Vec::with_capacity(opts.n);
    let (mut bytes, mut errors, mut first_error) = (0usize, 0u64, None);
    let cpu_before = children_cpu();
    let start = Instant::now();
    for _ in 0..opts.n {
        let t0 = Instant::now();
        let output = spec
            .command()
            .stdin(Stdio::null())
            .output()
            .map_err(|e| spec.spawn_error(e))?;
        latencies.push(t0.elapsed());
        bytes += output.stdout.len();
        if !output.status.success() {
            errors += 1;
            first_error.get_or_insert_with(|| format!("exit {}", describe_exit(output.status)));
        }
        if start.elapsed() > limit {
            break;
        }
    }
    let cpu = children_cpu().saturating_sub(cpu_before);
    let n = latencies.len();
    let summary = Summary::of(&latencies);
    let cpu_ms = (n > 0).then(|| round_to(cpu.as_secs_f64() * 1000.0 / n as f64, 3));
    let busy: f64 = latencies.iter().map(Duration::as_secs_f64).sum();
    let runs_per_s = (busy > 0.0).then(|| round_to(n as f64 / busy, 1));
    let rows = vec![
        vec!["runs".to_owned(), n.to_string()],
        vec!["runs/s".to_owned(), fmt_value(runs_per_s, 1)],
        vec!["p50 ms".to_owned(), fmt_value(summary.as_ref().map(|s| s.p50), 3)],
        vec!["p99 ms".to_owned(), fmt_value(summary.as_ref().map(|s| s.p99), 3)],
        vec!["CPU ms/run (process tree)".to_owned(), fmt_value(cpu_ms, 3)],
        vec![
            "stdout KiB".to_owned(),
            fmt_value((n > 0).then(|| bytes as f64 / 1024.0 / n as f64), 1),
        ],
        vec!["non-zero exits".to_owned(), errors.to_string()],
    ];
    let table = format!(
        "exec = {command}\n{}",
        render_table(&["metric".to_owned(), "value".to_owned()], &rows)
    );
    let json = json!({
        "mode": "exec",
        "command": command,
        "cwd": opts.cwd,
        "runs": n,
        "errors": errors,
        "first_error": first_error,
        "latency_ms": summary,
        "runs_per_s": runs_per_s,
        "cpu_ms_per_run": cpu_ms,
        "stdout_bytes_mean": (n > 0).then(|| (bytes as f64 / n as f64).round()),
    });
    Ok(Report { json, table, errors })
}

// ---------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------

fn machine_info() -> Value {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let cpu_model = read("/proc/cpuinfo").and_then(|text| {
        text.lines().find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_owned())
        })
    });
    let loadavg = read("/proc/loadavg").and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok());
    json!({
        "cpus": std::thread::available_parallelism().map(usize::from).ok(),
        "cpu_model": cpu_model,
        "kernel": read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()),
        "time_utc": utc_now(),
        "loadavg_1m": loadavg,
    })
}

fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
