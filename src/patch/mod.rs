//! Unified diffs: parse (git-style or plain, many files), plan against the
//! workspace, and apply all-or-nothing.
//!
//! [`plan`] reads every target, applies every hunk in memory and confines
//! every path before anything is written; [`commit`] then writes each new file
//! to a temp file beside its target and, only when all temp files exist, renames
//! them into place and removes deleted files. A failure while renaming puts back
//! the files already replaced. So a patch that fails on one file changes none.

use std::collections::BTreeMap;
use std::path::PathBuf;

use diffy::patch_set::{FileOperation, ParseOptions, PatchSet};
use diffy::{Line, Patch};
use schemars::JsonSchema;
use serde::Serialize;

use crate::fsutil::looks_binary;
use crate::workspace::{Access, Workspace};

/// Largest patch accepted.
pub const MAX_PATCH_BYTES: usize = 16 * 1024 * 1024;

/// What a patch does to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Modify,
    Delete,
    Rename,
}

/// One file of a planned patch, as reported to callers.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FileSummary {
    /// Path relative to the workspace root (the new path for renames).
    pub path: String,
    pub action: Action,
    /// The old path, for renames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    /// Lines added.
    pub additions: usize,
    /// Lines removed.
    pub deletions: usize,
}

/// A checked patch, ready to write.
#[derive(Debug)]
pub struct Plan {
    pub files: Vec<FileSummary>,
    /// Final content per physical path: `Some` to write, `None` to delete.
    writes: BTreeMap<PathBuf, Option<String>>,
    /// Content before the patch, to put back on failure (`None`: did not exist).
    originals: BTreeMap<PathBuf, Option<Vec<u8>>>,
}

/// A file the patch names, with its hunks, before it meets the disk.
struct FileChange<'a> {
    old: Option<String>,
    new: Option<String>,
    patch: Patch<'a, str>,
}

/// Parses `text` into per-file changes with workspace-relative paths.
fn parse(text: &str) -> Result<Vec<FileChange<'_>>, String> {
    const WANTED: &str =
        "give a unified diff: `--- a/file` and `+++ b/file` headers followed by `@@ -l,n +l,n @@` hunks";
    if text.trim().is_empty() {
        return Err(format!("patch is empty; {WANTED}"));
    }
    let git_style = text.starts_with("diff --git ") || text.contains("\ndiff --git ");
    let opts = if git_style {
        ParseOptions::gitdiff()
    } else {
        ParseOptions::unidiff()
    };
    let mut changes = Vec::new();
    for item in PatchSet::parse(text, opts) {
        let file = item.map_err(|e| {
            if e.to_string().contains("no valid patches") {
                format!("the text holds no patch; {WANTED}")
            } else {
                format!("patch does not parse: {e}")
            }
        })?;
        // Paths from `rename from`/`rename to` carry no `a/`/`b/` prefix.
        let is_rename = matches!(
            file.operation(),
            FileOperation::Rename { .. } | FileOperation::Copy { .. }
        );
        let strip = usize::from(!is_rename && (git_style || has_ab_prefixes(file.operation())));
        let op = file.operation().strip_prefix(strip);
        let (old, new) = match &op {
            FileOperation::Create(p) => (None, Some(p.to_string())),
            FileOperation::Delete(p) => (Some(p.to_string()), None),
            FileOperation::Modify { original, modified } => (Some(original.to_string()), Some(modified.to_string())),
            FileOperation::Rename { from, to } => (Some(from.to_string()), Some(to.to_string())),
            FileOperation::Copy { .. } => {
                return Err("copy patches are not supported; create the new file instead".into());
            }
        };
        let patch = match file.into_patch() {
            diffy::patch_set::PatchKind::Text(p) => p,
            diffy::patch_set::PatchKind::Binary(_) => {
                return Err(format!(
                    "{} has a binary patch; apply_patch changes text files only",
                    new.or(old).unwrap_or_default()
                ));
            }
        };
        changes.push(FileChange { old, new, patch });
    }
    if changes.is_empty() {
        return Err(format!("the text holds no patch; {WANTED}"));
    }
    Ok(changes)
}

fn has_ab_prefixes(op: &FileOperation<'_, str>) -> bool {
    match op {
        FileOperation::Modify { original, modified } => original.starts_with("a/") && modified.starts_with("b/"),
        FileOperation::Rename { from, to } => from.starts_with("a/") && to.starts_with("b/"),
        FileOperation::Create(p) => p.starts_with("b/"),
        FileOperation::Delete(p) => p.starts_with("a/"),
        FileOperation::Copy { .. } => false,
    }
}

/// Checks the whole patch against the workspace and computes every result.
pub fn plan(workspace: &Workspace, text: &str) -> Result<Plan, String> {
    if text.len() > MAX_PATCH_BYTES {
        return Err(format!(
            "patch is {} bytes, over the {MAX_PATCH_BYTES}-byte limit; split it",
            text.len()
        ));
    }
    // A patch pasted into a JSON string often loses its last newline.
    let owned;
    let text = if text.ends_with('\n') {
        text
    } else {
        owned = format!("{text}\n");
        owned.as_str()
    };
    let changes = parse(text)?;
    let mut plan = Plan {
        files: Vec::new(),
        writes: BTreeMap::new(),
        originals: BTreeMap::new(),
    };
    for change in changes {
        let (additions, deletions) = count(&change.patch);
        let resolve = |p: &str| workspace.resolve(p, Access::Write).map_err(|e| e.to_string());
        let old = change.old.as_deref().map(resolve).transpose()?;
        let new = change.new.as_deref().map(resolve).transpose()?;
        let shown = new.as_ref().or(old.as_ref()).map(|p| p.display()).unwrap_or_default();
        let action = match (&old, &new) {
            (None, Some(_)) => Action::Create,
            (Some(_), None) => Action::Delete,
            (Some(o), Some(n)) if o.physical() != n.physical() => Action::Rename,
            _ => Action::Modify,
        };
        let base = match &old {
            Some(o) => Some(
                plan.current(o.physical(), &o.display())?
                    .ok_or_else(|| format!("{} does not exist; the patch expects to change it", o.display()))?,
            ),
            None => None,
        };
        if let Some(n) = &new
            && action != Action::Modify
            && plan.current(n.physical(), &n.display())?.is_some()
        {
            return Err(format!(
                "{} already exists; the patch expects to create it",
                n.display()
            ));
        }
        let result = apply(base.as_deref().unwrap_or(""), &change.patch, &shown)?;
        if action == Action::Delete && !result.is_empty() {
            return Err(format!(
                "{shown}: the patch deletes the file but does not remove all of its content; the file differs from what the patch expects"
            ));
        }
        if let Some(o) = &old
            && action != Action::Modify
        {
            plan.writes.insert(o.physical().to_path_buf(), None);
        }
        if let Some(n) = &new {
            plan.writes.insert(n.physical().to_path_buf(), Some(result));
        }
        plan.files.push(FileSummary {
            path: shown,
            action,
            old_path: (action == Action::Rename)
                .then(|| old.as_ref().map(|o| o.display()))
                .flatten(),
            additions,
            deletions,
        });
    }
    Ok(plan)
}

impl Plan {
    /// The content of `path` as the plan has it so far (a file may appear twice).
    fn current(&mut self, path: &std::path::Path, shown: &str) -> Result<Option<String>, String> {
        if let Some(planned) = self.writes.get(path) {
            return Ok(planned.clone());
        }
        if path.is_dir() {
            return Err(format!("{shown} is a directory; a patch changes files"));
        }
        let original = match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("cannot read {shown}: {e}")),
        };
        let text = match &original {
            Some(bytes) if looks_binary(bytes) => {
                return Err(format!("{shown} is a binary file; apply_patch changes text files only"));
            }
            Some(bytes) => Some(
                String::from_utf8(bytes.clone())
                    .map_err(|_| format!("{shown} is not UTF-8 text; apply_patch changes UTF-8 text files only"))?,
            ),
            None => None,
        };
        self.originals.insert(path.to_path_buf(), original);
        Ok(text)
    }

    /// Writes the plan: temp files first, then renames. All or nothing.
    /// `progress` hears (files staged, files in all) as temp files are written.
    pub fn commit(self, progress: impl Fn(usize, usize)) -> Result<(), String> {
        let total = self.writes.len();
        let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
        let cleanup = |staged: &[(PathBuf, PathBuf)]| {
            for (tmp, _) in staged {
                let _ = std::fs::remove_file(tmp);
            }
        };
        for (path, content) in &self.writes {
            let Some(content) = content else { continue };
            match crate::fsutil::stage_file(path, content.as_bytes()) {
                Ok(tmp) => {
                    staged.push((tmp, path.clone()));
                    progress(staged.len(), total);
                }
                Err(e) => {
                    cleanup(&staged);
                    return Err(format!("cannot write {}: {e}; no file was changed", path.display()));
                }
            }
        }
        let mut done: Vec<PathBuf> = Vec::new();
        let mut failure = None;
        for (tmp, path) in &staged {
            if let Err(e) = std::fs::rename(tmp, path) {
                failure = Some(format!("cannot replace {}: {e}", path.display()));
                break;
            }
            done.push(path.clone());
        }
        if failure.is_none() {
            for (path, content) in &self.writes {
                if content.is_none()
                    && let Err(e) = std::fs::remove_file(path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    failure = Some(format!("cannot delete {}: {e}", path.display()));
                    break;
                }
            }
        }
        let Some(failure) = failure else { return Ok(()) };
        cleanup(&staged[done.len()..]);
        // Put back everything already changed.
        for (path, original) in &self.originals {
            match original {
                Some(bytes) => {
                    let _ = crate::fsutil::write_atomic(path, bytes, true);
                }
                None => {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        Err(format!("{failure}; the files already changed were restored"))
    }
}

fn count(patch: &Patch<'_, str>) -> (usize, usize) {
    let mut adds = 0;
    let mut dels = 0;
    for hunk in patch.hunks() {
        for line in hunk.lines() {
            match line {
                Line::Insert(_) => adds += 1,
                Line::Delete(_) => dels += 1,
                Line::Context(_) => {}
            }
        }
    }
    (adds, dels)
}

/// Applies one file's hunks, falling back to line-ending conversion when the
/// file uses CRLF and the patch does not. Failing hunks are explained.
fn apply(base: &str, patch: &Patch<'_, str>, shown: &str) -> Result<String, String> {
    match diffy::apply(base, patch) {
        Ok(result) => Ok(result),
        Err(err) => {
            let patch_has_cr = patch
                .hunks()
                .iter()
                .flat_map(|h| h.lines())
                .any(|l| matches!(l, Line::Context(s) | Line::Delete(s) | Line::Insert(s) if s.ends_with("\r\n")));
            if base.contains("\r\n")
                && !patch_has_cr
                && let Some(result) = apply_ignoring_cr(base, patch)
            {
                return Ok(result);
            }
            Err(explain_failure(base, patch, shown, &err.to_string()))
        }
    }
}

/// Applies an LF patch to a file with CRLF lines: lines match whatever their
/// ending, untouched and context lines keep their bytes, and inserted lines
/// take the ending of the line they replace or follow.
fn apply_ignoring_cr(base: &str, patch: &Patch<'_, str>) -> Option<String> {
    let strip = |l: &str| l.trim_end_matches(['\n', '\r']).to_owned();
    let lines: Vec<&str> = base.split_inclusive('\n').collect();
    let crlf_at = |i: usize| lines.get(i).or(lines.last()).is_some_and(|l| l.ends_with("\r\n"));
    let mut out = String::with_capacity(base.len() + 256);
    let mut next = 0usize;
    for hunk in patch.hunks() {
        let pre: Vec<String> = hunk
            .lines()
            .iter()
            .filter_map(|l| match l {
                Line::Context(s) | Line::Delete(s) => Some(strip(s)),
                Line::Insert(_) => None,
            })
            .collect();
        let fits = |at: usize| {
            at + pre.len() <= lines.len() && pre.iter().zip(&lines[at..]).all(|(want, have)| *want == strip(have))
        };
        let hint = hunk.old_range().start().saturating_sub(1).max(next);
        let at = (0..lines.len().saturating_sub(next) + 1)
            .flat_map(|d| [hint.checked_add(d), hint.checked_sub(d)])
            .flatten()
            .filter(|&at| at >= next && at <= lines.len())
            .find(|&at| fits(at))?;
        lines[next..at].iter().for_each(|l| out.push_str(l));
        let mut cursor = at;
        let mut crlf = crlf_at(at);
        for line in hunk.lines() {
            match line {
                Line::Context(_) => {
                    crlf = crlf_at(cursor);
                    out.push_str(lines[cursor]);
                    cursor += 1;
                }
                Line::Delete(_) => {
                    crlf = crlf_at(cursor);
                    cursor += 1;
                }
                Line::Insert(text) => match text.strip_suffix('\n') {
                    Some(body) if crlf => {
                        out.push_str(body);
                        out.push_str("\r\n");
                    }
                    _ => out.push_str(text),
                },
            }
        }
        next = cursor;
    }
    lines[next..].iter().for_each(|l| out.push_str(l));
    Some(out)
}

/// A line with its ending made visible: `\r` shown, a missing newline noted.
fn visible(line: &str) -> String {
    let body = line.trim_end_matches(['\n', '\r']);
    let ending = &line[body.len()..];
    match ending {
        "\n" => body.to_owned(),
        "\r\n" => format!("{body}\\r"),
        _ => format!("{body}   (no newline at end of file)"),
    }
}

fn explain_failure(base: &str, patch: &Patch<'_, str>, shown: &str, err: &str) -> String {
    let n: usize = err.rsplit('#').next().and_then(|s| s.trim().parse().ok()).unwrap_or(1);
    let total = patch.hunks().len();
    let Some(hunk) = patch.hunks().get(n.saturating_sub(1)) else {
        return format!("{shown}: the patch does not apply ({err})");
    };
    let expected: Vec<&str> = hunk
        .lines()
        .iter()
        .filter_map(|l| match l {
            Line::Context(s) | Line::Delete(s) => Some(*s),
            Line::Insert(_) => None,
        })
        .collect();
    let start = hunk.old_range().start().saturating_sub(1);
    let found: Vec<&str> = base
        .split_inclusive('\n')
        .skip(start)
        .take(expected.len().max(1))
        .collect();
    let show = |lines: &[&str]| -> String { lines.iter().take(12).map(|l| format!("  | {}\n", visible(l))).collect() };
    format!(
        "{shown}: hunk {n} of {total} (@@ -{} +{} @@) does not apply; no file was changed.\nThe hunk expects these lines near line {}:\n{}but the file has:\n{}Read the file again and make the patch against its current content.",
        hunk.old_range(),
        hunk.new_range(),
        start + 1,
        show(&expected),
        if found.is_empty() {
            "  (end of file)\n".to_owned()
        } else {
            show(&found)
        },
    )
}
