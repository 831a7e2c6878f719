//! `git_diff`: a unified diff of the work tree, the index or a revision, through libgit2.

use git2::{Delta, DiffFormat, DiffOptions};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Annotations, Tool, ToolContext, ToolError};
use crate::git::{Repo, git_error};
use crate::policy::Risk;
use crate::workspace::Access;

/// Most bytes of patch text returned.
pub const MAX_PATCH_BYTES: usize = 512 * 1024;

pub struct GitDiff;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Diff the staged changes (index against HEAD, or against `base`). Default false: unstaged changes.
    #[serde(default)]
    pub staged: bool,
    /// A revision to diff against (a branch, tag or commit, e.g. `main` or `HEAD~2`); then the work tree (or, with `staged`, the index) is compared with it.
    #[serde(default)]
    pub base: Option<String>,
    /// Only these files or directories, relative to the workspace root.
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    /// Lines of context around each change (0 to 100). Default 3.
    #[serde(default)]
    pub context_lines: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FileStat {
    /// Path relative to the workspace root (the new path for renames).
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    /// added, deleted, modified, renamed, copied, typechange or untracked.
    pub status: String,
    pub additions: usize,
    pub deletions: usize,
    pub binary: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// What was compared, e.g. `index..worktree` or `HEAD..index`.
    pub compared: String,
    pub files: Vec<FileStat>,
    pub additions: usize,
    pub deletions: usize,
    /// Size of the whole patch in bytes.
    pub patch_bytes: usize,
    /// True when the patch text was cut at 512 KiB.
    pub truncated: bool,
    /// The patch travels once, in the text content block.
    #[serde(skip)]
    #[schemars(skip)]
    pub patch: String,
}

impl Tool for GitDiff {
    const NAME: &'static str = "git_diff";
    const TITLE: &'static str = "Git diff";
    const DESCRIPTION: &'static str = "Show a unified diff of the workspace repository: unstaged changes by default, staged changes with `staged: true`, or the work tree against a revision with `base`. Optional: limit to paths, set context lines. The patch text is in the text content block (at most 512 KiB); the structured result lists each file with +/- counts.";
    const RISK: Risk = Risk::Low;
    const ANNOTATIONS: Annotations = Annotations::READ_ONLY;
    type Params = Params;
    type Output = Output;

    fn describe(&self, _ctx: &ToolContext, _params: &Params) -> String {
        "git diff".to_owned()
    }

    async fn run(&self, ctx: &ToolContext, params: Params) -> Result<Output, ToolError> {
        if let Some(base) = &params.base
            && (base.starts_with('-') || base.is_empty() || base.contains('\0'))
        {
            return Err(ToolError::new(format!(
                "base {base:?} is not a revision; give a branch, tag or commit such as `main` or `HEAD~1`"
            )));
        }
        let context = params.context_lines.unwrap_or(3);
        if context > 100 {
            return Err(ToolError::new(format!(
                "context_lines must be from 0 to 100; got {context}"
            )));
        }
        let mut paths = Vec::new();
        for p in params.paths.iter().flatten() {
            let resolved = ctx.workspace.resolve(p, Access::Read)?;
            if resolved.relative().as_os_str().is_empty() {
                // The root itself: no filter beyond the workspace.
                paths.clear();
                break;
            }
            paths.push(resolved.relative().to_string_lossy().into_owned());
        }
        let root = ctx.workspace.root().to_path_buf();
        let git = ctx.git.clone();
        tokio::task::spawn_blocking(move || git.with(&root, |repo| diff(repo, &git, &root, &params, &paths, context)))
            .await
            .map_err(|e| ToolError::new(format!("internal error: {e}")))?
    }

    fn render(output: Output) -> String {
        if output.files.is_empty() {
            return format!("No differences ({}).\n", output.compared);
        }
        let mut text = output.patch;
        if output.truncated {
            text.push_str(&format!(
                "\n[execlayer: patch cut at {MAX_PATCH_BYTES} of {} bytes; pass `paths` to see the rest]\n",
                output.patch_bytes
            ));
        }
        text
    }
}

/// The repository's index, reloaded if the file changed since the handle last read it.
fn fresh_index(repo: &git2::Repository) -> Result<git2::Index, ToolError> {
    let mut index = repo.index().map_err(|e| git_error("cannot read the index", e))?;
    index.read(false).map_err(|e| git_error("cannot read the index", e))?;
    Ok(index)
}

fn diff(
    r: &Repo,
    cache: &crate::git::RepoCache,
    root: &std::path::Path,
    params: &Params,
    paths: &[String],
    context: u32,
) -> Result<Output, ToolError> {
    let started = std::time::Instant::now();
    let repo = &r.repo;
    let mut opts = DiffOptions::new();
    opts.context_lines(context).disable_pathspec_match(true);
    if paths.is_empty() {
        if !r.scope.is_empty() {
            opts.pathspec(&r.scope);
        }
    } else {
        for p in paths {
            opts.pathspec(r.to_repo(p));
        }
    }
    let base_tree = match &params.base {
        Some(base) => Some(
            repo.revparse_single(base)
                .and_then(|o| o.peel_to_tree())
                .map_err(|e| git_error(&format!("base {base:?} does not name a commit"), e))?,
        ),
        None => None,
    };
    let (diff, compared) = if params.staged {
        let tree = match base_tree {
            Some(t) => Some(t),
            None => repo.head().ok().and_then(|h| h.peel_to_tree().ok()),
        };
        let index = fresh_index(repo)?;
        let from = params.base.clone().unwrap_or_else(|| "HEAD".into());
        (
            repo.diff_tree_to_index(tree.as_ref(), Some(&index), Some(&mut opts)),
            format!("{from}..index"),
        )
    } else if let Some(tree) = base_tree {
        let from = params.base.clone().unwrap_or_default();
        (
            repo.diff_tree_to_workdir_with_index(Some(&tree), Some(&mut opts)),
            format!("{from}..worktree"),
        )
    } else {
        // The stamp is read before the index is (re)loaded: see `index_stamp`.
        let stamp = crate::git::index_stamp(repo);
        let index = fresh_index(repo)?;
        // Like `git diff`: the index's stat data say which files may have
        // changed; libgit2 compares only those (one `lstat` per tracked file,
        // on every core, instead of a walk of the whole work tree).
        let prefixes: Vec<String> = if paths.is_empty() {
            vec![r.scope.clone()]
        } else {
            paths.iter().map(|p| r.to_repo(p)).collect()
        };
        let candidates =
            crate::git_worktree::scan(repo, &index, &prefixes, false, &cache.scan, stamp.as_deref()).map(|scan| {
                let mut all = scan.uncertain;
                all.extend(scan.decided.into_iter().map(|(path, _)| path));
                all
            });
        match candidates {
            Some(candidates) if candidates.is_empty() => {
                return Ok(Output {
                    compared: "index..worktree".to_owned(),
                    files: Vec::new(),
                    additions: 0,
                    deletions: 0,
                    patch_bytes: 0,
                    truncated: false,
                    patch: String::new(),
                });
            }
            Some(mut candidates) if candidates.len() >= SPLIT_FROM => {
                candidates.sort();
                candidates.dedup(); // conflict stages share a path
                let (patch, files) = unstaged_split(r, cache, root, &index, &candidates, context)?;
                return Ok(output("index..worktree".to_owned(), patch, files));
            }
            Some(candidates) => opts = narrow_options(&candidates, context),
            None => {}
        }
        (
            repo.diff_index_to_workdir(Some(&index), Some(&mut opts)),
            "index..worktree".to_owned(),
        )
    };
    let diff = diff.map_err(|e| git_error("cannot compute the diff", e))?;
    let diffed_at = started.elapsed();
    let (patch, files) = patch_of(r, diff)?;
    tracing::debug!(
        diff_ms = diffed_at.as_secs_f64() * 1e3,
        print_ms = (started.elapsed() - diffed_at).as_secs_f64() * 1e3,
        "git_diff timings"
    );
    Ok(output(compared, patch, files))
}

/// Candidates from which the unstaged diff is shared between two threads.
const SPLIT_FROM: usize = 64;

/// The unstaged diff of `candidates` (sorted repository paths), the first
/// half on this thread and the second on the spare repository handle. There
/// are no added files in an index-to-work-tree diff without untracked files,
/// so no rename can pair paths across the halves, and the halves' patches,
/// concatenated, are the one diff's patch.
fn unstaged_split(
    r: &Repo,
    cache: &crate::git::RepoCache,
    root: &std::path::Path,
    index: &git2::Index,
    candidates: &[Vec<u8>],
    context: u32,
) -> Result<(Vec<u8>, Vec<FileStat>), ToolError> {
    let spare = cache.lend_spare(root)?;
    let (first, second) = candidates.split_at(candidates.len() / 2);
    let one = |repo: &Repo, index: &git2::Index, part: &[Vec<u8>]| -> Result<(Vec<u8>, Vec<FileStat>), ToolError> {
        let mut opts = narrow_options(part, context);
        let diff = repo
            .repo
            .diff_index_to_workdir(Some(index), Some(&mut opts))
            .map_err(|e| git_error("cannot compute the diff", e));
        patch_of(repo, diff?)
    };
    let (mine, (spare, theirs)) = std::thread::scope(|scope| {
        let helper = scope.spawn(|| {
            let result = fresh_index(&spare.repo).and_then(|index| one(&spare, &index, second));
            (spare, result)
        });
        let mine = one(r, index, first);
        let theirs = helper
            .join()
            .map_err(|_| ToolError::new("internal error: a diff thread panicked"));
        theirs.map(|t| (mine, t))
    })?;
    cache.give_back(spare);
    let (mut patch, mut files) = mine?;
    let (patch2, files2) = theirs?;
    patch.extend_from_slice(&patch2);
    files.extend(files2);
    Ok((patch, files))
}

/// Diff options limited to exact repository paths.
fn narrow_options(paths: &[Vec<u8>], context: u32) -> DiffOptions {
    let mut opts = DiffOptions::new();
    opts.context_lines(context).disable_pathspec_match(true);
    for c in paths {
        opts.pathspec(std::ffi::CString::new(c.as_slice()).unwrap_or_default());
    }
    opts
}

fn output(compared: String, patch: Vec<u8>, files: Vec<FileStat>) -> Output {
    let patch_bytes = patch.len();
    let text = String::from_utf8_lossy(&patch);
    let (cut, truncated) = super::truncate_str(&text, MAX_PATCH_BYTES);
    Output {
        compared,
        additions: files.iter().map(|f| f.additions).sum(),
        deletions: files.iter().map(|f| f.deletions).sum(),
        files,
        patch_bytes,
        truncated,
        patch: cut.to_owned(),
    }
}

/// Finds renames, then formats the patch and counts each file's added and
/// removed lines in one pass.
fn patch_of(r: &Repo, mut diff: git2::Diff<'_>) -> Result<(Vec<u8>, Vec<FileStat>), ToolError> {
    let mut find = git2::DiffFindOptions::new();
    find.renames(true);
    diff.find_similar(Some(&mut find))
        .map_err(|e| git_error("cannot detect renames", e))?;
    let mut patch = Vec::new();
    let mut counts: std::collections::HashMap<Vec<u8>, (usize, usize)> = std::collections::HashMap::new();
    diff.print(DiffFormat::Patch, |delta, _, line| {
        let origin = line.origin();
        if matches!(origin, '+' | '-') {
            let key = delta_key(&delta);
            let entry = counts.entry(key).or_default();
            if origin == '+' {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
        if matches!(origin, '+' | '-' | ' ') {
            patch.push(origin as u8);
        }
        patch.extend_from_slice(line.content());
        true
    })
    .map_err(|e| git_error("cannot format the diff", e))?;
    let mut files = Vec::new();
    for delta in diff.deltas() {
        let new_path = delta
            .new_file()
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let old_path = delta.old_file().path().map(|p| p.to_string_lossy().into_owned());
        let (additions, deletions) = counts.get(&delta_key(&delta)).copied().unwrap_or((0, 0));
        let status = match delta.status() {
            Delta::Added => "added",
            Delta::Deleted => "deleted",
            Delta::Modified => "modified",
            Delta::Renamed => "renamed",
            Delta::Copied => "copied",
            Delta::Typechange => "typechange",
            Delta::Untracked => "untracked",
            _ => "modified",
        };
        let path = r.to_workspace(&new_path).unwrap_or(&new_path).to_owned();
        files.push(FileStat {
            old_path: old_path
                .filter(|o| *o != new_path)
                .map(|o| r.to_workspace(&o).unwrap_or(&o).to_owned()),
            path,
            status: status.to_owned(),
            additions,
            deletions,
            binary: delta.flags().is_binary(),
        });
    }
    Ok((patch, files))
}

/// Identifies a delta by its old and new paths.
fn delta_key(delta: &git2::DiffDelta<'_>) -> Vec<u8> {
    let mut key = delta.old_file().path_bytes().unwrap_or_default().to_vec();
    key.push(0);
    key.extend_from_slice(delta.new_file().path_bytes().unwrap_or_default());
    key
}
