//! A mount namespace per command, so parts of the writable workspace can be
//! read-only: `.git/hooks` and `.git/config` (a hook or a `core.hooksPath`
//! written there would run at the user's next commit, outside any guard), and
//! execlayer's own files when they lie inside the workspace. Landlock alone
//! cannot do this: its rules only add rights, so a writable workspace means a
//! writable `.git`. The rest of `.git` (index, objects, refs) stays writable
//! for git itself.
//!
//! As root a mount namespace is made directly; otherwise a user namespace that
//! maps the user to itself comes first (where the kernel allows unprivileged
//! ones). The mounts are private to the command and gone when it ends.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::NsKind;

/// What the child does, prepared in the server (no allocation in the child).
#[derive(Clone)]
pub(super) struct Plan {
    kind: NsKind,
    uid_map: CString,
    gid_map: CString,
    read_only: Vec<CString>,
    hidden: Vec<CString>,
    /// Folders covered by an empty read-only tmpfs (the operator sockets:
    /// a command must not approve its own pending calls).
    hidden_dirs: Vec<CString>,
}

fn cstring(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| format!("path {} holds a NUL byte", path.display()))
}

fn maps(kind: NsKind) -> (CString, CString) {
    // SAFETY: getuid and getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let map = |id: u32| CString::new(format!("{id} {id} 1")).unwrap_or_default();
    match kind {
        NsKind::UserAndMount => (map(uid), map(gid)),
        NsKind::MountOnly => (CString::default(), CString::default()),
    }
}

/// The mounts for one command in `workspace`; None when there is nothing to
/// protect (no `.git`, none of execlayer's files inside): a mount namespace
/// can cost tens of milliseconds per command on a loaded machine (its teardown waits for an RCU
/// grace period), so none is made for nothing.
pub(super) fn plan(
    kind: NsKind,
    workspace: &Path,
    protect: &[PathBuf],
    hide: &[PathBuf],
    hide_dirs: &[PathBuf],
) -> Result<Option<Plan>, String> {
    let mut read_only: Vec<PathBuf> = Vec::new();
    let git = workspace.join(".git");
    if git.is_dir() {
        // git makes `hooks/` at init; when it is missing a command could make
        // it, so make it (empty) to bind it read-only.
        let hooks = git.join("hooks");
        if !hooks.exists() {
            std::fs::create_dir(&hooks).map_err(|e| format!("cannot create {}: {e}", hooks.display()))?;
        }
        read_only.push(hooks);
        read_only.push(git.join("config"));
        if let Ok(modules) = std::fs::read_dir(git.join("modules")) {
            for m in modules.flatten() {
                read_only.push(m.path().join("hooks"));
                read_only.push(m.path().join("config"));
            }
        }
    }
    read_only.extend(protect.iter().cloned());
    read_only.retain(|p| p.exists());
    let hidden_dirs: Vec<&PathBuf> = hide_dirs.iter().filter(|p| p.is_dir()).collect();
    if read_only.is_empty() && !hide.iter().any(|p| p.is_file()) && hidden_dirs.is_empty() {
        return Ok(None);
    }
    let (uid_map, gid_map) = maps(kind);
    Ok(Some(Plan {
        kind,
        uid_map,
        gid_map,
        read_only: read_only.iter().map(|p| cstring(p)).collect::<Result<_, _>>()?,
        hidden: hide
            .iter()
            .filter(|p| p.is_file())
            .map(|p| cstring(p))
            .collect::<Result<_, _>>()?,
        hidden_dirs: hidden_dirs.into_iter().map(|p| cstring(p)).collect::<Result<_, _>>()?,
    }))
}

fn check(r: libc::c_int) -> std::io::Result<()> {
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Writes `data` to `path` (a /proc file); async-signal-safe.
fn write_file(path: &std::ffi::CStr, data: &[u8]) -> std::io::Result<()> {
    // SAFETY: open/write/close on a NUL-terminated path and a live buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(err);
        }
    }
    Ok(())
}

/// In the child: enter new namespaces and make the planned mounts.
/// Only system calls on prepared memory (it runs between fork and exec).
pub(super) fn enter(plan: &Plan) -> std::io::Result<()> {
    // SAFETY: every call below takes NUL-terminated strings prepared in the
    // parent, or null pointers where the kernel allows them.
    unsafe {
        match plan.kind {
            NsKind::MountOnly => check(libc::unshare(libc::CLONE_NEWNS))?,
            NsKind::UserAndMount => {
                check(libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS))?;
                // The server is non-dumpable, and so is this fork of it: its
                // /proc/self files belong to root and the maps could not be
                // written. Dumpable only while writing them (exec resets it).
                check(libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0))?;
                let maps = write_file(c"/proc/self/setgroups", b"deny")
                    .and_then(|()| write_file(c"/proc/self/uid_map", plan.uid_map.as_bytes()))
                    .and_then(|()| write_file(c"/proc/self/gid_map", plan.gid_map.as_bytes()));
                libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
                maps?;
            }
        }
        // Nothing done here may propagate back to the server's namespace.
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        for path in &plan.read_only {
            check(libc::mount(
                path.as_ptr(),
                path.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ))?;
            // A remount must keep the flags the mount below already has
            // (in a user namespace they are locked).
            let mut st: libc::statvfs = std::mem::zeroed();
            check(libc::statvfs(path.as_ptr(), &mut st))?;
            let keep = st.f_flag
                & (libc::ST_NOSUID
                    | libc::ST_NODEV
                    | libc::ST_NOEXEC
                    | libc::ST_NOATIME
                    | libc::ST_NODIRATIME
                    | libc::ST_RELATIME);
            check(libc::mount(
                std::ptr::null(),
                path.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | keep,
                std::ptr::null(),
            ))?;
        }
        for path in &plan.hidden {
            check(libc::mount(
                c"/dev/null".as_ptr(),
                path.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ))?;
        }
        for path in &plan.hidden_dirs {
            check(libc::mount(
                c"tmpfs".as_ptr(),
                path.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                c"size=4k,mode=0500".as_ptr().cast(),
            ))?;
        }
    }
    Ok(())
}

/// Which namespaces a command can get here: tried once in a forked child
/// (as root a mount namespace alone; without the rights for it, a user
/// namespace first).
pub(super) fn probe() -> Result<NsKind, String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 && try_kind(NsKind::MountOnly).is_ok() {
        return Ok(NsKind::MountOnly);
    }
    try_kind(NsKind::UserAndMount)
}

fn try_kind(kind: NsKind) -> Result<NsKind, String> {
    let (uid_map, gid_map) = maps(kind);
    let plan = Plan {
        kind,
        uid_map,
        gid_map,
        read_only: Vec::new(),
        hidden: Vec::new(),
        hidden_dirs: Vec::new(),
    };
    // SAFETY: the child only makes system calls and exits with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!(
            "cannot fork to probe namespaces: {}",
            std::io::Error::last_os_error()
        ));
    }
    if pid == 0 {
        let code = match enter(&plan) {
            Ok(()) => 0,
            Err(e) => e.raw_os_error().unwrap_or(255).clamp(1, 255),
        };
        // SAFETY: ends the forked child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    match (libc::WIFEXITED(status), libc::WEXITSTATUS(status)) {
        (true, 0) => Ok(kind),
        (true, errno) => {
            let e = std::io::Error::from_raw_os_error(errno);
            Err(format!(
                "neither a mount namespace nor an unprivileged user namespace can be made here ({e}; e.g. kernel.unprivileged_userns_clone=0, user.max_user_namespaces=0 or an AppArmor restriction)"
            ))
        }
        _ => Err("the namespace probe did not exit normally".to_owned()),
    }
}
