//! The work-tree half of `git status` and `git diff`, driven by the index's
//! stat data the way the git command does it, instead of libgit2's walk of the
//! whole work tree (which `lstat`s every path from the root and matches each
//! one against the ignore rules).
//!
//! For each folder that holds tracked files: one `openat2` (no symbolic link
//! followed), one `readdir` (names and types, for untracked files), and one
//! `fstatat` per tracked name relative to the folder, folders shared out over
//! the cores. A tracked file is:
//! - unchanged when its stat data (mtime, ctime, size, inode, mode, owner) match
//!   the index and it is not "racily clean" (written in the same instant as the
//!   index, or after it);
//! - modified when it is still a regular file (or symbolic link) with the same
//!   mode and a different size than the index recorded, as libgit2 decides it;
//! - deleted when it is gone;
//! - otherwise uncertain: libgit2 decides on just those paths.
//!
//! Names in a folder that the index does not hold are untracked candidates;
//! only those are checked against the ignore rules (by libgit2, so the rules
//! are exactly the ones its own status uses). An untracked folder is listed
//! file by file (as `git status -uall`), a nested repository as `name/`.
//!
//! Whenever the layout is one this scan does not model (a tracked file that
//! became a folder, a tracked folder that became a file or link, a
//! case-insensitive repository, a kernel without `openat2`), [`scan`] answers
//! `None` and the caller runs libgit2's full scan.

/// Why a tracked path is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    /// `plain`: a regular, non-executable file in the index and on disk.
    Modified {
        plain: bool,
    },
    Deleted,
}

/// What the scan found, as repository paths.
#[derive(Debug, Default)]
pub struct Scan {
    /// Tracked paths decided from stat data alone.
    pub decided: Vec<(Vec<u8>, Decided)>,
    /// Tracked paths only their content (or libgit2's rules) can settle.
    pub uncertain: Vec<Vec<u8>>,
    /// Untracked, not ignored files; a nested repository as `name/`.
    pub untracked: Vec<Vec<u8>>,
    /// The index holds a `.gitattributes` file (anywhere, not only under the prefixes).
    pub attributes_tracked: bool,
}

/// What the scan prepares from the index (entries grouped by folder), kept
/// for as long as the index file stays the same.
#[derive(Default)]
pub struct ScanCache {
    slot: std::sync::Mutex<Option<(Vec<u8>, std::sync::Arc<imp::Prepared>)>>,
}

/// Scans the tracked files under `prefixes` (repository paths, `""` or ending
/// in `/`; empty = all) and, with `untracked`, the untracked files under the
/// single prefix given. `stamp` identifies the index file as it was before
/// `index` was loaded ([`crate::git::index_stamp`]); with it, the preparation
/// is reused while the stamp stays the same. `None`: use libgit2's full scan.
pub fn scan(
    repo: &git2::Repository,
    index: &git2::Index,
    prefixes: &[String],
    untracked: bool,
    cache: &ScanCache,
    stamp: Option<&[u8]>,
) -> Option<Scan> {
    if untracked && prefixes.len() != 1 {
        return None;
    }
    let key = stamp.map(|s| {
        let mut k = s.to_vec();
        for p in prefixes {
            k.push(0);
            k.extend_from_slice(p.as_bytes());
        }
        k
    });
    let cached = key.as_ref().and_then(|k| {
        let slot = cache.slot.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().filter(|(have, _)| have == k).map(|(_, p)| p.clone())
    });
    let prepared = match cached {
        Some(p) => p,
        None => {
            let p = std::sync::Arc::new(imp::prepare(repo, index, prefixes)?);
            if let Some(k) = key {
                *cache.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some((k, p.clone()));
            }
            p
        }
    };
    imp::scan(repo, &prepared, untracked)
}

/// The bytes of a work-tree file (a repository path), opened from the work
/// tree's root without following any symbolic link; `None` when that fails or
/// the file is over 16 MiB.
pub fn read_file(workdir: &std::path::Path, path: &[u8]) -> Option<Vec<u8>> {
    imp::read_file(workdir, path)
}

#[cfg(target_os = "linux")]
mod imp {
    use std::collections::HashMap;
    use std::ffi::{CStr, CString};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::{Decided, Scan};

    /// Tracked files per scanning thread.
    const PER_THREAD: usize = 4_000;
    /// Largest file [`read_file`] reads.
    const MAX_READ: u64 = 16 * 1024 * 1024;
    const STAGE_MASK: u16 = 0x3000;
    const ASSUME_VALID: u16 = 0x8000;
    const EXTENDED_FLAGS: u16 = 0x6000; // skip-worktree, intent-to-add
    const TYPE_MASK: u32 = 0o170000;
    const REGULAR: u32 = 0o100000;
    const SYMLINK: u32 = 0o120000;
    const GITLINK: u32 = 0o160000;

    /// One index entry, as much as the scan needs.
    struct Tracked {
        path: Vec<u8>,
        /// Where the file name starts in `path`.
        name_at: usize,
        mtime: (i64, u32),
        ctime: (i64, u32),
        size: u32,
        ino: u32,
        uid: u32,
        gid: u32,
        mode: u32,
        /// Conflicted, assume-valid, skip-worktree, intent-to-add or a submodule: libgit2 decides.
        flagged: bool,
    }

    impl Tracked {
        fn name(&self) -> &[u8] {
            &self.path[self.name_at..]
        }
    }

    /// A folder holding tracked files (or the scan's root).
    #[derive(Default)]
    struct Folder {
        /// Repository path without a trailing `/`; empty for the top level.
        path: Vec<u8>,
        /// Indices into the tracked entries directly inside, sorted by name.
        files: Vec<usize>,
        /// Names of folders inside that hold tracked files, sorted.
        folders: Vec<Vec<u8>>,
    }

    /// What one folder's scan found.
    #[derive(Default)]
    struct Found {
        decided: Vec<(Vec<u8>, Decided)>,
        uncertain: Vec<Vec<u8>>,
        /// Untracked names (files, and folders with a trailing `/`), not yet checked against ignore rules.
        candidates: Vec<Vec<u8>>,
    }

    /// The index entries under the scan's prefixes, grouped by folder.
    pub struct Prepared {
        tracked: Vec<Tracked>,
        folders: Vec<Folder>,
        workdir: std::path::PathBuf,
        /// The index file's mtime, for "racily clean" entries.
        index_mtime: (i64, u32),
        attributes_tracked: bool,
    }

    pub fn prepare(repo: &git2::Repository, index: &git2::Index, prefixes: &[String]) -> Option<Prepared> {
        let config = repo.config().ok()?;
        if config.get_bool("core.ignorecase").unwrap_or(false) {
            return None;
        }
        let workdir = repo.workdir()?.to_path_buf();
        // Taken after the caller loaded the index: a newer index file only
        // makes more entries racy.
        let index_mtime = std::fs::metadata(repo.path().join("index"))
            .ok()
            .map(|m| (m.mtime(), m.mtime_nsec() as u32))
            .unwrap_or((i64::MAX, u32::MAX));
        let wanted = |path: &[u8]| {
            prefixes.is_empty()
                || prefixes.iter().any(|p| {
                    let p = p.trim_end_matches('/').as_bytes();
                    p.is_empty() || path == p || (path.starts_with(p) && path.get(p.len()) == Some(&b'/'))
                })
        };
        let mut attributes_tracked = false;
        let tracked: Vec<Tracked> = index
            .iter()
            .inspect(|e| {
                attributes_tracked |= e.path.ends_with(b".gitattributes")
                    && (e.path.len() == 14 || e.path[..e.path.len() - 14].ends_with(b"/"));
            })
            .filter(|e| wanted(&e.path))
            .map(|e| Tracked {
                name_at: e.path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1),
                mtime: (i64::from(e.mtime.seconds()), e.mtime.nanoseconds()),
                ctime: (i64::from(e.ctime.seconds()), e.ctime.nanoseconds()),
                size: e.file_size,
                ino: e.ino,
                uid: e.uid,
                gid: e.gid,
                mode: e.mode,
                flagged: e.flags & (STAGE_MASK | ASSUME_VALID) != 0
                    || e.flags_extended & EXTENDED_FLAGS != 0
                    || e.mode & TYPE_MASK == GITLINK,
                path: e.path,
            })
            .collect();

        // Folders: every folder holding a tracked file, and, with one prefix,
        // their parents up to it (so untracked names beside them are seen).
        let root: Option<Vec<u8>> = match prefixes {
            [one] => Some(one.trim_end_matches('/').as_bytes().to_vec()),
            _ => None,
        };
        let mut folders: Vec<Folder> = Vec::new();
        let mut by_path: HashMap<Vec<u8>, usize> = HashMap::new();
        if let Some(root) = &root {
            by_path.insert(root.clone(), 0);
            folders.push(Folder {
                path: root.clone(),
                ..Folder::default()
            });
        }
        let mut last: Option<(Vec<u8>, usize)> = None;
        for (i, t) in tracked.iter().enumerate() {
            let dir = &t.path[..t.name_at.saturating_sub(1)];
            if let Some((path, at)) = &last
                && path.as_slice() == dir
            {
                folders[*at].files.push(i);
                continue;
            }
            if let Some(root) = &root
                && !(root.is_empty()
                    || dir == root.as_slice()
                    || (dir.starts_with(root) && dir.get(root.len()) == Some(&b'/')))
            {
                return None; // the prefix itself is a tracked file or submodule
            }
            let at = folder_at(&mut folders, &mut by_path, dir, root.as_deref());
            folders[at].files.push(i);
            last = Some((dir.to_vec(), at));
        }
        for f in &mut folders {
            f.files.sort_by(|a, b| tracked[*a].name().cmp(tracked[*b].name()));
            f.folders.sort();
            f.folders.dedup();
        }
        Some(Prepared {
            tracked,
            folders,
            workdir,
            index_mtime,
            attributes_tracked,
        })
    }

    pub fn scan(repo: &git2::Repository, prepared: &Prepared, untracked: bool) -> Option<Scan> {
        let Prepared {
            tracked,
            folders,
            workdir,
            index_mtime,
            attributes_tracked,
        } = prepared;
        let started = std::time::Instant::now();
        let rootfd = open_dir(None, workdir.as_os_str().as_bytes())?;
        let next = AtomicUsize::new(0);
        let give_up = AtomicBool::new(false);
        let results: Mutex<Vec<Found>> = Mutex::new(Vec::new());
        let work = || {
            let mut found = Found::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(folder) = folders.get(i) else { break };
                if give_up.load(Ordering::Relaxed)
                    || scan_folder(&rootfd, folder, tracked, *index_mtime, untracked, &mut found).is_none()
                {
                    give_up.store(true, Ordering::Relaxed);
                    break;
                }
            }
            results.lock().unwrap_or_else(|p| p.into_inner()).push(found);
        };
        // A second thread pays for itself from a few thousand files; below,
        // waiting for it to be scheduled on a busy machine costs more than it saves.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4)
            .min(tracked.len() / PER_THREAD + 1);
        if threads > 1 {
            std::thread::scope(|s| {
                for _ in 1..threads {
                    s.spawn(work);
                }
                work();
            });
        } else {
            work();
        }
        if give_up.load(Ordering::Relaxed) {
            return None;
        }
        let mut out = Scan {
            attributes_tracked: *attributes_tracked,
            ..Scan::default()
        };
        let mut candidates = Vec::new();
        for found in results.into_inner().unwrap_or_else(|p| p.into_inner()) {
            out.decided.extend(found.decided);
            out.uncertain.extend(found.uncertain);
            candidates.extend(found.candidates);
        }
        let folders_done = started.elapsed();
        if untracked {
            for c in candidates {
                untracked_under(repo, &rootfd, c, &mut out.untracked)?;
            }
        }
        tracing::debug!(
            folders_ms = folders_done.as_secs_f64() * 1e3,
            untracked_ms = (started.elapsed() - folders_done).as_secs_f64() * 1e3,
            "work-tree scan timings"
        );
        Some(out)
    }

    /// The folder record for `dir`, created (with its parents down from `root`) when new.
    fn folder_at(
        folders: &mut Vec<Folder>,
        by_path: &mut HashMap<Vec<u8>, usize>,
        dir: &[u8],
        root: Option<&[u8]>,
    ) -> usize {
        if let Some(&at) = by_path.get(dir) {
            return at;
        }
        let at = folders.len();
        folders.push(Folder {
            path: dir.to_vec(),
            ..Folder::default()
        });
        by_path.insert(dir.to_vec(), at);
        // Register in the parent folder, when the parent is inside the root.
        if !dir.is_empty() && root.is_some_and(|r| dir != r) {
            let (parent, name) = match dir.iter().rposition(|&b| b == b'/') {
                Some(i) => (&dir[..i], &dir[i + 1..]),
                None => (&dir[..0], dir),
            };
            let p = folder_at(folders, by_path, parent, root);
            folders[p].folders.push(name.to_vec());
        }
        at
    }

    /// Opens a folder below `at` (or an absolute path) without following any
    /// symbolic link on the way. `None` when it cannot be opened.
    fn open_dir(at: Option<&OwnedFd>, path: &[u8]) -> Option<OwnedFd> {
        open_dir_errno(at, path).ok()
    }

    fn open_dir_errno(at: Option<&OwnedFd>, path: &[u8]) -> Result<OwnedFd, i32> {
        let c = CString::new(if path.is_empty() { b".".to_vec() } else { path.to_vec() }).map_err(|_| libc::EINVAL)?;
        let flags = (libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
        let fd = match at {
            None => unsafe { libc::open(c.as_ptr(), flags as i32) },
            Some(dir) => {
                // SAFETY: open_how is plain data; all-zero is valid.
                let mut how: libc::open_how = unsafe { std::mem::zeroed() };
                how.flags = flags;
                how.resolve = libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_BENEATH;
                // SAFETY: `how` and `c` live through the call; the size is the struct's.
                unsafe {
                    libc::syscall(
                        libc::SYS_openat2,
                        dir.as_raw_fd(),
                        c.as_ptr(),
                        &how as *const libc::open_how,
                        std::mem::size_of::<libc::open_how>(),
                    ) as i32
                }
            }
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO));
        }
        // SAFETY: a descriptor just returned by the kernel, owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    pub fn read_file(workdir: &std::path::Path, path: &[u8]) -> Option<Vec<u8>> {
        use std::io::Read;
        let root = open_dir(None, workdir.as_os_str().as_bytes())?;
        let c = CString::new(path).ok()?;
        // SAFETY: open_how is plain data; all-zero is valid.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64;
        how.resolve = libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_BENEATH;
        // SAFETY: `how` and `c` live through the call; the size is the struct's.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            ) as i32
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: a descriptor just returned by the kernel, owned by nobody else.
        let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        // Large files are left to libgit2, which decides from the size alone
        // whether to load them (it calls files over its limit binary unread).
        if file.metadata().ok()?.len() > MAX_READ {
            return None;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        Some(bytes)
    }

    /// The names in a folder, in one buffer (no allocation per name).
    #[derive(Default)]
    struct Names {
        bytes: Vec<u8>,
        /// (start, end, d_type) of each name in `bytes`.
        spans: Vec<(usize, usize, u8)>,
    }

    impl Names {
        fn len(&self) -> usize {
            self.spans.len()
        }

        fn iter(&self) -> impl Iterator<Item = (&[u8], u8)> {
            self.spans.iter().map(|&(a, b, t)| (&self.bytes[a..b], t))
        }
    }

    /// The names in an open folder with their `d_type`, `.`, `..` and `.git` left out.
    fn read_names(dir: &OwnedFd) -> Option<Names> {
        // fdopendir takes the descriptor it is given: give it a duplicate.
        // SAFETY: fcntl on a descriptor we hold.
        let dup = unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return None;
        }
        // SAFETY: `dup` is ours; on failure it is closed here.
        let stream = unsafe { libc::fdopendir(dup) };
        if stream.is_null() {
            // SAFETY: `dup` is ours and not used after.
            unsafe { libc::close(dup) };
            return None;
        }
        let mut names = Names::default();
        loop {
            // SAFETY: `stream` is a valid DIR* until closedir below.
            let entry = unsafe { libc::readdir64(stream) };
            if entry.is_null() {
                break;
            }
            // SAFETY: readdir returned a valid entry whose name is NUL-terminated.
            let (name, kind) = unsafe { (CStr::from_ptr((*entry).d_name.as_ptr()).to_bytes(), (*entry).d_type) };
            if name == b"." || name == b".." || name == b".git" {
                continue;
            }
            let start = names.bytes.len();
            names.bytes.extend_from_slice(name);
            names.spans.push((start, names.bytes.len(), kind));
        }
        // SAFETY: closes `dup` too.
        unsafe { libc::closedir(stream) };
        Some(names)
    }

    /// `lstat` of a name inside an open folder.
    fn stat_at(dir: &OwnedFd, name: &[u8]) -> Result<libc::stat64, i32> {
        // A file name is at most 255 bytes: NUL-terminate it on the stack.
        let mut c = [0u8; 257];
        if name.len() > 255 || name.contains(&0) {
            return Err(libc::ENAMETOOLONG);
        }
        c[..name.len()].copy_from_slice(name);
        let mut st = std::mem::MaybeUninit::<libc::stat64>::uninit();
        // SAFETY: valid descriptor, NUL-terminated name, buffer of the right type.
        let rc = unsafe {
            libc::fstatat64(
                dir.as_raw_fd(),
                c.as_ptr().cast(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO));
        }
        // SAFETY: fstatat filled it.
        Ok(unsafe { st.assume_init() })
    }

    /// The kind of a directory entry; `DT_UNKNOWN` is resolved with `lstat`.
    fn kind_of(dir: &OwnedFd, name: &[u8], d_type: u8) -> u8 {
        if d_type != libc::DT_UNKNOWN {
            return d_type;
        }
        match stat_at(dir, name) {
            Ok(st) => match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => libc::DT_DIR,
                libc::S_IFREG => libc::DT_REG,
                libc::S_IFLNK => libc::DT_LNK,
                _ => libc::DT_UNKNOWN,
            },
            Err(_) => libc::DT_UNKNOWN,
        }
    }

    /// Scans one folder. `None`: a layout this scan does not model.
    fn scan_folder(
        rootfd: &OwnedFd,
        folder: &Folder,
        tracked: &[Tracked],
        index_mtime: (i64, u32),
        untracked: bool,
        found: &mut Found,
    ) -> Option<()> {
        if !untracked && folder.files.is_empty() {
            return Some(());
        }
        let dir = match open_dir_errno(Some(rootfd), &folder.path) {
            Ok(fd) => fd,
            Err(libc::ENOENT) => {
                // The folder is gone: every tracked file directly in it is deleted
                // (its subfolders report their own).
                for &i in &folder.files {
                    let t = &tracked[i];
                    if t.flagged {
                        found.uncertain.push(t.path.clone());
                    } else {
                        found.decided.push((t.path.clone(), Decided::Deleted));
                    }
                }
                return Some(());
            }
            // A file, a symbolic link on the way, no permission: not modelled.
            Err(_) => return None,
        };
        // Tracked names found on disk (conflict stages share a name).
        let mut present = 0usize;
        let mut previous: Option<&[u8]> = None;
        for &i in &folder.files {
            let t = &tracked[i];
            match stat_at(&dir, t.name()) {
                Ok(st) => {
                    if previous != Some(t.name()) {
                        present += 1;
                        previous = Some(t.name());
                    }
                    // A tracked file that is now a folder (its contents would be
                    // untracked): not modelled. A submodule's folder is expected.
                    if untracked && st.st_mode & libc::S_IFMT == libc::S_IFDIR && t.mode & TYPE_MASK != GITLINK {
                        return None;
                    }
                    match judge(t, &st, index_mtime) {
                        Verdict::Same => {}
                        Verdict::Modified => found.decided.push((
                            t.path.clone(),
                            Decided::Modified {
                                plain: t.mode == 0o100644,
                            },
                        )),
                        Verdict::Uncertain => found.uncertain.push(t.path.clone()),
                    }
                }
                Err(libc::ENOENT) if !t.flagged => found.decided.push((t.path.clone(), Decided::Deleted)),
                Err(_) => found.uncertain.push(t.path.clone()),
            }
        }
        if !untracked {
            return Some(());
        }
        for name in &folder.folders {
            match stat_at(&dir, name) {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => present += 1,
                // A tracked folder that is now something else: not modelled.
                Ok(_) => return None,
                Err(_) => {}
            }
        }
        let names = read_names(&dir)?;
        if names.len() == present {
            return Some(()); // every name here is tracked
        }
        let prefix = if folder.path.is_empty() {
            Vec::new()
        } else {
            let mut p = folder.path.clone();
            p.push(b'/');
            p
        };
        for (name, d_type) in names.iter() {
            let tracked_file = folder.files.binary_search_by(|&i| tracked[i].name().cmp(name)).is_ok();
            if tracked_file || folder.folders.binary_search_by(|f| f.as_slice().cmp(name)).is_ok() {
                continue;
            }
            let mut path = prefix.clone();
            path.extend_from_slice(name);
            match kind_of(&dir, name, d_type) {
                libc::DT_REG | libc::DT_LNK => found.candidates.push(path),
                libc::DT_DIR => {
                    path.push(b'/');
                    found.candidates.push(path);
                }
                _ => {} // fifos, sockets, devices: git shows none
            }
        }
        Some(())
    }

    enum Verdict {
        Same,
        Modified,
        Uncertain,
    }

    /// libgit2's decision for a tracked file from its stat data, or `Uncertain`
    /// when only the content (or libgit2's own rules) can settle it. Never
    /// `Same` where libgit2 would look further.
    fn judge(t: &Tracked, st: &libc::stat64, index_mtime: (i64, u32)) -> Verdict {
        if t.flagged {
            return Verdict::Uncertain;
        }
        let disk_type = st.st_mode & libc::S_IFMT;
        let index_type = t.mode & TYPE_MASK;
        let same_kind = match (index_type, disk_type) {
            (REGULAR, libc::S_IFREG) => (t.mode & 0o100 != 0) == (st.st_mode & 0o100 != 0),
            (SYMLINK, libc::S_IFLNK) => true,
            _ => false,
        };
        if !same_kind {
            return Verdict::Uncertain;
        }
        let disk_size = st.st_size as u32;
        if t.size != 0 && t.size != disk_size {
            return Verdict::Modified;
        }
        let mtime = (st.st_mtime, st.st_mtime_nsec as u32);
        let ctime = (st.st_ctime, st.st_ctime_nsec as u32);
        let stat_same = t.mtime == mtime
            && t.ctime == ctime
            && t.size == disk_size
            && t.ino == st.st_ino as u32
            && t.uid == st.st_uid
            && t.gid == st.st_gid;
        // Racily clean: written in the same instant as the index, or after it.
        if stat_same && t.mtime < index_mtime {
            Verdict::Same
        } else {
            Verdict::Uncertain
        }
    }

    /// Adds the untracked, not ignored files under a candidate (a file, or a
    /// folder ending in `/`). `None`: an error that calls for libgit2's scan.
    fn untracked_under(repo: &git2::Repository, rootfd: &OwnedFd, path: Vec<u8>, out: &mut Vec<Vec<u8>>) -> Option<()> {
        let ignored = repo.is_path_ignored(std::ffi::OsStr::from_bytes(&path)).ok()?;
        if ignored {
            return Some(());
        }
        if path.last() != Some(&b'/') {
            out.push(path);
            return Some(());
        }
        let dir = open_dir(Some(rootfd), &path[..path.len() - 1])?;
        // A nested repository is shown as its folder, not entered.
        if stat_at(&dir, b".git").is_ok() {
            out.push(path);
            return Some(());
        }
        for (name, d_type) in read_names(&dir)?.iter() {
            let mut child = path.clone();
            child.extend_from_slice(name);
            match kind_of(&dir, name, d_type) {
                libc::DT_REG | libc::DT_LNK => {}
                libc::DT_DIR => child.push(b'/'),
                _ => continue,
            }
            untracked_under(repo, rootfd, child, out)?;
        }
        Some(())
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub struct Prepared;

    pub fn prepare(_: &git2::Repository, _: &git2::Index, _: &[String]) -> Option<Prepared> {
        None
    }

    pub fn scan(_: &git2::Repository, _: &Prepared, _: bool) -> Option<super::Scan> {
        None
    }

    pub fn read_file(_: &std::path::Path, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "git {args:?} failed");
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn sorted(paths: &[Vec<u8>]) -> Vec<String> {
        let mut v: Vec<String> = paths.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
        v.sort();
        v
    }

    /// The fast path itself (not libgit2's fallback) decides these cases.
    #[test]
    fn the_scan_decides_from_stat_data_and_lists_untracked_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        git(dir, &["init", "-q"]);
        write(dir, ".gitignore", "*.log\n");
        for i in 0..30 {
            write(dir, &format!("src/f{i}.txt"), "same\n");
        }
        write(dir, "gone/x.txt", "x\n");
        write(dir, "top.txt", "top\n");
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-qm", "init"]);
        git(dir, &["status", "--porcelain"]); // settle racily clean entries
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(dir, "src/f1.txt", "longer now\n"); // size differs: modified without reading
        write(dir, "src/f2.txt", "SAME\n"); // same size: only the content can tell
        std::fs::remove_dir_all(dir.join("gone")).unwrap();
        write(dir, "src/new.txt", "n\n");
        write(dir, "src/skip.log", "ignored\n");
        write(dir, "fresh/a/b.txt", "deep\n");

        let repo = git2::Repository::open(dir).unwrap();
        let index = repo.index().unwrap();
        let cache = ScanCache::default();
        let scan = scan(&repo, &index, &[String::new()], true, &cache, None).expect("the fast path applies");
        let mut decided: Vec<(String, Decided)> = scan
            .decided
            .iter()
            .map(|(p, d)| (String::from_utf8_lossy(p).into_owned(), *d))
            .collect();
        decided.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            decided,
            [
                ("gone/x.txt".to_owned(), Decided::Deleted),
                ("src/f1.txt".to_owned(), Decided::Modified { plain: true })
            ]
        );
        assert_eq!(sorted(&scan.uncertain), ["src/f2.txt"]);
        assert_eq!(sorted(&scan.untracked), ["fresh/a/b.txt", "src/new.txt"]);

        // A tracked folder replaced by a link is never read through: libgit2's scan answers.
        std::os::unix::fs::symlink("src", dir.join("gone")).unwrap();
        assert!(scan_again(&repo, &index, &cache).is_none());
        std::fs::remove_file(dir.join("gone")).unwrap();
        assert!(scan_again(&repo, &index, &cache).is_some());

        // A tracked file that became a folder is left to libgit2's full scan.
        std::fs::remove_file(dir.join("top.txt")).unwrap();
        write(dir, "top.txt/inside.txt", "x\n");
        assert!(scan_again(&repo, &index, &cache).is_none());
    }

    fn scan_again(repo: &git2::Repository, index: &git2::Index, cache: &ScanCache) -> Option<Scan> {
        scan(repo, index, &[String::new()], true, cache, None)
    }
}
