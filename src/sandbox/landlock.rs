//! Landlock: the file-system and TCP rules of one command, and the ABI the kernel offers.
//!
//! The ruleset is built in the server (opening each allowed path once) and
//! only enforced in the child, with one system call on its file descriptor.

use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;

use ::landlock::{
    ABI, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope, path_beneath_rules,
};

/// The rights asked for: those of ABI 6 (file system with `IoctlDev`, TCP, scopes);
/// an older kernel enforces the subset it knows, and [`abi`] says which.
const TARGET: ABI = ABI::V6;

/// The kernel's Landlock ABI version, or why Landlock cannot be used.
pub(super) fn abi() -> Result<u32, String> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute, size 0 and the VERSION flag the call only
    // returns the ABI version (or an error); it touches no memory.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v >= 1 {
        return Ok(v as u32);
    }
    let e = std::io::Error::last_os_error();
    Err(match e.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel has no Landlock (ENOSYS: built without it, or a filter hides it)".to_owned(),
        Some(libc::EOPNOTSUPP) => {
            "Landlock is built in but disabled (EOPNOTSUPP: add landlock to the lsm= boot parameter)".to_owned()
        }
        _ => format!("landlock_create_ruleset failed: {e}"),
    })
}

/// A ruleset allowing reads (and execution) of `read`, all file operations
/// under `write`, and, unless `network`, no TCP bind or connect.
pub(super) fn ruleset(read: &[PathBuf], write: &[PathBuf], network: bool) -> Result<OwnedFd, String> {
    let fail = |e: ::landlock::RulesetError| format!("cannot build the Landlock ruleset: {e}");
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(TARGET))
        .map_err(fail)?
        .scope(Scope::from_all(TARGET))
        .map_err(fail)?;
    if !network {
        ruleset = ruleset.handle_access(AccessNet::from_all(TARGET)).map_err(fail)?;
    }
    let created = ruleset
        .create()
        .map_err(fail)?
        .add_rules(path_beneath_rules(read, AccessFs::from_read(TARGET)))
        .map_err(fail)?
        .add_rules(path_beneath_rules(write, AccessFs::from_all(TARGET)))
        .map_err(fail)?;
    Option::<OwnedFd>::from(created).ok_or_else(|| "the kernel did not create a Landlock ruleset".to_owned())
}

/// In the child: enforce the ruleset on this process and what it starts.
/// Needs `no_new_privs` (or CAP_SYS_ADMIN) first.
pub(super) fn restrict_self(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: a system call on a file descriptor the parent opened; no memory is passed.
    if unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
