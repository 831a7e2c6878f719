//! `git_status`: branch, upstream and changed paths, through libgit2.

use git2::{BranchType, Status, StatusOptions};
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
pub struct Params {}

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
    const DESCRIPTION: &'static str = "Show the workspace repository's status: current branch, HEAD, upstream with ahead/behind counts, and every changed path with its staged (index) and unstaged (worktree) state: added, modified, deleted, renamed, typechange, untracked or conflicted. Ignored files are left out.";
    const RISK: Risk = Risk::Low;
    const ANNOTATIONS: Annotations = Annotations::READ_ONLY;
    type Params = Params;
    type Output = Output;

    fn describe(&self, _ctx: &ToolContext, _params: &Params) -> String {
        "git status".to_owned()
    }

    async fn run(&self, ctx: &ToolContext, _params: Params) -> Result<Output, ToolError> {
        let root = ctx.workspace.root().to_path_buf();
        let git = ctx.git.clone();
        tokio::task::spawn_blocking(move || git.with(&root, status))
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
        }
        text.push('\n');
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

fn status(r: &Repo) -> Result<Output, ToolError> {
    let repo = &r.repo;
    let head = repo.head().ok();
    let branch = head
        .as_ref()
        .filter(|h| h.is_branch())
        .and_then(|h| h.shorthand().ok().map(str::to_owned));
    let head_id = head
        .as_ref()
        .and_then(|h| h.target())
        .map(|oid| oid.to_string()[..12].to_owned());
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
    let mut opts = StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        // Like `git status`: staged renames are found, work-tree renames are
        // not (that needs every untracked file compared with every deleted one).
        .renames_head_to_index(true)
        .renames_index_to_workdir(false);
    if !r.scope.is_empty() {
        opts.pathspec(&r.scope);
    }
    let statuses = repo
        .statuses(Some(&mut opts))
        .map_err(|e| git_error("cannot read the status", e))?;
    let mut entries = Vec::new();
    let mut truncated = false;
    for s in statuses.iter() {
        let st = s.status();
        if st.is_ignored() {
            continue;
        }
        let (new_path, old_path) = match (s.head_to_index(), s.index_to_workdir()) {
            (Some(d), _) if st.is_index_renamed() => (d.new_file().path(), d.old_file().path()),
            (_, Some(d)) if st.is_wt_renamed() => (d.new_file().path(), d.old_file().path()),
            _ => (s.path().ok().map(std::path::Path::new), None),
        };
        let Some(path) = new_path.map(|p| p.to_string_lossy().into_owned()) else {
            continue;
        };
        let Some(path) = r.to_workspace(&path).map(str::to_owned) else {
            continue;
        };
        if entries.len() == MAX_ENTRIES {
            truncated = true;
            break;
        }
        let renamed_from = old_path
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| *p != path)
            .map(|p| r.to_workspace(&p).map(str::to_owned).unwrap_or_else(|| p.clone()));
        entries.push(Entry {
            path,
            renamed_from,
            index: index_change(st),
            worktree: worktree_change(st),
        });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Output {
        clean: entries.is_empty(),
        branch,
        head: head_id,
        upstream,
        ahead,
        behind,
        entries,
        truncated,
    })
}

fn index_change(st: Status) -> Option<Change> {
    if st.is_conflicted() {
        Some(Change::Conflicted)
    } else if st.is_index_new() {
        Some(Change::Added)
    } else if st.is_index_modified() {
        Some(Change::Modified)
    } else if st.is_index_deleted() {
        Some(Change::Deleted)
    } else if st.is_index_renamed() {
        Some(Change::Renamed)
    } else if st.is_index_typechange() {
        Some(Change::Typechange)
    } else {
        None
    }
}

fn worktree_change(st: Status) -> Option<Change> {
    if st.is_conflicted() {
        Some(Change::Conflicted)
    } else if st.is_wt_new() {
        Some(Change::Untracked)
    } else if st.is_wt_modified() {
        Some(Change::Modified)
    } else if st.is_wt_deleted() {
        Some(Change::Deleted)
    } else if st.is_wt_renamed() {
        Some(Change::Renamed)
    } else if st.is_wt_typechange() {
        Some(Change::Typechange)
    } else {
        None
    }
}
