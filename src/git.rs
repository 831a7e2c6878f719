//! Opening the workspace's git repository through libgit2 (no git process).
//!
//! The workspace may be the repository's top level or a folder inside it; then
//! [`Repo::scope`] is that folder and git tools see only paths under it, shown
//! relative to the workspace root. libgit2 runs no hooks, no fsmonitor and no
//! external filters, so reading a hostile repository executes nothing.

use std::path::{Path, PathBuf};

use git2::{Repository, RepositoryOpenFlags};

use crate::tools::ToolError;

/// A repository and the part of it the workspace covers.
pub struct Repo {
    pub repo: Repository,
    /// The workspace root relative to the repository's work tree, with a
    /// trailing `/` (empty when the workspace is the top level).
    pub scope: String,
}

impl Repo {
    /// Finds the repository that holds `root` (the root itself or a parent).
    pub fn open(root: &Path) -> Result<Self, ToolError> {
        let repo =
            Repository::open_ext(root, RepositoryOpenFlags::empty(), std::iter::empty::<&Path>()).map_err(|_| {
                ToolError::new(format!(
                    "the workspace {} is not inside a git repository; run `git init` there first",
                    root.display()
                ))
            })?;
        let workdir: PathBuf = repo
            .workdir()
            .ok_or_else(|| ToolError::new("the repository is bare; git tools need a work tree"))?
            .canonicalize()
            .map_err(|e| ToolError::new(format!("cannot resolve the repository's work tree: {e}")))?;
        let scope = match root.strip_prefix(&workdir) {
            Ok(rel) if rel.as_os_str().is_empty() => String::new(),
            Ok(rel) => format!("{}/", rel.to_string_lossy()),
            Err(_) => String::new(),
        };
        Ok(Self { repo, scope })
    }

    /// Turns a repository path into a workspace path; `None` when it lies outside.
    pub fn to_workspace<'a>(&self, repo_path: &'a str) -> Option<&'a str> {
        repo_path.strip_prefix(self.scope.as_str())
    }

    /// Turns a workspace-relative path into a repository path.
    pub fn to_repo(&self, workspace_path: &str) -> String {
        format!("{}{}", self.scope, workspace_path)
    }

    /// Untracked files as `git status` shows them by default: a file inside a
    /// folder that holds no tracked file (nor any below it) is shown as the
    /// outermost such folder, `dir/`, once. Paths are workspace-relative, in
    /// and out; the workspace root itself is never collapsed.
    pub fn collapse_untracked(&self, index: &git2::Index, files: impl Iterator<Item = String>) -> Vec<String> {
        let mut holds_tracked: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
        let mut shown = std::collections::BTreeSet::new();
        for file in files {
            let mut line = None;
            for (at, _) in file.match_indices('/') {
                let dir = &file[..=at];
                if dir.len() == file.len() {
                    break;
                }
                let tracked = *holds_tracked
                    .entry(dir.to_owned())
                    .or_insert_with(|| index.find_prefix(self.to_repo(dir).as_str()).is_ok());
                if !tracked {
                    line = Some(dir.to_owned());
                    break;
                }
            }
            shown.insert(line.unwrap_or(file));
        }
        shown.into_iter().collect()
    }
}

/// One open repository kept across calls (opening costs a discovery and a
/// config read; the object cache stays warm). libgit2 handles are not `Sync`,
/// so calls take turns.
#[derive(Default)]
pub struct RepoCache {
    slot: std::sync::Mutex<Option<Repo>>,
    /// A second handle, lent to a helper thread for work split in two.
    spare: std::sync::Mutex<Option<Repo>>,
    /// The last HEAD-to-index comparison and what it was made from.
    staged: std::sync::Mutex<Option<(Vec<u8>, Vec<StagedDelta>)>>,
    /// The index entries grouped by folder for the work-tree scan.
    pub scan: crate::git_worktree::ScanCache,
}

/// One staged change (HEAD against the index), as git_status reports it.
#[derive(Clone)]
pub struct StagedDelta {
    /// Repository path (the new path for renames).
    pub path: String,
    pub status: git2::Delta,
    /// Repository path before a rename.
    pub renamed_from: Option<String>,
}

impl RepoCache {
    /// Runs `f` on the workspace's repository, opening it when needed. If `f`
    /// fails on a cached handle (the repository was replaced), it is reopened
    /// and `f` runs once more.
    pub fn with<T>(&self, root: &Path, f: impl Fn(&Repo) -> Result<T, ToolError>) -> Result<T, ToolError> {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(repo) = slot.as_ref() {
            match f(repo) {
                Ok(value) => return Ok(value),
                Err(_) => *slot = None,
            }
        }
        let repo = Repo::open(root)?;
        let result = f(&repo);
        *slot = Some(repo);
        result
    }

    /// Work split in two: `mine` on this thread, `theirs` on a helper thread
    /// with the spare repository handle (opened when needed, kept for the
    /// next call). The results are concatenated, `mine` first; `what` names
    /// the work in the error when the helper panics.
    pub fn split_in_two<T: Send>(
        &self,
        root: &Path,
        what: &str,
        mine: impl FnOnce() -> Result<Vec<T>, ToolError>,
        theirs: impl FnOnce(&Repo) -> Result<Vec<T>, ToolError> + Send,
    ) -> Result<Vec<T>, ToolError> {
        let cached = self.spare.lock().unwrap_or_else(|p| p.into_inner()).take();
        let spare = match cached {
            Some(repo) => repo,
            None => Repo::open(root)?,
        };
        let (mine, (spare, theirs)) = std::thread::scope(|scope| {
            let helper = scope.spawn(move || {
                let result = theirs(&spare);
                (spare, result)
            });
            let mine = mine();
            let theirs = helper
                .join()
                .map_err(|_| ToolError::new(format!("internal error: a {what} thread panicked")));
            theirs.map(|t| (mine, t))
        })?;
        *self.spare.lock().unwrap_or_else(|p| p.into_inner()) = Some(spare);
        let mut all = mine?;
        all.extend(theirs?);
        Ok(all)
    }

    /// The staged changes remembered for `key`, if the last ones were made from it.
    pub fn staged(&self, key: &[u8]) -> Option<Vec<StagedDelta>> {
        let slot = self.staged.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().filter(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    pub fn remember_staged(&self, key: Vec<u8>, deltas: Vec<StagedDelta>) {
        *self.staged.lock().unwrap_or_else(|p| p.into_inner()) = Some((key, deltas));
    }
}

/// What identifies one version of the index file: its inode, size, times and
/// the checksum git writes at its end. Read *before* the index is loaded, so a
/// result computed from a newer index is never filed under an older stamp.
/// `None` when there is no index file (then nothing is remembered).
#[cfg(unix)]
pub fn index_stamp(repo: &Repository) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;
    let mut file = std::fs::File::open(repo.path().join("index")).ok()?;
    let m = file.metadata().ok()?;
    let mut stamp = Vec::with_capacity(80);
    for n in [
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime() as u64,
        m.mtime_nsec() as u64,
        m.ctime() as u64,
        m.ctime_nsec() as u64,
    ] {
        stamp.extend_from_slice(&n.to_le_bytes());
    }
    let mut checksum = [0u8; 32];
    let tail = 32.min(m.size()) as i64;
    file.seek(SeekFrom::End(-tail)).ok()?;
    file.read_exact(&mut checksum[..tail as usize]).ok()?;
    stamp.extend_from_slice(&checksum);
    Some(stamp)
}

#[cfg(not(unix))]
pub fn index_stamp(_: &Repository) -> Option<Vec<u8>> {
    None
}

/// Maps a libgit2 error to a readable tool error.
pub fn git_error(context: &str, e: git2::Error) -> ToolError {
    ToolError::new(format!("{context}: {}", e.message()))
}

/// Settings that stop the git *command* (which `shell_exec` may run) from
/// starting programs named by the repository's own config. They are given to
/// git through `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`, which
/// win over the repository's config: no fsmonitor, hooks, pager, ssh, or
/// network transport; and every filter and textconv driver the repository
/// config defines becomes `cat`. A long-running filter `process` cannot be made
/// harmless that way, so such a repository is refused.
pub fn safe_cli_config(root: &Path) -> Result<Vec<(String, String)>, String> {
    let mut pairs: Vec<(String, String)> = [
        ("core.fsmonitor", "false"),
        ("core.hooksPath", "/dev/null"),
        ("core.pager", "cat"),
        ("core.sshCommand", "false"),
        ("core.askPass", "false"),
        ("gpg.program", "false"),
        ("protocol.allow", "never"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let Ok(repo) = Repository::open_ext(root, RepositoryOpenFlags::empty(), std::iter::empty::<&Path>()) else {
        return Ok(pairs);
    };
    let Ok(local) = repo.config().and_then(|c| c.open_level(git2::ConfigLevel::Local)) else {
        return Ok(pairs);
    };
    let Ok(mut entries) = local.entries(None) else {
        return Ok(pairs);
    };
    while let Some(Ok(entry)) = entries.next() {
        let Ok(name) = entry.name() else { continue };
        let lower = name.to_ascii_lowercase();
        let converts = (lower.starts_with("filter.") && (lower.ends_with(".clean") || lower.ends_with(".smudge")))
            || (lower.starts_with("diff.") && lower.ends_with(".textconv"));
        let neutral = if converts {
            "cat"
        } else if lower.starts_with("diff.") && lower.ends_with(".command") {
            "true"
        } else if lower.starts_with("filter.") && lower.ends_with(".process") {
            return Err(format!(
                "the repository's config defines the filter process `{name}`, which git would start; remove it from .git/config to use git through shell_exec (git_status and git_diff run no programs)"
            ));
        } else {
            continue;
        };
        pairs.push((name.to_owned(), neutral.to_owned()));
    }
    Ok(pairs)
}
