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
    /// Include untracked (new, not ignored) files as new-file diffs, as `git add -N` then `git diff` would show them. Default false: only tracked files are diffed; with `paths`, the untracked ones among them are named after the patch (git_status lists them all). Not with `staged` (the index holds no untracked file).
    #[serde(default)]
    pub untracked: bool,
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
    /// Untracked files under the given `paths` that the diff leaves out (at
    /// most 100; only looked for when `paths` are given); pass `untracked: true` to include them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub untracked: Vec<String>,
    /// How many untracked paths there were, when more than `untracked` lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untracked_total: Option<usize>,
    /// The whole work tree was compared without `untracked`: the text says
    /// that new files are not in it (they were not looked for, to keep the
    /// diff as fast as `git diff`).
    #[serde(skip)]
    #[schemars(skip)]
    pub untracked_not_looked_for: bool,
    /// The patch travels once, in the text content block.
    #[serde(skip)]
    #[schemars(skip)]
    pub patch: String,
}

impl Tool for GitDiff {
    const NAME: &'static str = "git_diff";
    const TITLE: &'static str = "Git diff";
    const DESCRIPTION: &'static str = "Show a unified diff of the workspace repository: unstaged changes by default, staged changes with `staged: true`, or the work tree against a revision with `base`. Untracked (new) files are not diffed unless `untracked: true` (with `paths`, those among them are named after the patch); with it, a file moved by hand (old name gone, new one untracked) is shown as a rename. Optional: limit to paths, set context lines. The patch text is in the text content block (at most 512 KiB); the structured result lists each file with +/- counts.";
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
        if params.untracked && params.staged {
            return Err(ToolError::new(
                "`untracked` and `staged` cannot be combined: the index holds no untracked file. \
                 Drop `staged` to see untracked files as new files against the index (or `base`), or drop `untracked`",
            ));
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
        let mut text = if output.files.is_empty() {
            let tracked = if output.untracked.is_empty() && !output.untracked_not_looked_for {
                ""
            } else {
                " in tracked files"
            };
            format!("No differences{tracked} ({}).\n", output.compared)
        } else {
            output.patch
        };
        if output.truncated {
            text.push_str(&format!(
                "\n[execlayer: patch cut at {MAX_PATCH_BYTES} of {} bytes; pass `paths` to see the rest]\n",
                output.patch_bytes
            ));
        }
        if output.untracked_not_looked_for {
            text.push_str(
                "\n[execlayer: new (untracked) files were not looked for and are not in this diff; if you created \
                 any, git_status lists them and `untracked: true` diffs them as new files]\n",
            );
        }
        if !output.untracked.is_empty() {
            let total = output.untracked_total.unwrap_or(output.untracked.len());
            const NAMED: usize = 20;
            let mut names = output
                .untracked
                .iter()
                .take(NAMED)
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            if total > NAMED {
                names.push_str(&format!(" and {} more", total - NAMED));
            }
            let (count, them) = if total == 1 {
                ("1 untracked path".to_owned(), "it as a new-file diff")
            } else {
                (format!("{total} untracked paths"), "them as new-file diffs")
            };
            text.push_str(&format!(
                "\n[execlayer: not in this diff, {count} (new, never added to git): {names}. \
                 Pass `untracked: true` to include {them}.]\n"
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
    // Untracked files come as their own deltas: diffed with `untracked`;
    // under named paths, otherwise named after the patch (libgit2 prints no
    // patch for them). Not looked for on the whole work tree without
    // `untracked`: that walk would cost as much as the diff itself.
    let untracked_hint = !params.staged && !params.untracked && paths.is_empty();
    if !params.staged && !untracked_hint {
        opts.include_untracked(true)
            .recurse_untracked_dirs(true)
            .show_untracked_content(params.untracked);
    }
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
    } else if params.untracked {
        let index = fresh_index(repo)?;
        (
            repo.diff_index_to_workdir(Some(&index), Some(&mut opts)),
            "index..worktree".to_owned(),
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
        if let Some(scan) = crate::git_worktree::scan(repo, &index, &prefixes, false, &cache.scan, stamp.as_deref()) {
            // Under named paths, untracked files are looked for by libgit2 on just those paths.
            let untracked = if untracked_hint {
                Vec::new()
            } else {
                untracked_under(r, &index, &prefixes)?
            };
            let plain_ok = plain_patches_allowed(repo, &scan);
            let mut slow = scan.uncertain;
            let mut plain = Vec::new();
            for (path, decided) in scan.decided {
                match decided {
                    crate::git_worktree::Decided::Modified { plain: true } if plain_ok => plain.push(path),
                    _ => slow.push(path),
                }
            }
            let plain_count = plain.len();
            let mut chunks = plain_chunks(r, &index, plain, context, &mut slow);
            slow.sort();
            slow.dedup(); // conflict stages share a path
            if slow.len() >= SPLIT_FROM {
                chunks.extend(unstaged_split(r, cache, root, &index, &slow, context)?);
            } else if !slow.is_empty() {
                let mut opts = narrow_options(&slow, context);
                let diff = repo
                    .diff_index_to_workdir(Some(&index), Some(&mut opts))
                    .map_err(|e| git_error("cannot compute the diff", e))?;
                chunks.extend(chunks_of(r, diff, false)?);
            }
            chunks.sort_by(|a, b| a.key.cmp(&b.key));
            tracing::debug!(
                total_ms = started.elapsed().as_secs_f64() * 1e3,
                plain = plain_count,
                slow = slow.len(),
                "git_diff timings"
            );
            let mut out = output("index..worktree".to_owned(), chunks, untracked);
            out.untracked_not_looked_for = untracked_hint;
            return Ok(out);
        }
        (
            repo.diff_index_to_workdir(Some(&index), Some(&mut opts)),
            "index..worktree".to_owned(),
        )
    };
    let diff = diff.map_err(|e| git_error("cannot compute the diff", e))?;
    let mut chunks = chunks_of(r, diff, params.untracked)?;
    let mut untracked = Vec::new();
    if !params.untracked {
        let (new, tracked): (Vec<Chunk>, Vec<Chunk>) = chunks.into_iter().partition(|c| c.stat.status == "untracked");
        chunks = tracked;
        let files = new.into_iter().map(|c| c.stat.path);
        untracked = files.collect();
    }
    let mut out = output(compared, chunks, untracked);
    out.untracked_not_looked_for = untracked_hint;
    Ok(out)
}

/// The untracked, not ignored files under `pathspecs` (exact repository
/// paths: files or folders), as workspace paths, found by libgit2 on just
/// those paths.
fn untracked_under(r: &Repo, index: &git2::Index, pathspecs: &[String]) -> Result<Vec<String>, ToolError> {
    let mut opts = DiffOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .disable_pathspec_match(true)
        .skip_binary_check(true);
    for p in pathspecs {
        opts.pathspec(p);
    }
    let diff = r
        .repo
        .diff_index_to_workdir(Some(index), Some(&mut opts))
        .map_err(|e| git_error("cannot list untracked files", e))?;
    Ok(diff
        .deltas()
        .filter(|d| d.status() == Delta::Untracked)
        .filter_map(|d| {
            let path = d.new_file().path()?.to_string_lossy().into_owned();
            r.to_workspace(&path).map(str::to_owned)
        })
        .collect())
}

/// One file's part of the patch, and its line counts.
struct Chunk {
    /// The repository path (the new path for renames), for ordering.
    key: Vec<u8>,
    patch: Vec<u8>,
    stat: FileStat,
}

/// Whether a changed regular file's patch may be made from its index blob and
/// its bytes alone, without libgit2's diff of the work tree: only when no
/// attributes could apply to any file (no `.gitattributes` in the index or in
/// the work tree's folders, no `info/attributes`, no global or system
/// attributes file, no `core.attributesFile`) and no line-ending conversion is
/// configured (`core.autocrlf`, `core.eol`). Then libgit2 would read both sides
/// unfiltered with its default diff driver, which is what this does.
fn plain_patches_allowed(repo: &git2::Repository, scan: &crate::git_worktree::Scan) -> bool {
    if scan.attributes_tracked || repo.path().join("info/attributes").exists() {
        return false;
    }
    let Ok(config) = repo.config() else { return false };
    if config.get_string("core.attributesfile").is_ok() || config.get_string("core.eol").is_ok() {
        return false;
    }
    // `true` or `input` (not a boolean) convert line endings; only unset or `false` do not.
    let autocrlf = match config.get_bool("core.autocrlf") {
        Ok(on) => on,
        Err(_) => config.get_string("core.autocrlf").is_ok(),
    };
    if autocrlf {
        return false;
    }
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".config")));
    let global = xdg.map(|d| d.join("git/attributes"));
    let system = [
        std::path::PathBuf::from("/etc/gitattributes"),
        std::path::PathBuf::from("/usr/local/etc/gitattributes"),
    ];
    if global.iter().chain(system.iter()).any(|p| p.symlink_metadata().is_ok()) {
        return false;
    }
    // Untracked `.gitattributes` files in the folders holding changed files or above them.
    let Some(workdir) = repo.workdir() else { return false };
    let mut folders: std::collections::BTreeSet<&[u8]> = std::collections::BTreeSet::new();
    folders.insert(b"");
    for (path, _) in &scan.decided {
        let mut end = path.len();
        while let Some(i) = path[..end].iter().rposition(|&b| b == b'/') {
            if !folders.insert(&path[..i]) {
                break;
            }
            end = i;
        }
    }
    use std::os::unix::ffi::OsStrExt;
    !folders.iter().any(|f| {
        workdir
            .join(std::ffi::OsStr::from_bytes(f))
            .join(".gitattributes")
            .symlink_metadata()
            .is_ok()
    })
}

/// Patches of plain modified files (regular, not executable, same mode on
/// both sides) made from the index blob and the file's bytes, formatted by
/// libgit2 exactly as its work-tree diff formats them. A file that cannot be
/// read that way goes to `slow` for libgit2's diff.
fn plain_chunks(
    r: &Repo,
    index: &git2::Index,
    paths: Vec<Vec<u8>>,
    context: u32,
    slow: &mut Vec<Vec<u8>>,
) -> Vec<Chunk> {
    use std::os::unix::ffi::OsStrExt;
    let Some(workdir) = r.repo.workdir() else {
        slow.extend(paths);
        return Vec::new();
    };
    let mut chunks = Vec::with_capacity(paths.len());
    for path in paths {
        let made = (|| {
            let p = std::path::Path::new(std::ffi::OsStr::from_bytes(&path));
            let entry = index.get_path(p, 0)?;
            if entry.mode != 0o100644 {
                return None;
            }
            let blob = r.repo.find_blob(entry.id).ok()?;
            let bytes = crate::git_worktree::read_file(workdir, &path)?;
            let mut opts = DiffOptions::new();
            opts.context_lines(context);
            let mut patch =
                git2::Patch::from_buffers(blob.content(), Some(p), &bytes, Some(p), Some(&mut opts)).ok()?;
            let mut chunk = Chunk {
                key: path.clone(),
                patch: Vec::new(),
                stat: FileStat {
                    path: String::new(),
                    old_path: None,
                    status: "modified".to_owned(),
                    additions: 0,
                    deletions: 0,
                    binary: false,
                },
            };
            patch
                .print(&mut |_, _, line| {
                    push_line(&mut chunk.patch, &mut chunk.stat, &line);
                    true
                })
                .ok()?;
            chunk.stat.binary = patch.delta().flags().is_binary();
            let shown = String::from_utf8_lossy(&path).into_owned();
            chunk.stat.path = r.to_workspace(&shown).unwrap_or(&shown).to_owned();
            Some(chunk)
        })();
        match made {
            Some(chunk) => chunks.push(chunk),
            None => slow.push(path),
        }
    }
    chunks
}

/// Appends one line of libgit2's patch output and counts it.
fn push_line(patch: &mut Vec<u8>, stat: &mut FileStat, line: &git2::DiffLine<'_>) {
    let origin = line.origin();
    match origin {
        '+' => stat.additions += 1,
        '-' => stat.deletions += 1,
        _ => {}
    }
    if matches!(origin, '+' | '-' | ' ') {
        patch.push(origin as u8);
    }
    patch.extend_from_slice(line.content());
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
) -> Result<Vec<Chunk>, ToolError> {
    let (first, second) = candidates.split_at(candidates.len() / 2);
    let one = |repo: &Repo, index: &git2::Index, part: &[Vec<u8>]| -> Result<Vec<Chunk>, ToolError> {
        let mut opts = narrow_options(part, context);
        let diff = repo
            .repo
            .diff_index_to_workdir(Some(index), Some(&mut opts))
            .map_err(|e| git_error("cannot compute the diff", e));
        chunks_of(repo, diff?, false)
    };
    cache.split_in_two(
        root,
        "diff",
        || one(r, index, first),
        |spare| fresh_index(&spare.repo).and_then(|index| one(spare, &index, second)),
    )
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

/// Most untracked paths listed in the structured result.
const MAX_UNTRACKED: usize = 100;

fn output(compared: String, chunks: Vec<Chunk>, mut untracked: Vec<String>) -> Output {
    let untracked_total = (untracked.len() > MAX_UNTRACKED).then_some(untracked.len());
    untracked.truncate(MAX_UNTRACKED);
    let mut patch = Vec::with_capacity(chunks.iter().map(|c| c.patch.len()).sum());
    let mut files = Vec::with_capacity(chunks.len());
    for c in chunks {
        patch.extend_from_slice(&c.patch);
        files.push(c.stat);
    }
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
        untracked,
        untracked_total,
        untracked_not_looked_for: false,
        patch: cut.to_owned(),
    }
}

/// Finds renames, then formats each file's patch and counts its added and
/// removed lines in one pass; one chunk per file, in the diff's order.
/// `untracked_renames`: a new (untracked) file may be the new name of a
/// deleted one, as `git add -N` then `git diff` would show it.
fn chunks_of(r: &Repo, mut diff: git2::Diff<'_>, untracked_renames: bool) -> Result<Vec<Chunk>, ToolError> {
    let mut find = git2::DiffFindOptions::new();
    find.renames(true).for_untracked(untracked_renames);
    diff.find_similar(Some(&mut find))
        .map_err(|e| git_error("cannot detect renames", e))?;
    let mut chunks: Vec<Chunk> = Vec::with_capacity(diff.deltas().len());
    let mut by_key: std::collections::HashMap<Vec<u8>, usize> = std::collections::HashMap::new();
    for delta in diff.deltas() {
        let new_path = delta
            .new_file()
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let old_path = delta.old_file().path().map(|p| p.to_string_lossy().into_owned());
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
        by_key.insert(delta_key(&delta), chunks.len());
        chunks.push(Chunk {
            key: delta.new_file().path_bytes().unwrap_or_default().to_vec(),
            patch: Vec::new(),
            stat: FileStat {
                path: r.to_workspace(&new_path).unwrap_or(&new_path).to_owned(),
                old_path: old_path
                    .filter(|o| *o != new_path)
                    .map(|o| r.to_workspace(&o).unwrap_or(&o).to_owned()),
                status: status.to_owned(),
                additions: 0,
                deletions: 0,
                binary: delta.flags().is_binary(),
            },
        });
    }
    let mut current: Option<(Vec<u8>, usize)> = None;
    diff.print(DiffFormat::Patch, |delta, _, line| {
        let at = match &current {
            Some((key, at)) if same_key(key, &delta) => *at,
            _ => {
                let key = delta_key(&delta);
                let Some(&at) = by_key.get(&key) else { return true };
                current = Some((key, at));
                at
            }
        };
        let chunk = &mut chunks[at];
        push_line(&mut chunk.patch, &mut chunk.stat, &line);
        true
    })
    .map_err(|e| git_error("cannot format the diff", e))?;
    // The binary flag is known once the content has been loaded for printing.
    for (chunk, delta) in chunks.iter_mut().zip(diff.deltas()) {
        chunk.stat.binary = delta.flags().is_binary();
    }
    Ok(chunks)
}

/// Whether `key` (from [`delta_key`]) names this delta, without allocating.
fn same_key(key: &[u8], delta: &git2::DiffDelta<'_>) -> bool {
    let old = delta.old_file().path_bytes().unwrap_or_default();
    let new = delta.new_file().path_bytes().unwrap_or_default();
    key.len() == old.len() + 1 + new.len() && key.starts_with(old) && key[old.len()] == 0 && key.ends_with(new)
}

/// Identifies a delta by its old and new paths.
fn delta_key(delta: &git2::DiffDelta<'_>) -> Vec<u8> {
    let mut key = delta.old_file().path_bytes().unwrap_or_default().to_vec();
    key.push(0);
    key.extend_from_slice(delta.new_file().path_bytes().unwrap_or_default());
    key
}
