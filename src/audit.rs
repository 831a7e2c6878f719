//! The audit log: one JSON line per decision, appended before the answer goes out.
//!
//! Each record is serialized whole and written with a single `write` on a file
//! opened for append, so concurrent writers never interleave and a crash leaves
//! at most a torn last line, which [`read_tail`] skips. Nothing secret is
//! written: arguments appear as a digest and a truncated preview.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::policy::Risk;

/// Where a call came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Door {
    Stdio,
    Http,
    Rest,
    Playbook,
}

/// What the gate decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allowed,
    Denied,
    ApprovalRequired,
    Disabled,
    BudgetExhausted,
    /// The request could not be served: an unknown tool or malformed arguments.
    Invalid,
}

/// How an approval was given (or refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalNote {
    /// `elicitation`, `input_required`, `approval_id`, `operator` or `policy`.
    pub via: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// One audit line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// RFC 3339 UTC time with milliseconds.
    pub ts: String,
    pub request_id: String,
    pub door: Door,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    pub tool: String,
    pub risk: Risk,
    pub args_digest: String,
    pub args_preview: String,
    pub decision: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalNote>,
    /// The rule or remembered answer that decided the call, e.g. `rules[3] shell_exec command "git push" forbid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// How long a yes was remembered: `session` or `always` (absent for once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remember: Option<String>,
    pub dry_run: bool,
    /// `ok` or `error`; absent when the tool did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
    /// Playbook run id and step index, for steps of a run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
}

/// Calls and errors of one tool, as counted from the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ToolCounts {
    pub calls: u64,
    pub errors: u64,
}

/// The append-only log.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
    /// Length of the file when opened: the history [`AuditLog::count_history`] reads.
    history_len: u64,
    counts: Mutex<std::collections::HashMap<String, ToolCounts>>,
}

impl AuditRecord {
    /// A record stamped now with a fresh request id; the rest is filled in by
    /// the caller.
    pub fn new(door: Door, tool: &str, risk: Risk, decision: Decision) -> Self {
        Self {
            ts: now_rfc3339(),
            request_id: crate::policy::approvals::new_id(),
            door,
            client: None,
            tool: tool.to_owned(),
            risk,
            args_digest: String::new(),
            args_preview: String::new(),
            decision,
            approval: None,
            rule: None,
            remember: None,
            dry_run: false,
            outcome: None,
            error: None,
            duration_ms: 0,
            run_id: None,
            step: None,
        }
    }

    /// Whether the record counts as a call of its tool (operators' answers do not).
    fn is_call(&self) -> bool {
        self.client.as_deref() != Some("operator")
    }

    fn is_failure(&self) -> bool {
        self.outcome.as_deref() == Some("error")
            || matches!(
                self.decision,
                Decision::Denied | Decision::Disabled | Decision::BudgetExhausted
            )
    }
}

impl AuditLog {
    /// Opens (creating directories and the file as needed) for appending.
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new().create(true).append(true).read(true).open(path)?;
        // A crash may have left a torn last line: end it so the next record starts clean.
        let len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))?;
            io::Read::read_exact(&mut file, &mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        let history_len = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            history_len,
            counts: Mutex::default(),
        })
    }

    fn count(&self, record: &AuditRecord) {
        if record.is_call() {
            let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            let entry = counts.entry(record.tool.clone()).or_default();
            entry.calls += 1;
            entry.errors += u64::from(record.is_failure());
        }
    }

    /// Adds the calls recorded before this process opened the log to the counts
    /// (run once, off the hot path: it reads the whole history).
    pub fn count_history(&self) -> io::Result<()> {
        let file = File::open(&self.path)?;
        let reader = BufReader::new(io::Read::take(file, self.history_len));
        for line in reader.lines().map_while(Result::ok) {
            if let Ok(record) = serde_json::from_str::<AuditRecord>(&line) {
                self.count(&record);
            }
        }
        Ok(())
    }

    /// Calls and errors per tool.
    pub fn counts(&self) -> std::collections::HashMap<String, ToolCounts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as a single write.
    pub fn append(&self, record: &AuditRecord) -> io::Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&line)?;
        drop(file);
        self.count(record);
        Ok(())
    }

    /// The newest `limit` records that pass `keep`, newest first.
    pub fn tail(&self, limit: usize, keep: impl Fn(&AuditRecord) -> bool) -> io::Result<Vec<AuditRecord>> {
        read_tail(&self.path, limit, keep)
    }
}

/// Reads the newest `limit` matching records of the log at `path`, newest first,
/// scanning back from the end in blocks. Lines that do not parse (a torn last
/// line after a crash) are skipped.
pub fn read_tail(path: &Path, limit: usize, keep: impl Fn(&AuditRecord) -> bool) -> io::Result<Vec<AuditRecord>> {
    const BLOCK: u64 = 256 * 1024;
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut out = Vec::new();
    let mut end = len;
    let mut carry: Vec<u8> = Vec::new();
    while end > 0 && out.len() < limit {
        let start = end.saturating_sub(BLOCK);
        file.seek(SeekFrom::Start(start))?;
        let mut block = vec![0u8; (end - start) as usize];
        io::Read::read_exact(&mut file, &mut block)?;
        block.extend_from_slice(&carry);
        // The first line of a block may be cut; keep it for the next round.
        let first_newline = if start > 0 {
            block.iter().position(|b| *b == b'\n')
        } else {
            None
        };
        let (head, body) = match first_newline {
            Some(i) => (block[..i].to_vec(), &block[i + 1..]),
            None if start > 0 => (block.clone(), &block[block.len()..]),
            None => (Vec::new(), &block[..]),
        };
        let mut lines: VecDeque<&[u8]> = body.split(|b| *b == b'\n').collect();
        while let Some(line) = lines.pop_back() {
            if out.len() >= limit {
                break;
            }
            if let Ok(record) = serde_json::from_slice::<AuditRecord>(line)
                && keep(&record)
            {
                out.push(record);
            }
        }
        carry = head;
        end = start;
    }
    if end == 0
        && out.len() < limit
        && let Ok(record) = serde_json::from_slice::<AuditRecord>(&carry)
        && keep(&record)
    {
        out.push(record);
    }
    Ok(out)
}

/// Reads every complete record (for counting); torn lines are skipped.
pub fn read_all(path: &Path) -> io::Result<Vec<AuditRecord>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect())
}

/// Now as RFC 3339 UTC with milliseconds, without a date-time crate.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_millis())
}

/// Formats seconds since the epoch (civil-from-days, proleptic Gregorian).
pub fn rfc3339(secs: i64, millis: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tool: &str, n: usize) -> AuditRecord {
        AuditRecord {
            ts: now_rfc3339(),
            request_id: format!("r{n}"),
            door: Door::Stdio,
            client: None,
            tool: tool.to_owned(),
            risk: Risk::Low,
            args_digest: "d".into(),
            args_preview: "{}".into(),
            decision: Decision::Allowed,
            approval: None,
            rule: None,
            remember: None,
            dry_run: false,
            outcome: Some("ok".into()),
            error: None,
            duration_ms: 1,
            run_id: None,
            step: None,
        }
    }

    #[test]
    fn formats_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_795_600_000, 999), "2026-11-25T09:46:40.999Z");
    }

    #[test]
    fn tail_reads_newest_first_across_blocks_and_skips_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        let big = "x".repeat(2_000);
        for n in 0..400 {
            let mut r = record(if n % 2 == 0 { "a" } else { "b" }, n);
            r.args_preview = big.clone();
            log.append(&r).unwrap();
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"ts\":\"torn")
            .unwrap();
        let log = AuditLog::open(&path).unwrap();
        log.append(&record("a", 400)).unwrap();
        let tail = log.tail(5, |_| true).unwrap();
        let ids: Vec<_> = tail.iter().map(|r| r.request_id.as_str()).collect();
        assert_eq!(ids, ["r400", "r399", "r398", "r397", "r396"]);
        let only_a = log.tail(1_000, |r| r.tool == "a").unwrap();
        assert_eq!(only_a.len(), 201);
        assert_eq!(only_a.last().unwrap().request_id, "r0");
        assert_eq!(read_all(&path).unwrap().len(), 401);
    }
}
