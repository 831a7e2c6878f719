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
        // A crash from here on is undone at the next start (src/journal.rs).
        let deletions = self
            .writes
            .iter()
            .filter(|(_, c)| c.is_none())
            .map(|(p, _)| p.as_path());
        let mut journal = match crate::journal::Journal::begin(&staged, deletions) {
            Ok(journal) => journal,
            Err(e) => {
                cleanup(&staged);
                return Err(format!("cannot write the commit's journal: {e}; no file was changed"));
            }
        };
        let mut done: Vec<PathBuf> = Vec::new();
        let mut failure = None;
        for (tmp, path) in &staged {
            journal.step();
            if let Err(e) = std::fs::rename(tmp, path) {
                failure = Some(format!("cannot replace {}: {e}", path.display()));
                break;
            }
            done.push(path.clone());
        }
        if failure.is_none() {
            for (path, content) in &self.writes {
                if content.is_some() {
                    continue;
                }
                journal.step();
                if let Err(e) = std::fs::remove_file(path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    failure = Some(format!("cannot delete {}: {e}", path.display()));
                    break;
                }
            }
        }
        let Some(failure) = failure else {
            journal.finish();
            return Ok(());
        };
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
        journal.finish();
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
    match apply_hunks(base, patch, false) {
        Ok(result) => Ok(result),
        Err(failed) => {
            let patch_has_cr = patch
                .hunks()
                .iter()
                .flat_map(|h| h.lines())
                .any(|l| matches!(l, Line::Context(s) | Line::Delete(s) | Line::Insert(s) if s.ends_with("\r\n")));
            if base.contains("\r\n")
                && !patch_has_cr
                && let Ok(result) = apply_hunks(base, patch, true)
            {
                return Ok(result);
            }
            Err(explain_failure(base, patch, shown, failed))
        }
    }
}

/// Applies the hunks in order; on failure returns the index of the hunk that
/// did not fit.
///
/// Each hunk is looked for where its header says, moved by the offset the
/// previous hunk was found at (as GNU patch and git do). A hunk with context
/// may be found nearby; a hunk without context (`diff -U0`) must fit exactly
/// there, since nothing else anchors it. An empty old range (`-3,0`) means
/// "after line 3". With `ignore_cr`, lines match whatever their ending
/// (`\n` or `\r\n`), untouched lines keep their bytes, and inserted lines take
/// the ending of the line they replace or follow.
fn apply_hunks(base: &str, patch: &Patch<'_, str>, ignore_cr: bool) -> Result<String, usize> {
    let lines: Vec<&str> = base.split_inclusive('\n').collect();
    let same = |want: &str, have: &str| {
        if ignore_cr {
            want.trim_end_matches(['\n', '\r']) == have.trim_end_matches(['\n', '\r'])
                && want.ends_with('\n') == have.ends_with('\n')
        } else {
            want == have
        }
    };
    let crlf_at = |i: usize| lines.get(i).or(lines.last()).is_some_and(|l| l.ends_with("\r\n"));
    let mut out = String::with_capacity(base.len() + 256);
    let mut next = 0usize;
    let mut offset: isize = 0;
    for (n, hunk) in patch.hunks().iter().enumerate() {
        let pre = pre_image(hunk);
        let has_context = hunk.lines().iter().any(|l| matches!(l, Line::Context(_)));
        let old = hunk.old_range();
        let header = if old.is_empty() {
            old.start()
        } else {
            old.start().saturating_sub(1)
        };
        let expected = (header as isize + offset).clamp(next as isize, lines.len() as isize) as usize;
        let fits = |at: usize| at + pre.len() <= lines.len() && pre.iter().zip(&lines[at..]).all(|(w, h)| same(w, h));
        let at = if has_context {
            (0..=lines.len())
                .flat_map(|d| [expected.checked_add(d), expected.checked_sub(d)])
                .flatten()
                .filter(|&at| at >= next && at <= lines.len())
                .find(|&at| fits(at))
        } else {
            Some(expected).filter(|&at| fits(at))
        };
        let Some(at) = at else { return Err(n) };
        offset = at as isize - header as isize;
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
                    Some(body) if ignore_cr && crlf && !body.ends_with('\r') => {
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
    Ok(out)
}

/// The lines a hunk expects to find: its context and deleted lines.
fn pre_image<'a>(hunk: &diffy::Hunk<'a, str>) -> Vec<&'a str> {
    hunk.lines()
        .iter()
        .filter_map(|l| match l {
            Line::Context(s) | Line::Delete(s) => Some(*s),
            Line::Insert(_) => None,
        })
        .collect()
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

fn explain_failure(base: &str, patch: &Patch<'_, str>, shown: &str, failed: usize) -> String {
    let n = failed + 1;
    let total = patch.hunks().len();
    let Some(hunk) = patch.hunks().get(failed) else {
        return format!("{shown}: the patch does not apply");
    };
    let expected = pre_image(hunk);
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
