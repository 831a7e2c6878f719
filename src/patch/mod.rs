//! Patches: parse (unified diffs in their many forms, and Codex's envelope),
//! place (each hunk where its lines are, near the hinted line), and apply to
//! the workspace all-or-nothing.
//!
//! [`plan`] reads every target, places and applies every hunk in memory and
//! confines every path before anything is written; [`Plan::commit`] then
//! writes each new file to a temp file beside its target and, only when all
//! temp files exist, renames them into place and removes deleted files. A
//! failure while renaming puts back the files already replaced. So a patch
//! that fails on one file changes none.

pub mod diff;
pub mod parse;
pub mod place;

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Serialize;

pub use place::{Fuzz, Placement};

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
    /// Where each hunk landed, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hunks: Vec<Placement>,
}

/// A checked patch, ready to write.
#[derive(Debug, Default)]
pub struct Plan {
    pub files: Vec<FileSummary>,
    /// Final content per physical path: `Some` to write, `None` to delete.
    writes: BTreeMap<PathBuf, Option<String>>,
    /// Content before the patch, to put back on failure (`None`: did not exist).
    originals: BTreeMap<PathBuf, Option<Vec<u8>>>,
}

/// Every workspace path the patch names (old and new), resolved for writing,
/// without reading any file: what rules match the patch against.
pub fn touched_paths(workspace: &Workspace, text: &str) -> Result<Vec<String>, String> {
    let mut paths = Vec::new();
    for change in parse::parse(text)? {
        for p in change.old.iter().chain(change.new.iter()) {
            let shown = workspace
                .resolve(p, Access::Write)
                .map_err(|e| e.to_string())?
                .display();
            if !paths.contains(&shown) {
                paths.push(shown);
            }
        }
    }
    Ok(paths)
}

/// Checks the whole patch against the workspace and computes every result.
/// Every hunk of every file is tried, and every failure reported.
pub fn plan(workspace: &Workspace, text: &str) -> Result<Plan, String> {
    if text.len() > MAX_PATCH_BYTES {
        return Err(format!(
            "patch is {} bytes, over the {MAX_PATCH_BYTES}-byte limit; split it",
            text.len()
        ));
    }
    let changes = parse::parse(text)?;
    let hunks: usize = changes.iter().map(|c| c.hunks.len().max(1)).sum();
    let mut plan = Plan::new();
    let mut failures: Vec<String> = Vec::new();
    for change in changes {
        match plan.add(workspace, change) {
            Ok(summary) => plan.files.push(summary),
            Err(why) => failures.extend(why),
        }
    }
    if !failures.is_empty() {
        let n = failures.len();
        return Err(format!(
            "{}\n{} no file was changed. Read the file(s) again (filesystem_read with line_numbers: true) and make the failing hunk(s) match the current content{}",
            failures.join("\n"),
            if n == 1 {
                "1 problem;".to_owned()
            } else {
                format!("{n} problems;")
            },
            if hunks > n {
                "; the other hunks fit and need no change."
            } else {
                "."
            }
        ));
    }
    if plan.files.is_empty() {
        return Err("the patch changes nothing; no file was changed".into());
    }
    Ok(plan)
}

impl Plan {
    /// Plans one file's change; every problem with it, as messages.
    fn add(&mut self, workspace: &Workspace, mut change: parse::FilePatch) -> Result<FileSummary, Vec<String>> {
        let resolve = |p: &str| workspace.resolve(p, Access::Write).map_err(|e| vec![e.to_string()]);
        // `diff -u f.orig f`: one file, named twice; change the one that exists.
        if change.plain
            && let (Some(o), Some(n)) = (&change.old, &change.new)
            && o != n
        {
            let exists = |p: &str| {
                workspace
                    .resolve(p, Access::Write)
                    .is_ok_and(|w| w.physical().is_file())
            };
            let target = if exists(n) { n.clone() } else { o.clone() };
            change.old = Some(target.clone());
            change.new = Some(target);
        }
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
                self.current(o.physical(), &o.display())
                    .map_err(|e| vec![e])?
                    .ok_or_else(|| {
                        vec![format!(
                            "{} does not exist; the patch expects to change it",
                            o.display()
                        )]
                    })?,
            ),
            None => None,
        };
        if let Some(n) = &new
            && action != Action::Modify
            && self.current(n.physical(), &n.display()).map_err(|e| vec![e])?.is_some()
        {
            return Err(vec![format!(
                "{} already exists; the patch expects to create it (use `*** Update File:` or a `--- a/` header to change it)",
                n.display()
            )]);
        }
        let base_text = base.as_deref().unwrap_or("");
        let (result, placements) = if let Some(content) = &change.added {
            (content.clone(), Vec::new())
        } else if change.delete_any {
            (String::new(), Vec::new())
        } else if change.hunks.is_empty() && action == Action::Modify {
            return Err(vec![format!(
                "{shown}: the patch names the file but has no hunks (`@@` sections) for it; nothing to apply"
            )]);
        } else if change.hunks.is_empty() {
            (base_text.to_owned(), Vec::new())
        } else {
            place::apply(base_text, &change.hunks, &shown)?
        };
        if action == Action::Delete && !change.delete_any && !result.is_empty() {
            return Err(vec![format!(
                "{shown}: the patch deletes the file but does not remove all of its content; the file differs from what the patch expects"
            )]);
        }
        if action == Action::Modify && result == base_text {
            return Err(vec![format!(
                "{shown}: the patch leaves the file exactly as it is (its hunks add back what they remove); nothing to apply"
            )]);
        }
        let (additions, deletions) = match (&change.added, action) {
            (Some(content), _) => (content.lines().count(), 0),
            (None, Action::Delete) if change.delete_any => (0, base_text.lines().count()),
            _ => change
                .hunks
                .iter()
                .map(|h| h.changes())
                .fold((0, 0), |(a, d), (x, y)| (a + x, d + y)),
        };
        if let Some(o) = &old
            && action != Action::Modify
        {
            self.writes.insert(o.physical().to_path_buf(), None);
        }
        if let Some(n) = &new {
            self.writes.insert(n.physical().to_path_buf(), Some(result));
        }
        Ok(FileSummary {
            path: shown,
            action,
            old_path: (action == Action::Rename)
                .then(|| old.as_ref().map(|o| o.display()))
                .flatten(),
            additions,
            deletions,
            hunks: placements,
        })
    }
}

impl Plan {
    /// A plan that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The text of an existing workspace file, as this plan has it so far
    /// (for edits): (physical path, path as shown, text).
    pub fn text_of(&mut self, workspace: &Workspace, raw: &str) -> Result<(PathBuf, String, String), String> {
        let path = workspace.resolve(raw, Access::Write).map_err(|e| e.to_string())?;
        let shown = path.display();
        let text = self.current(path.physical(), &shown)?.ok_or_else(|| {
            format!("{shown} does not exist; edit_file changes existing files (create one with filesystem_write)")
        })?;
        Ok((path.physical().to_path_buf(), shown, text))
    }

    /// Plans `text` as the new content of `physical` (a file `text_of` read).
    pub fn set_text(&mut self, physical: PathBuf, text: String) {
        self.writes.insert(physical, Some(text));
    }

    /// The unified diff of every planned change, file by file, with paths
    /// relative to `root`.
    /// A rename is shown as one (`rename a -> b`, then what changed between
    /// the old file and the new one, if anything), not as the old file
    /// deleted and the new one added.
    pub fn diff(&self, root: &std::path::Path) -> String {
        let shown = |path: &std::path::Path| {
            path.strip_prefix(root)
                .map(crate::workspace::display_relative)
                .unwrap_or_else(|_| path.display().to_string())
        };
        let original = |path: &std::path::Path| {
            let bytes = self.originals.get(path).cloned().flatten().unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let renames: Vec<(&str, &str)> = self
            .files
            .iter()
            .filter(|f| f.action == Action::Rename)
            .filter_map(|f| Some((f.old_path.as_deref()?, f.path.as_str())))
            .collect();
        let mut out = String::new();
        for (path, new) in &self.writes {
            let name = shown(path);
            if new.is_none() && renames.iter().any(|(from, _)| *from == name) {
                continue; // shown with its new name
            }
            let new = new.as_deref().unwrap_or("");
            let Some((from, _)) = renames.iter().find(|(_, to)| *to == name) else {
                out.push_str(&diff::unified(&name, &original(path), new).0);
                continue;
            };
            // The old file's content, wherever the plan found it.
            let old = self
                .writes
                .keys()
                .find(|p| shown(p) == *from)
                .map(|p| original(p))
                .unwrap_or_default();
            let changes = diff::unified(&name, &old, new).0;
            out.push_str(&format!(
                "rename {from} -> {name}{}\n",
                if changes.is_empty() { " (content unchanged)" } else { "" }
            ));
            out.push_str(&changes);
        }
        out
    }

    /// The content of `path` as the plan has it so far (a file may appear twice).
    fn current(&mut self, path: &std::path::Path, shown: &str) -> Result<Option<String>, String> {
        if let Some(planned) = self.writes.get(path) {
            return Ok(planned.clone());
        }
        if path.is_dir() {
            return Err(format!("{shown} is a directory; give a file"));
        }
        let original = match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("cannot read {shown}: {e}")),
        };
        let text = match &original {
            Some(bytes) if looks_binary(bytes) => {
                return Err(format!(
                    "{shown} is a binary file; apply_patch and edit_file change text files only"
                ));
            }
            Some(bytes) => Some(String::from_utf8(bytes.clone()).map_err(|_| {
                format!("{shown} is not UTF-8 text; apply_patch and edit_file change UTF-8 text files only")
            })?),
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
