//! `git_status`: branch, upstream and changed paths, through libgit2.

use git2::{BranchType, Delta, DiffOptions};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Annotations, Tool, ToolContext, ToolError};
use crate::git::{Repo, git_error};
use crate::policy::Risk;

/// Most changed paths returned.
pub const MAX_ENTRIES: usize = 5_000;

pub struct GitStatus;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// How untracked files are shown: `normal` (default) shows a folder holding no tracked file as one `dir/` line, as `git status` does; `all` lists every untracked file, as `git status -uall`; `no` leaves them out.
    #[serde(default)]
    pub untracked: Untracked,
}

/// How untracked files are shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Untracked {
    /// A folder holding no tracked file is one `dir/` line.
    #[default]
    Normal,
    /// Every untracked file.
    All,
    /// None.
    No,
}

/// A change in the index or in the work tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Modified,
    Deleted,
    Renamed,
    Typechange,
    Untracked,
    Conflicted,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Entry {
    /// Path relative to the workspace root.
    pub path: String,
    /// The old path, for renames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    /// Staged change (index against HEAD), if any.
    pub index: Option<Change>,
    /// Unstaged change (work tree against index), if any.
    pub worktree: Option<Change>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// Current branch; null when HEAD is detached.
    pub branch: Option<String>,
    /// Short id of the HEAD commit; null before the first commit.
    pub head: Option<String>,
    /// First line of the HEAD commit's message; null before the first commit.
    pub head_subject: Option<String>,
    /// The upstream branch, when one is set.
    pub upstream: Option<String>,
    /// Commits on the branch not on its upstream.
    pub ahead: usize,
    /// Commits on the upstream not on the branch.
    pub behind: usize,
    /// Changed paths, sorted.
    pub entries: Vec<Entry>,
    /// True when nothing is staged, modified or untracked.
    pub clean: bool,
    /// True when the list was cut at 5000 entries.
    pub truncated: bool,
}

impl Tool for GitStatus {
    const NAME: &'static str = "git_status";
    const TITLE: &'static str = "Git status";
    const DESCRIPTION: &'static str = "Show the workspace repository's status: current branch, HEAD, upstream with ahead/behind counts, and every changed path with its staged (index) and unstaged (worktree) state as `git status --porcelain` writes it (XY path): added, modified, deleted, renamed, typechange, untracked or conflicted. Ignored files are left out; an untracked folder is one `?? dir/` line unless `untracked: \"all\"` (or `\"no\"` to leave untracked files out).";
    const RISK: Risk = Risk::Low;
    const ANNOTATIONS: Annotations = Annotations::READ_ONLY;
    type Params = Params;
    type Output = Output;

    fn describe(&self, _ctx: &ToolContext, _params: &Params) -> String {
        "git status".to_owned()
    }

    async fn run(&self, ctx: &ToolContext, params: Params) -> Result<Output, ToolError> {
        let root = ctx.workspace.root().to_path_buf();
        let git = ctx.git.clone();
        let untracked = params.untracked;
        tokio::task::spawn_blocking(move || git.with(&root, |repo| status(repo, &git, &root, untracked)))
            .await
            .map_err(|e| ToolError::new(format!("internal error: {e}")))?
    }

    fn render(output: Output) -> String {
        let mut text = String::from("## ");
        text.push_str(output.branch.as_deref().unwrap_or("HEAD (detached)"));
        if let Some(up) = &output.upstream {
            text.push_str(&format!("...{up}"));
            match (output.ahead, output.behind) {
                (0, 0) => {}
                (a, 0) => text.push_str(&format!(" [ahead {a}]")),
                (0, b) => text.push_str(&format!(" [behind {b}]")),
                (a, b) => text.push_str(&format!(" [ahead {a}, behind {b}]")),
            }
        } else if output.branch.is_some() {
            text.push_str(" (no upstream)");
        }
        text.push('\n');
        match (&output.head, &output.head_subject) {
            (Some(id), Some(subject)) => text.push_str(&format!("HEAD {id} {subject}\n")),
            (Some(id), None) => text.push_str(&format!("HEAD {id}\n")),
            (None, _) => text.push_str("HEAD (no commits yet)\n"),
        }
        for e in &output.entries {
            let code = |c: Option<Change>| match c {
                None => ' ',
                Some(Change::Added) => 'A',
                Some(Change::Modified) => 'M',
                Some(Change::Deleted) => 'D',
                Some(Change::Renamed) => 'R',
                Some(Change::Typechange) => 'T',
                Some(Change::Untracked) => '?',
                Some(Change::Conflicted) => 'U',
            };
            let (x, y) = if e.worktree == Some(Change::Untracked) {
                // Staged as deleted (or renamed away) and back as an untracked file: two lines, as git.
                if e.index.is_some() {
                    text.push_str(&format!("{}  {}\n", code(e.index), e.path));
                }
                ('?', '?')
            } else {
                (code(e.index), code(e.worktree))
            };
            match &e.renamed_from {
                Some(from) => text.push_str(&format!("{x}{y} {from} -> {}\n", e.path)),
                None => text.push_str(&format!("{x}{y} {}\n", e.path)),
            }
        }
        if output.clean {
            text.push_str("nothing to commit, working tree clean\n");
        }
        if output.truncated {
            text.push_str(&format!("[execlayer: list cut at {} entries]\n", output.entries.len()));
        }
        text
    }
}

fn status(
    r: &Repo,
    cache: &crate::git::RepoCache,
    root: &std::path::Path,
    untracked: Untracked,
) -> Result<Output, ToolError> {
    let repo = &r.repo;
    let head = repo.head().ok();
    let branch = head
        .as_ref()
        .filter(|h| h.is_branch())
        .and_then(|h| h.shorthand().ok().map(str::to_owned));
    let head_commit = head.as_ref().and_then(|h| h.peel_to_commit().ok());
    let head_id = head_commit.as_ref().map(|c| c.id().to_string()[..12].to_owned());
    let head_subject = head_commit
        .as_ref()
        .and_then(|c| c.summary_bytes().map(|s| String::from_utf8_lossy(s).into_owned()));
    let (mut upstream, mut ahead, mut behind) = (None, 0, 0);
    if let Some(name) = &branch
        && let Ok(local) = repo.find_branch(name, BranchType::Local)
        && let Ok(up) = local.upstream()
    {
        upstream = up.name().ok().flatten().map(str::to_owned);
        if let (Some(a), Some(b)) = (local.get().target(), up.get().target()) {
            (ahead, behind) = repo
                .graph_ahead_behind(a, b)
                .map_err(|e| git_error("cannot count ahead/behind", e))?;
        }
    }
    let mut entries = changes(r, cache, root, untracked)?;
    let truncated = entries.len() > MAX_ENTRIES;
    entries.truncate(MAX_ENTRIES);
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Output {
        clean: entries.is_empty(),
        branch,
        head: head_id,
        head_subject,
        upstream,
        ahead,
        behind,
        entries,
        truncated,
    })
}

/// Index entries above which the work tree is scanned by two threads.
const PARALLEL_FROM: usize = 1_000;

/// What `git status` reports, computed as libgit2's status computes it (HEAD
/// against the index with staged rename detection, then the index against the
/// work tree with untracked files). The HEAD-to-index half is remembered for
/// as long as HEAD and the index file stay the same; the work-tree half comes
/// from the index's stat data ([`crate::git_worktree`]), with libgit2's full
/// scan, split across two threads, when that cannot be used.
fn changes(
    r: &Repo,
    cache: &crate::git::RepoCache,
    root: &std::path::Path,
    untracked: Untracked,
) -> Result<Vec<Entry>, ToolError> {
    let repo = &r.repo;
    let started = std::time::Instant::now();
    // The stamp is read before the index is (re)loaded: see `index_stamp`.
    let stamp = crate::git::index_stamp(repo);
    let mut index = repo.index().map_err(|e| git_error("cannot read the index", e))?;
    // The handle is kept across calls: reload the file if it changed since.
    index.read(false).map_err(|e| git_error("cannot read the index", e))?;
    let head_tree = repo.head().ok().and_then(|h| h.peel_to_tree().ok());
    let key = stamp.clone().map(|mut k| {
        if let Some(t) = &head_tree {
            k.extend_from_slice(t.id().as_bytes());
        }
        k.push(0);
        k.extend_from_slice(r.scope.as_bytes());
        k
    });
    let staged = match key.as_deref().and_then(|k| cache.staged(k)) {
        Some(deltas) => deltas,
        None => {
            let deltas = staged_deltas(r, head_tree.as_ref(), &index)?;
            if let Some(k) = key {
                cache.remember_staged(k, deltas.clone());
            }
            deltas
        }
    };

    let mut by_path: std::collections::BTreeMap<String, Entry> = std::collections::BTreeMap::new();
    for delta in staged {
        let Some(change) = staged_change(delta.status) else {
            continue;
        };
        let Some(path) = r.to_workspace(&delta.path).map(str::to_owned) else {
            continue;
        };
        let renamed_from = (change == Change::Renamed)
            .then_some(delta.renamed_from)
            .flatten()
            .map(|p| r.to_workspace(&p).map(str::to_owned).unwrap_or(p));
        let entry = by_path.entry(path.clone()).or_insert_with(|| Entry::new(path));
        entry.index = Some(change);
        entry.renamed_from = renamed_from;
    }

    let staged_at = started.elapsed();
    let scope = std::slice::from_ref(&r.scope);
    let scanned = crate::git_worktree::scan(repo, &index, scope, true, &cache.scan, stamp.as_deref());
    let scanned_at = started.elapsed();
    let worktree = match scanned {
        Some(scan) => worktree_from_scan(r, &index, scan)?,
        None => {
            tracing::debug!("git_status: the stat-data scan cannot be used here; libgit2 scans the work tree");
            worktree_split(r, cache, root, &index)?
        }
    };
    tracing::debug!(
        staged_ms = staged_at.as_secs_f64() * 1e3,
        scan_ms = (scanned_at - staged_at).as_secs_f64() * 1e3,
        settle_ms = (started.elapsed() - scanned_at).as_secs_f64() * 1e3,
        "git_status timings"
    );
    let (mut worktree, new): (Vec<_>, Vec<_>) = worktree.into_iter().partition(|(_, c)| *c != Change::Untracked);
    match untracked {
        Untracked::All => worktree.extend(new),
        Untracked::Normal => worktree.extend(
            r.collapse_untracked(&index, new.into_iter().map(|(p, _)| p))
                .into_iter()
                .map(|p| (p, Change::Untracked)),
        ),
        Untracked::No => {}
    }
    for (path, change) in worktree {
        by_path.entry(path.clone()).or_insert_with(|| Entry::new(path)).worktree = Some(change);
    }
    Ok(by_path.into_values().collect())
}

/// HEAD against the index, with staged renames found.
fn staged_deltas(
    r: &Repo,
    head_tree: Option<&git2::Tree<'_>>,
    index: &git2::Index,
) -> Result<Vec<crate::git::StagedDelta>, ToolError> {
    let mut opts = DiffOptions::new();
    opts.include_typechange(true);
    if !r.scope.is_empty() {
        opts.pathspec(&r.scope);
    }
    let mut staged = r
        .repo
        .diff_tree_to_index(head_tree, Some(index), Some(&mut opts))
        .map_err(|e| git_error("cannot compare HEAD with the index", e))?;
    let mut find = git2::DiffFindOptions::new();
    find.renames(true);
    staged
        .find_similar(Some(&mut find))
        .map_err(|e| git_error("cannot detect renames", e))?;
    Ok(staged
        .deltas()
        .filter_map(|delta| {
            let path = delta.new_file().path().or_else(|| delta.old_file().path())?;
            Some(crate::git::StagedDelta {
                path: path.to_string_lossy().into_owned(),
                status: delta.status(),
                renamed_from: delta.old_file().path().map(|p| p.to_string_lossy().into_owned()),
            })
        })
        .collect())
}

/// The work-tree changes from a stat-data scan: what it decided, what libgit2
/// decides for the uncertain paths alone, and the untracked files.
fn worktree_from_scan(
    r: &Repo,
    index: &git2::Index,
    scan: crate::git_worktree::Scan,
) -> Result<Vec<(String, Change)>, ToolError> {
    let shown = |path: &[u8]| r.to_workspace(&String::from_utf8_lossy(path)).map(str::to_owned);
    let mut out: Vec<(String, Change)> = Vec::with_capacity(scan.decided.len() + scan.untracked.len());
    for (path, decided) in &scan.decided {
        let change = match decided {
            crate::git_worktree::Decided::Modified { .. } => Change::Modified,
            crate::git_worktree::Decided::Deleted => Change::Deleted,
        };
        out.extend(shown(path).map(|p| (p, change)));
    }
    if !scan.uncertain.is_empty() {
        let mut opts = DiffOptions::new();
        opts.include_typechange(true).disable_pathspec_match(true);
        for path in &scan.uncertain {
            opts.pathspec(std::ffi::CString::new(path.as_slice()).unwrap_or_default());
        }
        let diff = r
            .repo
            .diff_index_to_workdir(Some(index), Some(&mut opts))
            .map_err(|e| git_error("cannot compare the index with the work tree", e))?;
        out.extend(
            diff.deltas()
                .filter_map(|delta| Some((delta_path(r, &delta)?, worktree_change(delta.status())?))),
        );
    }
    for path in &scan.untracked {
        out.extend(shown(path).map(|p| (p, Change::Untracked)));
    }
    Ok(out)
}

/// libgit2's own work-tree scan, split across two threads by top-level name.
fn worktree_split(
    r: &Repo,
    cache: &crate::git::RepoCache,
    root: &std::path::Path,
    index: &git2::Index,
) -> Result<Vec<(String, Change)>, ToolError> {
    let repo = &r.repo;
    let groups = split_for_threads(r, index);
    Ok(match groups.as_slice() {
        [first, second] => cache.split_in_two(
            root,
            "status",
            || worktree_changes(r, repo, Some(first)),
            |spare| worktree_changes(spare, &spare.repo, Some(second)),
        )?,
        _ => worktree_changes(r, repo, None)?,
    })
}

impl Entry {
    fn new(path: String) -> Self {
        Self {
            path,
            renamed_from: None,
            index: None,
            worktree: None,
        }
    }
}

/// The changed path of a delta, relative to the workspace; `None` outside it.
fn delta_path(r: &Repo, delta: &git2::DiffDelta<'_>) -> Option<String> {
    let path = delta.new_file().path().or_else(|| delta.old_file().path())?;
    r.to_workspace(&path.to_string_lossy()).map(str::to_owned)
}

/// The work-tree state a libgit2 index-to-work-tree delta stands for.
fn worktree_change(delta: Delta) -> Option<Change> {
    Some(match delta {
        Delta::Untracked => Change::Untracked,
        Delta::Modified => Change::Modified,
        Delta::Deleted => Change::Deleted,
        Delta::Typechange => Change::Typechange,
        Delta::Conflicted => Change::Conflicted,
        _ => return None,
    })
}

fn staged_change(delta: Delta) -> Option<Change> {
    Some(match delta {
        Delta::Added | Delta::Copied => Change::Added,
        Delta::Deleted => Change::Deleted,
        Delta::Modified => Change::Modified,
        Delta::Renamed => Change::Renamed,
        Delta::Typechange => Change::Typechange,
        Delta::Conflicted => Change::Conflicted,
        _ => return None,
    })
}

/// The index against the work tree, limited to `pathspecs` when given.
fn worktree_changes(
    r: &Repo,
    repo: &git2::Repository,
    pathspecs: Option<&[String]>,
) -> Result<Vec<(String, Change)>, ToolError> {
    let mut opts = DiffOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_typechange(true)
        .disable_pathspec_match(true);
    match pathspecs {
        Some(specs) => specs.iter().for_each(|p| {
            opts.pathspec(p);
        }),
        None if !r.scope.is_empty() => {
            opts.pathspec(&r.scope);
        }
        None => {}
    }
    let diff = repo
        .diff_index_to_workdir(None, Some(&mut opts))
        .map_err(|e| git_error("cannot compare the index with the work tree", e))?;
    Ok(diff
        .deltas()
        .filter_map(|delta| Some((delta_path(r, &delta)?, worktree_change(delta.status())?)))
        .collect())
}

/// Splits the top-level names under the workspace into two groups of about
/// equal index size (literal pathspecs), or returns one group for small repos.
fn split_for_threads(r: &Repo, index: &git2::Index) -> Vec<Vec<String>> {
    if index.len() < PARALLEL_FROM {
        return Vec::new();
    }
    let mut weight: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for entry in index.iter() {
        let path = String::from_utf8_lossy(&entry.path).into_owned();
        let Some(rest) = path.strip_prefix(r.scope.as_str()) else {
            continue;
        };
        let top = rest.split('/').next().unwrap_or(rest).to_owned();
        *weight.entry(top).or_default() += 1;
    }
    // Untracked top-level names count too (they are scanned as well).
    if let Some(dir) = r.repo.workdir().map(|w| w.join(&r.scope))
        && let Ok(list) = std::fs::read_dir(dir)
    {
        for e in list.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name != ".git" {
                weight.entry(name).or_insert(1);
            }
        }
    }
    if weight.len() < 2 {
        return Vec::new();
    }
    let mut names: Vec<(String, usize)> = weight.into_iter().collect();
    names.sort_by_key(|(_, w)| std::cmp::Reverse(*w));
    let mut groups: [(usize, Vec<String>); 2] = [(0, Vec::new()), (0, Vec::new())];
    for (name, w) in names {
        let lighter = usize::from(groups[1].0 < groups[0].0);
        groups[lighter].0 += w;
        groups[lighter].1.push(format!("{}{name}", r.scope));
    }
    groups.into_iter().map(|(_, g)| g).collect()
}
