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
}

/// One open repository kept across calls (opening costs a discovery and a
/// config read; the object cache stays warm). libgit2 handles are not `Sync`,
/// so calls take turns.
#[derive(Default)]
pub struct RepoCache {
    slot: std::sync::Mutex<Option<Repo>>,
    /// A second handle, lent to a helper thread for work split in two.
    spare: std::sync::Mutex<Option<Repo>>,
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

    /// Lends the spare handle (opening it when needed); give it back with
    /// [`RepoCache::give_back`].
    pub fn lend_spare(&self, root: &Path) -> Result<Repo, ToolError> {
        let cached = self.spare.lock().unwrap_or_else(|p| p.into_inner()).take();
        match cached {
            Some(repo) => Ok(repo),
            None => Repo::open(root),
        }
    }

    pub fn give_back(&self, repo: Repo) {
        *self.spare.lock().unwrap_or_else(|p| p.into_inner()) = Some(repo);
    }
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

/// The index entries whose files may differ from the index, found the way
/// `git diff` finds them: from the stat data the index keeps for each file
/// (mtime, ctime, size, inode, mode), one `lstat` per entry, split across
/// the machine's cores. An entry whose stat data match, and which is not
/// "racily clean" (changed within the same second the index was written), is
/// unchanged without reading the file. Only entries under one of `prefixes`
/// (repository paths; empty = all) are looked at. The answer is a superset of
/// what libgit2's work-tree diff reports, so that diff can be limited to it;
/// `None` when the stat data cannot be used (not a Unix system, no index file).
pub fn stat_candidates(repo: &git2::Repository, index: &git2::Index, prefixes: &[String]) -> Option<Vec<Vec<u8>>> {
    stat_scan::candidates(repo, index, prefixes)
}

#[cfg(unix)]
mod stat_scan {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    /// Index entry flag bits (git's index format).
    const STAGE_MASK: u16 = 0x3000;
    const EXTENDED_FLAGS: u16 = 0x6000; // skip-worktree, intent-to-add
    const GITLINK: u32 = 0o160000;

    struct Stat {
        path: Vec<u8>,
        mtime: (i64, u32),
        ctime: (i64, u32),
        size: u32,
        ino: u32,
        mode: u32,
        flagged: bool,
    }

    pub fn candidates(repo: &git2::Repository, index: &git2::Index, prefixes: &[String]) -> Option<Vec<Vec<u8>>> {
        let workdir = repo.workdir()?.to_path_buf();
        let index_mtime = std::fs::metadata(repo.path().join("index"))
            .ok()
            .map(|m| (m.mtime(), m.mtime_nsec() as u32));
        let Some(index_mtime) = index_mtime else {
            // No index file: every entry (there are none on disk) is a candidate.
            return Some(index.iter().map(|e| e.path).collect());
        };
        let wanted = |path: &[u8]| {
            prefixes.is_empty()
                || prefixes.iter().any(|p| {
                    let p = p.trim_end_matches('/').as_bytes();
                    p.is_empty() || path == p || (path.starts_with(p) && path.get(p.len()) == Some(&b'/'))
                })
        };
        let entries: Vec<Stat> = index
            .iter()
            .filter(|e| wanted(&e.path))
            .map(|e| Stat {
                mtime: (i64::from(e.mtime.seconds()), e.mtime.nanoseconds()),
                ctime: (i64::from(e.ctime.seconds()), e.ctime.nanoseconds()),
                size: e.file_size,
                ino: e.ino,
                mode: e.mode,
                flagged: e.flags & STAGE_MASK != 0 || e.flags_extended & EXTENDED_FLAGS != 0 || e.mode == GITLINK,
                path: e.path,
            })
            .collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
        let chunk = entries.len().div_ceil(threads).max(1);
        let check = |part: &[Stat]| -> Vec<Vec<u8>> {
            part.iter()
                .filter(|e| changed(&workdir, e, index_mtime))
                .map(|e| e.path.clone())
                .collect()
        };
        if threads == 1 || entries.len() < 2_000 {
            return Some(check(&entries));
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = entries
                .chunks(chunk)
                .skip(1)
                .map(|part| scope.spawn(move || check(part)))
                .collect();
            let mut out = check(&entries[..chunk.min(entries.len())]);
            for h in handles {
                // A thread that panicked decided nothing: fall back to the full diff.
                out.extend(h.join().ok()?);
            }
            Some(out)
        })
    }

    fn changed(workdir: &Path, e: &Stat, index_mtime: (i64, u32)) -> bool {
        if e.flagged {
            return true;
        }
        let path = workdir.join(std::ffi::OsStr::from_bytes(&e.path));
        let Ok(m) = std::fs::symlink_metadata(&path) else {
            return true; // deleted, or unreadable: let the diff say which
        };
        let mtime = (m.mtime(), m.mtime_nsec() as u32);
        let ctime = (m.ctime(), m.ctime_nsec() as u32);
        let same_time = |index: (i64, u32), disk: (i64, u32)| index.0 == disk.0 && (index.1 == 0 || index.1 == disk.1);
        let type_bits = m.mode() & 0o170000;
        let index_type = e.mode & 0o170000;
        let mode_same = type_bits == index_type && (type_bits != 0o100000 || (m.mode() & 0o100) == (e.mode & 0o100));
        let stat_same = same_time(e.mtime, mtime)
            && same_time(e.ctime, ctime)
            && e.size == m.size() as u32
            && (e.ino == 0 || e.ino == m.ino() as u32)
            && mode_same;
        // Racily clean: written in the same instant as the index, or after it.
        let racy = e.mtime >= index_mtime;
        !stat_same || racy
    }
}

#[cfg(not(unix))]
mod stat_scan {
    pub fn candidates(_: &git2::Repository, _: &git2::Index, _: &[String]) -> Option<Vec<Vec<u8>>> {
        None
    }
}
