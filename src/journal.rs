//! Crash-atomic multi-file commits: a small journal written before the first
//! rename, so that a commit cut short by a crash (SIGKILL, power loss) is
//! undone at the next start and the workspace never holds some files new and
//! some old.
//!
//! A commit (see `Plan::commit` in `src/patch/`) stages every new file as a
//! temp file first. With more than one change, [`Journal::begin`] then keeps
//! each file it will replace or delete under a second name (a hard link, or a
//! copy where links are not supported), writes the list of (target, staged,
//! kept) to a journal file in the journal folder, and makes all of it durable
//! (fsync of the files and their folders) before the commit's first rename.
//! [`Journal::finish`] makes the renames durable, removes the journal, then
//! the kept files. While it runs, the committing process holds a lock on the
//! journal file.
//!
//! [`recover`] runs at server start, before stale temp files are swept: each
//! journal whose lock is free belongs to a commit that never answered, so it
//! is undone (kept files renamed back, files the commit created removed,
//! staged files removed) and the journal deleted. A commit that never
//! answered did not happen; a retry of the same call then applies cleanly.
//!
//! Test hook: `EXECLAYER_TEST_CRASH_AT_RENAME=N` makes the process SIGKILL
//! itself before the N-th rename or deletion of a journaled commit (N one past
//! the last: after every change, before the journal is removed).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

/// The test hook's variable.
pub const CRASH_AT_RENAME_VAR: &str = "EXECLAYER_TEST_CRASH_AT_RENAME";

const PREFIX: &str = "commit-";
const SUFFIX: &str = ".journal";

/// Workspace roots and the journal folder of each.
static FOLDERS: RwLock<BTreeMap<PathBuf, PathBuf>> = RwLock::new(BTreeMap::new());

/// The journal folder for a server whose audit log is at `audit_log`.
pub fn folder_for(audit_log: &Path) -> PathBuf {
    audit_log
        .parent()
        .map(|p| p.join("journal"))
        .unwrap_or_else(|| PathBuf::from("journal"))
}

/// Commits under `root` (canonical) journal into `folder` from now on.
pub fn register(root: &Path, folder: PathBuf) {
    FOLDERS
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(root.to_path_buf(), folder);
}

fn folder_of(target: &Path) -> Option<PathBuf> {
    let folders = FOLDERS.read().unwrap_or_else(|p| p.into_inner());
    folders
        .iter()
        .filter(|(root, _)| target.starts_with(root))
        .max_by_key(|(root, _)| root.as_os_str().len())
        .map(|(_, folder)| folder.clone())
}

/// One change of a commit, as the journal records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    /// The file changed (hex of its path bytes, so any name round-trips).
    target: String,
    /// The staged new content; absent for a deletion.
    #[serde(skip_serializing_if = "Option::is_none")]
    staged: Option<String>,
    /// The old content, kept under another name; absent when the file did not exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    kept: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    version: u32,
    entries: Vec<Entry>,
}

/// A journaled commit in progress; [`Journal::finish`] ends it.
#[derive(Debug)]
pub struct Journal {
    /// The journal file and its lock; `None` when the commit needs no journal.
    file: Option<(PathBuf, File)>,
    kept: Vec<PathBuf>,
    folders: BTreeSet<PathBuf>,
    step: usize,
}

impl Journal {
    /// Journals a commit that will rename each `(staged, target)` and delete
    /// each of `deletions`, and makes it durable. A commit of one change (one
    /// rename is atomic already), or outside any registered workspace, gets
    /// no journal. An error means nothing was changed.
    pub fn begin<'a>(
        renames: &[(PathBuf, PathBuf)],
        deletions: impl IntoIterator<Item = &'a Path>,
    ) -> io::Result<Self> {
        let deletions: Vec<&Path> = deletions.into_iter().collect();
        let mut journal = Self {
            file: None,
            kept: Vec::new(),
            folders: BTreeSet::new(),
            step: 0,
        };
        let first = renames.first().map(|(_, t)| t.as_path()).or(deletions.first().copied());
        let folder = match first.and_then(folder_of) {
            Some(folder) if renames.len() + deletions.len() > 1 => folder,
            _ => return Ok(journal),
        };
        let mut entries = Vec::new();
        let changes = renames
            .iter()
            .map(|(staged, target)| (target.as_path(), Some(staged.as_path())))
            .chain(deletions.iter().map(|t| (*t, None)));
        for (target, staged) in changes {
            let kept = match keep(target) {
                Ok(kept) => kept,
                Err(e) => {
                    journal.remove_kept();
                    return Err(e);
                }
            };
            if let Some(k) = &kept {
                journal.kept.push(k.clone());
            }
            if let Some(dir) = target.parent() {
                journal.folders.insert(dir.to_path_buf());
            }
            entries.push(Entry {
                target: encode(target),
                staged: staged.map(encode),
                kept: kept.as_deref().map(encode),
            });
        }
        let written = (|| -> io::Result<(PathBuf, File)> {
            // Staged and kept files must be on disk before the journal names them.
            for dir in &journal.folders {
                sync_dir(dir)?;
            }
            std::fs::create_dir_all(&folder)?;
            let path = folder.join(format!("{PREFIX}{}{SUFFIX}", crate::policy::approvals::new_id()));
            let mut file = OpenOptions::new().write(true).create_new(true).open(&path)?;
            lock(&file, true)?;
            let record = Record { version: 1, entries };
            file.write_all(&serde_json::to_vec(&record)?)?;
            file.sync_all()?;
            sync_dir(&folder)?;
            Ok((path, file))
        })();
        match written {
            Ok(file) => {
                journal.file = Some(file);
                Ok(journal)
            }
            Err(e) => {
                journal.remove_kept();
                Err(e)
            }
        }
    }

    /// Called before each rename or deletion of the commit (the test hook).
    pub fn step(&mut self) {
        if self.file.is_some() {
            self.step += 1;
            crash_point(self.step);
        }
    }

    /// Ends the commit (done, or put back by the caller): makes the renames
    /// durable, removes the journal, then the kept old contents.
    pub fn finish(mut self) {
        let Some((path, file)) = self.file.take() else { return };
        crash_point(self.step + 1);
        for dir in &self.folders {
            let _ = sync_dir(dir);
        }
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(journal = %path.display(), error = %e, "cannot remove a finished commit's journal");
        } else if let Some(folder) = path.parent() {
            let _ = sync_dir(folder);
        }
        drop(file);
        self.remove_kept();
    }

    fn remove_kept(&mut self) {
        for kept in self.kept.drain(..) {
            let _ = std::fs::remove_file(kept);
        }
    }
}

/// Keeps `target`'s current content under a sibling temp name; `None` when
/// it does not exist.
fn keep(target: &Path) -> io::Result<Option<PathBuf>> {
    if std::fs::symlink_metadata(target).is_err() {
        return Ok(None);
    }
    let dir = target.parent().unwrap_or(Path::new("."));
    let mut name = std::ffi::OsString::from(".");
    name.push(target.file_name().unwrap_or_default());
    name.push(format!(
        ".{}.kept{}",
        crate::policy::approvals::new_id(),
        crate::fsutil::TEMP_SUFFIX
    ));
    let kept = dir.join(name);
    if std::fs::hard_link(target, &kept).is_err() {
        // File systems without hard links: a durable copy.
        std::fs::copy(target, &kept)?;
        File::open(&kept)?.sync_all()?;
    }
    Ok(Some(kept))
}

/// The test hook: SIGKILL this process at step `n` when asked to.
fn crash_point(n: usize) {
    if let Ok(at) = std::env::var(CRASH_AT_RENAME_VAR)
        && at.trim().parse() == Ok(n)
    {
        eprintln!("{CRASH_AT_RENAME_VAR}={n}: killing this process before step {n} of a commit");
        #[cfg(unix)]
        // SAFETY: signalling our own process.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
}

/// What [`recover`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Commits undone.
    pub undone: usize,
    /// Journals left in place: still locked by a running process, or not undone (with why).
    pub skipped: Vec<String>,
}

/// Undoes every commit in `folder` whose process is gone, then removes its
/// journal. Run at start, before stale temp files are swept.
pub fn recover(folder: &Path) -> Recovery {
    let mut out = Recovery::default();
    let Ok(entries) = std::fs::read_dir(folder) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with(PREFIX) && name.ends_with(SUFFIX)) {
            continue;
        }
        let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else {
            continue;
        };
        if lock(&file, false).is_err() {
            out.skipped
                .push(format!("{}: in use by a running commit", path.display()));
            continue;
        }
        let text = std::fs::read(&path).unwrap_or_default();
        match serde_json::from_slice::<Record>(&text) {
            // Cut short while being written: no rename had started.
            Err(_) => {}
            Ok(record) => {
                if let Err(e) = undo(&record.entries) {
                    out.skipped.push(format!("{}: {e}", path.display()));
                    continue;
                }
                out.undone += 1;
                tracing::warn!(
                    journal = %path.display(),
                    files = record.entries.len(),
                    "undid a multi-file change that a crash interrupted"
                );
            }
        }
        let _ = std::fs::remove_file(&path);
        let _ = sync_dir(folder);
    }
    out
}

/// Puts every entry's target back as it was before the commit.
fn undo(entries: &[Entry]) -> io::Result<()> {
    let mut folders = BTreeSet::new();
    for e in entries {
        let target = decode(&e.target)?;
        let staged = e.staged.as_deref().map(decode).transpose()?;
        let kept = e.kept.as_deref().map(decode).transpose()?;
        check_sibling(&target, staged.as_deref())?;
        check_sibling(&target, kept.as_deref())?;
        match &kept {
            Some(kept) if kept.exists() => {
                std::fs::rename(kept, &target)?;
                // Renaming a link over another name of the same file does nothing.
                let _ = std::fs::remove_file(kept);
            }
            // Put back by an earlier, interrupted recovery.
            Some(_) => {}
            None => match std::fs::remove_file(&target) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            },
        }
        if let Some(staged) = &staged {
            let _ = std::fs::remove_file(staged);
        }
        if let Some(dir) = target.parent() {
            folders.insert(dir.to_path_buf());
        }
    }
    for dir in folders {
        sync_dir(&dir)?;
    }
    Ok(())
}

/// A journal names only temp files beside their target: anything else was not
/// written by a commit, and is not touched.
fn check_sibling(target: &Path, other: Option<&Path>) -> io::Result<()> {
    let Some(other) = other else { return Ok(()) };
    let name = other
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if other.parent() == target.parent()
        && target.is_absolute()
        && name.starts_with('.')
        && name.ends_with(crate::fsutil::TEMP_SUFFIX)
    {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a temp file beside {}", other.display(), target.display()),
        ))
    }
}

fn encode(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    hex::encode(path.as_os_str().as_bytes())
}

fn decode(text: &str) -> io::Result<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    hex::decode(text)
        .map(|bytes| PathBuf::from(std::ffi::OsString::from_vec(bytes)))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// An exclusive lock on the journal (`wait`: block until free).
fn lock(file: &File, wait: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap().join("ws");
        let folder = dir.path().canonicalize().unwrap().join("journal");
        std::fs::create_dir_all(&root).unwrap();
        register(&root, folder.clone());
        (dir, root, folder)
    }

    /// A journaled commit cut short after its first rename is undone by
    /// recovery: the replaced file, the deleted file and the created file are
    /// back as they were, and no temp file or journal is left.
    #[test]
    fn recovery_undoes_a_commit_cut_short() {
        let (_dir, root, folder) = setup();
        let a = root.join("a.txt");
        let b = root.join("b.txt");
        let c = root.join("c.txt");
        std::fs::write(&a, "old a").unwrap();
        std::fs::write(&b, "old b").unwrap();
        let sa = crate::fsutil::stage_file(&a, b"new a").unwrap();
        let sc = crate::fsutil::stage_file(&c, b"new c").unwrap();
        let mut journal = Journal::begin(&[(sa.clone(), a.clone()), (sc, c.clone())], [b.as_path()]).unwrap();
        std::fs::rename(&sa, &a).unwrap();
        std::fs::remove_file(&b).unwrap();
        // The process stops here, before `finish`.
        let (_, lock) = journal.file.take().unwrap();
        // While its lock is held, recovery leaves the journal alone.
        let r = recover(&folder);
        assert_eq!((r.undone, r.skipped.len()), (0, 1), "{r:?}");
        drop(lock);
        drop(journal);
        let r = recover(&folder);
        assert_eq!(
            r,
            Recovery {
                undone: 1,
                skipped: vec![]
            }
        );
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old a");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "old b");
        assert!(!c.exists());
        let left: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 0);
    }

    #[test]
    fn one_change_needs_no_journal_and_foreign_temp_names_are_refused() {
        let (_dir, root, folder) = setup();
        let a = root.join("a.txt");
        std::fs::write(&a, "old").unwrap();
        let sa = crate::fsutil::stage_file(&a, b"new").unwrap();
        let journal = Journal::begin(&[(sa.clone(), a.clone())], []).unwrap();
        assert!(journal.file.is_none());
        journal.finish();
        assert!(!folder.exists() || std::fs::read_dir(&folder).unwrap().count() == 0);
        let _ = std::fs::remove_file(sa);
        assert!(check_sibling(&a, Some(&root.join("other.txt"))).is_err());
        assert!(check_sibling(&a, Some(Path::new("/etc/.passwd.x.execlayer.tmp"))).is_err());
    }
}
