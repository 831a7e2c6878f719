//! Small file-system helpers shared by tools and the policy store.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temp file in the same directory,
/// flushed to disk, then renamed over the target. A reader sees the old content
/// or the new, never a mix. Keeps the target's permissions when it exists.
pub fn write_atomic(path: &Path, bytes: &[u8], create_dirs: bool) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent directory"))?;
    if !create_dirs && !dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("directory {} does not exist", dir.display()),
        ));
    }
    let tmp = stage_file(path, bytes)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename itself durable.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Suffix of the temp files that atomic writes stage beside their target.
pub const TEMP_SUFFIX: &str = ".execlayer.tmp";

/// Where execlayer may have left temp files: a small journal per workspace.
///
/// A crash between staging a temp file and renaming it leaves the temp file
/// behind. Rather than walk the whole workspace at every start to find such
/// files (an IDE starts the server often, and a walk of 100k files costs about
/// 0.1 s of CPU), each server records the directories it stages files in: one
/// line per directory, appended the first time that process stages there. At
/// start the journal is taken (renamed aside, so lines appended meanwhile by
/// another server on the same workspace go to a fresh journal), the listed
/// directories inside the workspace are swept, and directories still holding a
/// temp file too young to remove are written back for the next start. Start-up
/// work is therefore proportional to the directories written to since the last
/// start, not to the size of the workspace.
pub struct StagingJournal {
    root: std::path::PathBuf,
    file: std::path::PathBuf,
    seen: std::sync::Mutex<std::collections::HashSet<std::path::PathBuf>>,
}

static JOURNALS: std::sync::Mutex<Vec<std::sync::Arc<StagingJournal>>> = std::sync::Mutex::new(Vec::new());

impl StagingJournal {
    /// The journal of workspace `root`, kept in `state_dir` under a name
    /// derived from the root; registered so that [`stage_file`] records in it.
    pub fn register(root: &Path, state_dir: &Path) -> std::sync::Arc<Self> {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(root.as_os_str().as_encoded_bytes());
        let name = format!("staged-dirs-{}.txt", hex::encode(&digest[..8]));
        let journal = std::sync::Arc::new(Self {
            root: root.to_path_buf(),
            file: state_dir.join(name),
            seen: std::sync::Mutex::new(std::collections::HashSet::new()),
        });
        let mut all = JOURNALS.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|j| j.root != journal.root);
        all.push(journal.clone());
        journal
    }

    /// The journal file's path.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// Records `dir` (once per process) before a temp file is staged there.
    fn record(&self, dir: &Path) -> io::Result<()> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(dir) {
            return Ok(());
        }
        self.append(dir)?;
        seen.insert(dir.to_path_buf());
        Ok(())
    }

    fn append(&self, dir: &Path) -> io::Result<()> {
        if let Some(parent) = self.file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut line = dir.as_os_str().as_encoded_bytes().to_vec();
        line.push(b'\n');
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.file)?
            .write_all(&line)
    }

    /// Removes temp files (`.NAME.<id>.execlayer.tmp`) older than `min_age`
    /// from the directories the journal lists; returns how many. Only
    /// directories inside the workspace are touched.
    pub fn sweep(&self, min_age: std::time::Duration) -> usize {
        let taken = self.file.with_extension("sweeping");
        if std::fs::rename(&self.file, &taken).is_err() {
            return 0; // no journal: nothing was staged since the last sweep
        }
        let listed = std::fs::read(&taken).unwrap_or_default();
        let mut dirs: Vec<&[u8]> = listed.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        dirs.sort_unstable();
        dirs.dedup();
        let mut removed = 0;
        for line in dirs {
            let dir = Path::new(os_str_from_bytes(line));
            if !dir.starts_with(&self.root) {
                continue;
            }
            let (gone, young) = remove_stale_in(dir, min_age);
            removed += gone;
            if young {
                let _ = self.append(dir);
            }
        }
        let _ = std::fs::remove_file(&taken);
        removed
    }
}

#[cfg(unix)]
fn os_str_from_bytes(bytes: &[u8]) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(bytes)
}

/// Removes the stale temp files directly in `dir`; returns how many, and
/// whether a temp file too young to remove remains.
fn remove_stale_in(dir: &Path, min_age: std::time::Duration) -> (usize, bool) {
    let (mut removed, mut young) = (0, false);
    let now = std::time::SystemTime::now();
    let Ok(list) = std::fs::read_dir(dir) else {
        return (0, false);
    };
    for entry in list.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with('.') && name.ends_with(TEMP_SUFFIX)) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let old_enough = meta
            .modified()
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age >= min_age);
        if !old_enough {
            young = true;
        } else if std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    (removed, young)
}

/// Records `dir` in the journal of the workspace that holds it, if any.
fn record_staging_dir(dir: &Path) {
    let journal = {
        let all = JOURNALS.lock().unwrap_or_else(|p| p.into_inner());
        all.iter().find(|j| dir.starts_with(&j.root)).cloned()
    };
    if let Some(journal) = journal
        && let Err(e) = journal.record(dir)
    {
        tracing::warn!(error = %e, journal = %journal.file.display(), "cannot record a staging directory; a crash now could leave a temp file that no start-up sweep finds");
    }
}

/// Whether `bytes` look binary: a NUL byte in the first 8 KiB (git's rule).
pub fn looks_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8192)].contains(&0)
}

/// Reads at most the first `limit` bytes of a file.
pub fn read_prefix(path: &Path, limit: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(limit.min(64 * 1024));
    File::open(path)?.take(limit as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Writes `bytes` to a new temp file beside `path` (creating its directory),
/// flushed to disk, and returns the temp file's path for a later rename.
pub fn stage_file(path: &Path, bytes: &[u8]) -> io::Result<std::path::PathBuf> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent directory"))?;
    std::fs::create_dir_all(dir)?;
    record_staging_dir(dir);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mode = std::fs::metadata(path).ok().map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode()
    });
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}{TEMP_SUFFIX}", crate::policy::approvals::new_id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode.unwrap_or(0o644))
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_keeps_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/file.txt");
        write_atomic(&p, b"one", true).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        write_atomic(&p, b"two", false).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o755);
        let leftovers: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
        assert!(write_atomic(&dir.path().join("missing/x"), b"x", false).is_err());
    }
}
