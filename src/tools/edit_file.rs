//! `edit_file`: exact search-and-replace edits, all or nothing.
//!
//! Each edit names text that must occur in the file exactly once (or every
//! occurrence, with `replace_all`) and the text to put in its place. Edits
//! apply in order, each to the result of the ones before, in memory; the
//! files are then written through the same all-or-nothing commit as
//! `apply_patch`. A file with CRLF line endings is matched by text written
//! with LF and keeps its CRLF. A miss shows the closest lines of the file.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Annotations, Tool, ToolContext, ToolError};
use crate::patch::Plan;
use crate::policy::Risk;

pub struct EditFile;

/// Largest diff carried in the answer.
const MAX_DIFF_BYTES: usize = 64 * 1024;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// File to edit, relative to the workspace root. Required unless every entry of `edits` names its own `path`.
    #[serde(default)]
    pub path: Option<String>,
    /// The exact text to replace, including its whitespace and indentation, as the file has it. It must occur exactly once unless `replace_all` is true; include surrounding lines to make it unique. Use with `new_string`, or use `edits`.
    #[serde(default)]
    pub old_string: Option<String>,
    /// The text that replaces `old_string` (may be empty to delete it).
    #[serde(default)]
    pub new_string: Option<String>,
    /// Replace every occurrence of `old_string` instead of requiring exactly one. Default false.
    #[serde(default)]
    pub replace_all: bool,
    /// Several edits, applied in order (each sees the result of the ones before), all or nothing. Instead of `old_string`/`new_string`.
    #[serde(default)]
    pub edits: Option<Vec<Edit>>,
    /// Check the edits and return the diff without changing any file. Default false.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    /// File of this edit; defaults to the call's `path`.
    #[serde(default)]
    pub path: Option<String>,
    /// The exact text to replace (see the top-level `old_string`).
    pub old_string: String,
    /// The replacement text.
    pub new_string: String,
    /// Replace every occurrence. Default false.
    #[serde(default)]
    pub replace_all: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct EditedFile {
    /// Path relative to the workspace root.
    pub path: String,
    /// How many places were replaced.
    pub replacements: usize,
    pub additions: usize,
    pub deletions: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// True when the files were changed; false for a dry run.
    pub applied: bool,
    pub dry_run: bool,
    pub files: Vec<EditedFile>,
    pub additions: usize,
    pub deletions: usize,
    /// Unified diff of the change (cut at 64 KiB).
    pub diff: String,
}

impl Params {
    /// The edits in order, each with its file.
    fn edits(&self) -> Result<Vec<(String, Edit)>, String> {
        let single = self.old_string.is_some() || self.new_string.is_some();
        let list = match (&self.edits, single) {
            (Some(_), true) => {
                return Err("give either `old_string` and `new_string`, or `edits`, not both".into());
            }
            (Some(edits), false) if edits.is_empty() => return Err("`edits` is empty; give at least one edit".into()),
            (Some(edits), false) => edits.clone(),
            (None, true) => {
                let (Some(old), Some(new)) = (&self.old_string, &self.new_string) else {
                    return Err(
                        "`old_string` and `new_string` go together; give both (an empty `new_string` deletes)".into(),
                    );
                };
                vec![Edit {
                    path: None,
                    old_string: old.clone(),
                    new_string: new.clone(),
                    replace_all: self.replace_all,
                }]
            }
            (None, false) => {
                return Err(
                    "nothing to edit: give `old_string` and `new_string`, or `edits: [{old_string, new_string}, …]`"
                        .into(),
                );
            }
        };
        list.into_iter()
            .enumerate()
            .map(|(i, e)| {
                let path =
                    e.path.clone().or_else(|| self.path.clone()).ok_or_else(|| {
                        format!("edit {} has no file: give `path` (for the call or for the edit)", i + 1)
                    })?;
                Ok((path, e))
            })
            .collect()
    }
}

/// `text` without one final line ending.
fn trim_eol(text: &str) -> &str {
    text.strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text)
}

/// Where a line starts in `text`: 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Replaces `edit` in `text`; `label` names the edit for messages.
pub fn apply_edit(text: &str, edit: &Edit, shown: &str, label: &str) -> Result<(String, usize), String> {
    if edit.old_string.is_empty() {
        return Err(format!(
            "{label} ({shown}): old_string is empty; give the exact text to replace (to add text, include a nearby line in old_string and repeat it in new_string; to create a file use filesystem_write)"
        ));
    }
    if edit.old_string == edit.new_string {
        return Err(format!(
            "{label} ({shown}): old_string and new_string are the same, so the edit changes nothing"
        ));
    }
    // A CRLF file keeps CRLF: text written with LF is matched and written as CRLF.
    let crlf_file = text.split_inclusive('\n').next().is_some_and(|l| l.ends_with("\r\n"));
    let to_crlf = |t: &str| t.replace("\r\n", "\n").replace('\n', "\r\n");
    let (old_owned, new_owned);
    let (mut old, mut new) = (edit.old_string.as_str(), edit.new_string.as_str());
    if crlf_file {
        new_owned = to_crlf(new);
        new = &new_owned;
        if !text.contains(old) {
            old_owned = to_crlf(old);
            old = &old_owned;
        }
    }
    // The file's last line has no newline; old_string ends with one there.
    if !text.contains(old) && !text.ends_with('\n') {
        let (o, n) = (trim_eol(old), trim_eol(new));
        if o.len() < old.len() && text.ends_with(o) && text.matches(o).count() == 1 {
            let at = text.len() - o.len();
            return Ok((format!("{}{n}", &text[..at]), 1));
        }
    }
    let found: Vec<usize> = text.match_indices(old).map(|(at, _)| at).collect();
    match found.len() {
        0 => Err(not_found(text, &edit.old_string, shown, label)),
        1 => Ok((text.replacen(old, new, 1), 1)),
        n if edit.replace_all => Ok((text.replace(old, new), n)),
        n => {
            let lines: Vec<String> = found.iter().take(10).map(|&at| line_of(text, at).to_string()).collect();
            Err(format!(
                "{label} ({shown}): old_string occurs {n} times (at lines {}{}); it must occur once. Include more of the surrounding lines in old_string to pick one, or pass replace_all: true to replace all {n}",
                lines.join(", "),
                if n > 10 { ", …" } else { "" }
            ))
        }
    }
}

/// The refusal for text that is not in the file, with the closest lines.
fn not_found(text: &str, wanted: &str, shown: &str, label: &str) -> String {
    let file: Vec<&str> = text.lines().collect();
    let want: Vec<&str> = wanted.lines().collect();
    let mut msg = format!("{label} ({shown}): old_string is not in the file.");
    if file.is_empty() {
        msg.push_str(" The file is empty.");
        return msg;
    }
    let width = want.len().clamp(1, file.len());
    // Alike when equal with runs of whitespace (tabs, spaces) collapsed.
    let trimmed_eq = |a: &str, b: &str| a.split_whitespace().eq(b.split_whitespace());
    let score = |at: usize| {
        (0..width)
            .filter(|&i| want.get(i).is_some_and(|w| trimmed_eq(w, file[at + i])))
            .count()
    };
    let mut best = (0usize, 0usize);
    for at in 0..=file.len() - width {
        let s = score(at);
        if s > best.0 {
            best = (s, at);
        }
    }
    let (matched, at) = if best.0 > 0 {
        best
    } else {
        // No whole line in common: the line most like old_string's first line.
        let first = want.iter().find(|l| !l.trim().is_empty()).copied().unwrap_or("");
        let at = (0..file.len())
            .max_by_key(|&i| (similarity(first.trim(), file[i].trim()), std::cmp::Reverse(i)))
            .unwrap_or(0);
        (0, at)
    };
    if matched == width && width == want.len() {
        let tabs = (0..width).any(|i| file[at + i].contains('\t') && !want[i].contains('\t'));
        msg.push_str(&format!(
            " Lines {}-{} hold the same text with different whitespace or indentation{}; '!' marks the lines that differ; copy them exactly as shown (after the '| '):\n",
            at + 1,
            at + width,
            if tabs {
                " (the file has tab characters where old_string has spaces)"
            } else {
                ""
            }
        ));
    } else if matched > 0 {
        msg.push_str(&format!(
            " The closest lines are {}-{} ({matched} of {} lines alike; '!' marks the ones that differ):\n",
            at + 1,
            at + width,
            want.len()
        ));
    } else {
        msg.push_str(&format!(
            " No line of it is in the file; the line most like its first line is {}:\n",
            at + 1
        ));
    }
    let from = at.saturating_sub(if matched > 0 { 0 } else { 2 });
    let to = (at + width.max(1) + if matched > 0 { 0 } else { 2 })
        .min(file.len())
        .min(from + 20);
    for (i, line) in file.iter().enumerate().take(to).skip(from) {
        let differs = matched > 0 && want.get(i - at).is_some_and(|w| *w != *line);
        msg.push_str(&format!("{:>6} {}| {line}\n", i + 1, if differs { '!' } else { ' ' }));
    }
    msg.push_str("Read the file (filesystem_read with line_numbers: true) and copy old_string from it exactly.");
    msg
}

/// Shared character pairs, as a rough likeness of two lines (0 to 1000).
fn similarity(a: &str, b: &str) -> usize {
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    let pairs = |s: &str| -> Vec<(char, char)> { s.chars().zip(s.chars().skip(1)).collect() };
    let (pa, mut pb) = (pairs(a), pairs(b));
    if pa.is_empty() || pb.is_empty() {
        return usize::from(a == b) * 1000;
    }
    let total = pa.len() + pb.len();
    let mut shared = 0;
    for p in &pa {
        if let Some(i) = pb.iter().position(|q| q == p) {
            pb.swap_remove(i);
            shared += 1;
        }
    }
    shared * 2000 / total
}

/// Plans every edit: the plan, each file's counts, and the unified diff.
/// The error lists every edit that failed.
fn plan(ctx: &ToolContext, params: &Params) -> Result<(Plan, Vec<EditedFile>, String), ToolError> {
    let edits = params.edits().map_err(ToolError::new)?;
    let mut plan = Plan::new();
    let mut files: Vec<EditedFile> = Vec::new();
    let mut failures = Vec::new();
    let mut texts: Vec<(std::path::PathBuf, String, String, String)> = Vec::new();
    let many = edits.len() > 1;
    for (i, (path, edit)) in edits.iter().enumerate() {
        let label = if many {
            format!("edit {}", i + 1)
        } else {
            "the edit".to_owned()
        };
        let slot = match ctx.workspace.resolve(path, crate::workspace::Access::Write) {
            Ok(p) => texts.iter().position(|t| t.0 == p.physical()),
            Err(e) => {
                failures.push(format!("{label}: {e}"));
                continue;
            }
        };
        let slot = match slot {
            Some(s) => s,
            None => match plan.text_of(&ctx.workspace, path) {
                Ok((physical, shown, text)) => {
                    texts.push((physical, shown, text.clone(), text));
                    files.push(EditedFile {
                        path: texts[texts.len() - 1].1.clone(),
                        replacements: 0,
                        additions: 0,
                        deletions: 0,
                    });
                    texts.len() - 1
                }
                Err(e) => {
                    failures.push(format!("{label}: {e}"));
                    continue;
                }
            },
        };
        let (_, shown, _, current) = &texts[slot];
        match apply_edit(current, edit, shown, &label) {
            Ok((next, n)) => {
                texts[slot].3 = next;
                files[slot].replacements += n;
            }
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        let n = failures.len();
        return Err(ToolError::new(format!(
            "{}\n{} no file was changed.",
            failures.join("\n"),
            if n == 1 {
                "1 edit failed;".to_owned()
            } else {
                format!("{n} edits failed;")
            }
        )));
    }
    let mut diff = String::new();
    for (slot, (physical, shown, original, text)) in texts.into_iter().enumerate() {
        if original == text {
            return Err(ToolError::new(format!(
                "{shown}: the edits leave the file exactly as it was (they undo each other); no file was changed"
            )));
        }
        let (file_diff, adds, dels) = crate::patch::diff::unified(&shown, &original, &text);
        diff.push_str(&file_diff);
        files[slot].additions = adds;
        files[slot].deletions = dels;
        plan.set_text(physical, text);
    }
    Ok((plan, files, diff))
}

impl Tool for EditFile {
    const NAME: &'static str = "edit_file";
    const TITLE: &'static str = "Edit a file (search and replace)";
    const DESCRIPTION: &'static str = "Replace exact text in a file: the preferred way to change existing files. Give `path`, `old_string` (copied exactly from the file, with its indentation; it must occur once, so include a few surrounding lines when needed) and `new_string`; or `edits: [{old_string, new_string, replace_all?, path?}, …]` applied in order, all or nothing, across one or several files. `replace_all: true` replaces every occurrence. CRLF files can be matched with LF text and keep their CRLF. The answer carries the unified diff. A miss names the closest lines of the file with their numbers; text found several times is refused with the lines where it occurs. `dry_run: true` returns the diff and changes nothing. Use filesystem_write to create a file and apply_patch for large multi-hunk changes.";
    const RISK: Risk = Risk::Medium;
    const ANNOTATIONS: Annotations = Annotations {
        read_only: false,
        destructive: true,
        idempotent: false,
        open_world: false,
    };
    type Params = Params;
    type Output = Output;

    fn is_dry_run(params: &Params) -> bool {
        params.dry_run
    }

    fn check(&self, ctx: &ToolContext, params: &Params) -> Result<(), ToolError> {
        plan(ctx, params).map(|_| ())
    }

    /// Every file the edits touch, resolved inside the workspace.
    fn subject(&self, ctx: &ToolContext, params: &Params) -> crate::policy::Subject {
        let paths = params.edits().and_then(|edits| {
            let mut paths: Vec<String> = Vec::new();
            for (path, _) in &edits {
                let shown = ctx
                    .workspace
                    .resolve(path, crate::workspace::Access::Write)
                    .map_err(|e| e.to_string())?
                    .display();
                if !paths.contains(&shown) {
                    paths.push(shown);
                }
            }
            Ok(paths)
        });
        crate::policy::Subject::paths(paths)
    }

    fn describe(&self, ctx: &ToolContext, params: &Params) -> String {
        match plan(ctx, params) {
            Ok((_, _, diff)) => format!("edit with this diff:\n{}", crate::patch::diff::cut(diff, 8 * 1024)),
            Err(e) => format!("(the edit cannot apply: {e})"),
        }
    }

    async fn run(&self, ctx: &ToolContext, params: Params) -> Result<Output, ToolError> {
        let ctx = ctx.clone();
        tokio::task::spawn_blocking(move || {
            let (plan, files, diff) = plan(&ctx, &params)?;
            if !params.dry_run {
                plan.commit(|_, _| {}).map_err(ToolError::new)?;
            }
            let diff = crate::patch::diff::cut(diff, MAX_DIFF_BYTES);
            Ok(Output {
                applied: !params.dry_run,
                dry_run: params.dry_run,
                additions: files.iter().map(|f| f.additions).sum(),
                deletions: files.iter().map(|f| f.deletions).sum(),
                files,
                diff,
            })
        })
        .await
        .map_err(|e| ToolError::new(format!("internal error: {e}")))?
    }

    fn render(output: Output) -> String {
        let mut text = if output.dry_run {
            "Dry run: the edits apply; nothing was changed.\n".to_owned()
        } else {
            "Edited.\n".to_owned()
        };
        for f in &output.files {
            text.push_str(&format!(
                "{} {}: {} replacement{} (+{} -{})\n",
                if output.dry_run { "would change" } else { "changed" },
                f.path,
                f.replacements,
                if f.replacements == 1 { "" } else { "s" },
                f.additions,
                f.deletions
            ));
        }
        text.push_str(&output.diff);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(old: &str, new: &str, all: bool) -> Edit {
        Edit {
            path: None,
            old_string: old.into(),
            new_string: new.into(),
            replace_all: all,
        }
    }

    #[test]
    fn crlf_file_matched_with_lf_text_keeps_crlf() {
        let (out, n) = apply_edit("a\r\nb\r\nc\r\n", &edit("a\nb\n", "a\nB\nb2\n", false), "f", "e").unwrap();
        assert_eq!(out, "a\r\nB\r\nb2\r\nc\r\n");
        assert_eq!(n, 1);
    }

    #[test]
    fn repeated_text_is_refused_with_its_lines() {
        let err = apply_edit("x\ny\nx\n", &edit("x", "z", false), "f", "the edit").unwrap_err();
        assert!(err.contains("occurs 2 times (at lines 1, 3)"), "{err}");
        let (out, n) = apply_edit("x\ny\nx\n", &edit("x", "z", true), "f", "e").unwrap();
        assert_eq!((out.as_str(), n), ("z\ny\nz\n", 2));
    }

    #[test]
    fn a_miss_shows_the_closest_lines() {
        let text = "fn a() {\n    let x = 1;\n    x + 1\n}\n";
        let err = apply_edit(text, &edit("fn a() {\n    let x = 2;\n", "", false), "f.rs", "the edit").unwrap_err();
        assert!(err.contains("closest lines are 1-2"), "{err}");
        assert!(err.contains("     2 !|     let x = 1;"), "{err}");
        let err = apply_edit(text, &edit("  let x = 1;\n  x + 1", "y", false), "f.rs", "the edit").unwrap_err();
        assert!(err.contains("different whitespace"), "{err}");
    }
}
