//! seccomp: what Landlock cannot express, as a BPF filter compiled once
//! (with `seccompiler`, no C library) and installed in the child.
//!
//! Refused: sockets of any family but `AF_UNIX` (so no UDP, raw or netlink
//! sockets; TCP is also covered by Landlock), `ptrace` and
//! `process_vm_readv/writev`, io_uring (its requests could open sockets
//! without a `socket()` call), and mount calls (a command in a mount namespace
//! must not undo the read-only binds). Everything else is allowed.

use std::collections::BTreeMap;
use std::sync::Arc;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use super::CommandGrant;

/// A compiled filter, in the kernel's layout.
pub(super) type Program = Vec<libc::sock_filter>;

/// The two filters a command may get: without and with network.
pub(super) struct Filters {
    no_network: Result<Arc<Program>, String>,
    network: Result<Arc<Program>, String>,
}

impl Filters {
    pub(super) fn build() -> Self {
        Self {
            no_network: compile(false).map(Arc::new),
            network: compile(true).map(Arc::new),
        }
    }

    pub(super) fn for_grant(&self, grant: CommandGrant) -> Result<Arc<Program>, String> {
        if grant.network { &self.network } else { &self.no_network }.clone()
    }
}

/// Whether this kernel can install seccomp filters.
pub(super) fn available() -> Result<(), String> {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    if r < 0 {
        return Err(format!(
            "the kernel has no seccomp filters ({})",
            std::io::Error::last_os_error()
        ));
    }
    compile(false).map(|_| ())
}

#[cfg(target_arch = "x86_64")]
const ARCH: Option<TargetArch> = Some(TargetArch::x86_64);
#[cfg(target_arch = "aarch64")]
const ARCH: Option<TargetArch> = Some(TargetArch::aarch64);
#[cfg(target_arch = "riscv64")]
const ARCH: Option<TargetArch> = Some(TargetArch::riscv64);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64")))]
const ARCH: Option<TargetArch> = None;

fn compile(network: bool) -> Result<Program, String> {
    let arch = ARCH.ok_or("seccomp filters are not built for this CPU architecture")?;
    let fail = |e: seccompiler::BackendError| format!("cannot compile the seccomp filter: {e}");
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let always = [
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_fsconfig,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
    ];
    for nr in always {
        rules.insert(nr, Vec::new());
    }
    if !network {
        let not_unix =
            SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, libc::AF_UNIX as u64).map_err(fail)?;
        rules.insert(libc::SYS_socket, vec![SeccompRule::new(vec![not_unix]).map_err(fail)?]);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(fail)?;
    let program: BpfProgram = filter.try_into().map_err(fail)?;
    let mut out: Program = Vec::with_capacity(program.len() + 3);
    // x32 system calls share the x86_64 architecture value but set bit 30 of
    // the number; refuse them all so none slips past the rules above.
    #[cfg(target_arch = "x86_64")]
    out.extend([
        libc::sock_filter {
            code: 0x20,
            jt: 0,
            jf: 0,
            k: 0,
        }, // ld [nr]
        libc::sock_filter {
            code: 0x35,
            jt: 0,
            jf: 1,
            k: 0x4000_0000,
        }, // jge #x32, ret, next
        libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
    ]);
    out.extend(program.iter().map(|f| libc::sock_filter {
        code: f.code,
        jt: f.jt,
        jf: f.jf,
        k: f.k,
    }));
    Ok(out)
}

/// In the child: install `program` on this process and what it starts.
/// Needs `no_new_privs` first.
pub(super) fn install(program: &Program) -> std::io::Result<()> {
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: the kernel copies the program from `prog`, which points at live memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0u32,
            &prog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
