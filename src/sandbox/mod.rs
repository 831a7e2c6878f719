//! The sandbox: what a command may touch once it runs.
//!
//! The gate decides which command may start; this module decides what the
//! started process (and everything it starts) can reach. [`Sandbox`] is built
//! once from the settings: it finds out what the kernel offers (the Landlock
//! ABI, seccomp, mount and user namespaces), lists the paths a command may read
//! and write, and compiles the seccomp filter. For each call,
//! [`Sandbox::prepare`] makes a private `TMPDIR`, a Landlock ruleset and the
//! list of mounts to make read-only, and [`Confined::apply`] installs them in
//! the child between `fork` and `exec` (`pre_exec`), so nothing of it touches
//! the server. The layers:
//! - Landlock: reads only of the system, the workspace, `PATH` and the
//!   toolchain homes (and `EXECUTION_SANDBOX_READ`); writes only in the
//!   workspace, the private temp directory and `/dev/null`-like devices (and
//!   `EXECUTION_SANDBOX_WRITE`); no TCP bind or connect; no signals, ptrace or
//!   `/proc/<pid>` access to processes outside the sandbox.
//! - seccomp: no socket but `AF_UNIX` (so no UDP, no raw sockets), no ptrace,
//!   no `process_vm_*`, no io_uring (it could open sockets behind seccomp's back),
//!   no mount calls.
//! - a mount namespace (unprivileged through a user namespace, or as root):
//!   `.git/hooks`, `.git/config` and execlayer's own files inside the
//!   workspace are re-bound read-only, and a `.env` there is hidden.
//!
//! `EXECUTION_SANDBOX=auto` confines as far as the kernel allows and says how
//! far; `required` refuses a command when Landlock or seccomp is missing; `off`
//! runs commands as the user. What is in force is reported by
//! [`Sandbox::report`] (brain_status), [`Sandbox::describe`] (the approval
//! question) and the audit line of each command.

#[cfg(target_os = "linux")]
mod landlock;
#[cfg(target_os = "linux")]
mod namespaces;
#[cfg(target_os = "linux")]
mod seccomp;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use schemars::JsonSchema;
use serde::Serialize;

/// `EXECUTION_SANDBOX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    /// Confine as far as the kernel allows, and say how far.
    #[default]
    Auto,
    /// Refuse to run a command the kernel cannot confine (no Landlock or no seccomp).
    Required,
    /// Run commands with every right of the user.
    Off,
}

impl SandboxMode {
    pub fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "required" => Some(Self::Required),
            "off" => Some(Self::Off),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Required => "required",
            Self::Off => "off",
        }
    }
}

/// What a policy rule grants one command beyond the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandGrant {
    /// TCP, UDP and other sockets are allowed (e.g. `cargo fetch`).
    pub network: bool,
    /// The command runs confined; `false` runs it with every right of the user.
    pub sandbox: bool,
}

impl Default for CommandGrant {
    fn default() -> Self {
        Self {
            network: false,
            sandbox: true,
        }
    }
}

/// The sandbox settings (`EXECUTION_SANDBOX*`), validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxSettings {
    pub mode: SandboxMode,
    /// `EXECUTION_SANDBOX_READ`: more paths a command may read.
    pub read: Vec<PathBuf>,
    /// `EXECUTION_SANDBOX_WRITE`: more paths a command may write.
    pub write: Vec<PathBuf>,
}

/// Where one command's confinement is noted for its audit line.
#[derive(Clone, Default)]
pub struct ConfinementNote(Arc<Mutex<Option<String>>>);

impl ConfinementNote {
    pub fn set(&self, text: impl Into<String>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(text.into());
        }
    }

    pub fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// What the kernel offers and what commands get, for brain_status.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SandboxReport {
    /// `EXECUTION_SANDBOX`: auto, required or off.
    pub mode: SandboxMode,
    /// Whether commands run confined by default (false when off, or when
    /// required and the kernel cannot confine).
    pub enforced: bool,
    /// The Landlock ABI version the kernel offers (null when Landlock is unavailable).
    pub landlock_abi: Option<u32>,
    /// What Landlock enforces here, or why it cannot.
    pub landlock: String,
    /// What seccomp enforces here, or why it cannot.
    pub seccomp: String,
    /// Which namespaces are used, or why none.
    pub namespaces: String,
    /// How `.git/hooks`, `.git/config` and execlayer's files in the workspace are protected.
    pub git_metadata: String,
    /// What each command gets, in one sentence.
    pub each_call: String,
    /// Paths a command may read (besides its private temp directory).
    pub read: Vec<String>,
    /// Paths a command may write.
    pub write: Vec<String>,
}

/// What the kernel offers, found once.
#[derive(Debug, Clone)]
struct Support {
    /// The Landlock ABI, or why it is unavailable.
    landlock: Result<u32, String>,
    /// Whether seccomp filters can be installed, or why not.
    seccomp: Result<(), String>,
    /// Which namespaces can be made, or why none.
    namespaces: Result<NsKind, String>,
}

/// How a mount namespace is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NsKind {
    /// As root: a mount namespace alone.
    MountOnly,
    /// Unprivileged: a user namespace that maps the user to itself, then a mount namespace.
    UserAndMount,
}

/// The sandbox policy, built once from the settings.
pub struct Sandbox {
    mode: SandboxMode,
    support: Support,
    workspace: PathBuf,
    read: Vec<PathBuf>,
    write: Vec<PathBuf>,
    /// execlayer's own files inside the workspace: read-only for commands.
    protect_ro: Vec<PathBuf>,
    /// Files inside the workspace commands must not read (a `.env` with the token).
    protect_hidden: Vec<PathBuf>,
    /// Folders commands must not reach at all: the operator sockets, through
    /// which anything that connects could approve pending calls.
    hidden_dirs: Vec<PathBuf>,
    /// Where per-call temp directories are made.
    temp_root: PathBuf,
    #[cfg(target_os = "linux")]
    filters: seccomp::Filters,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("mode", &self.mode)
            .field("support", &self.support)
            .field("workspace", &self.workspace)
            .finish_non_exhaustive()
    }
}

/// Devices every command may write.
const WRITABLE_DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/full"];

/// System locations every command may read and run from.
const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/opt",
    "/proc",
    "/sys",
    "/dev",
    "/nix/store",
    "/snap",
];

impl Sandbox {
    /// Builds the policy for commands run in `workspace` (canonical). `protect`
    /// lists execlayer's own files that may lie inside it (read-only for
    /// commands), `hide` those commands must not read at all.
    pub fn new(settings: &SandboxSettings, workspace: &Path, protect: &[PathBuf], hide: &[PathBuf]) -> Self {
        let support = probe(settings.mode);
        let inside = |paths: &[PathBuf]| -> Vec<PathBuf> {
            paths
                .iter()
                .filter_map(|p| p.canonicalize().ok())
                .filter(|p| p.starts_with(workspace))
                .collect()
        };
        let mut read: Vec<PathBuf> = SYSTEM_READ.iter().map(PathBuf::from).collect();
        read.extend(toolchain_paths(workspace));
        read.extend(settings.read.iter().cloned());
        read.retain(|p| p.exists());
        dedup(&mut read);
        let mut write = vec![workspace.to_path_buf()];
        write.extend(WRITABLE_DEVICES.iter().map(PathBuf::from));
        write.extend(settings.write.iter().cloned());
        write.retain(|p| p.exists());
        dedup(&mut write);
        Self {
            mode: settings.mode,
            workspace: workspace.to_path_buf(),
            read,
            write,
            protect_ro: inside(protect),
            protect_hidden: inside(hide),
            hidden_dirs: crate::operator::default_socket_dir().into_iter().collect(),
            temp_root: std::env::temp_dir(),
            #[cfg(target_os = "linux")]
            filters: seccomp::Filters::build(),
            support,
        }
    }

    /// A sandbox that confines nothing (for tools built without one).
    pub fn off(workspace: &Path) -> Self {
        Self::new(
            &SandboxSettings {
                mode: SandboxMode::Off,
                ..SandboxSettings::default()
            },
            workspace,
            &[],
            &[],
        )
    }

    pub fn mode(&self) -> SandboxMode {
        self.mode
    }

    /// Why the kernel cannot confine a command as `required` demands, if it cannot.
    fn missing(&self) -> Option<String> {
        let mut missing = Vec::new();
        if let Err(e) = &self.support.landlock {
            missing.push(format!("Landlock is unavailable ({e})"));
        }
        if let Err(e) = &self.support.seccomp {
            missing.push(format!("seccomp is unavailable ({e})"));
        }
        (!missing.is_empty()).then(|| missing.join("; "))
    }

    /// The layers a confined command gets, e.g. `landlock abi 7, seccomp, mount namespace`.
    fn layers(&self, grant: CommandGrant) -> String {
        let mut layers = Vec::new();
        if let Ok(abi) = self.support.landlock {
            layers.push(format!("landlock abi {abi}"));
        }
        if self.support.seccomp.is_ok() {
            layers.push("seccomp".to_owned());
        }
        if let Ok(kind) = self.support.namespaces {
            layers.push(
                match kind {
                    NsKind::MountOnly => "mount namespace",
                    NsKind::UserAndMount => "user+mount namespace",
                }
                .to_owned(),
            );
        }
        if layers.is_empty() {
            layers.push("nothing the kernel offers".to_owned());
        }
        format!(
            "{}; network {}",
            layers.join(", "),
            if grant.network { "allowed by rule" } else { "off" }
        )
    }

    /// One line for the approval question: what the command will be allowed.
    pub fn describe(&self, grant: CommandGrant) -> String {
        if self.mode == SandboxMode::Off {
            return "runs UNSANDBOXED (EXECUTION_SANDBOX=off): with every right of the user".to_owned();
        }
        if !grant.sandbox {
            return "runs UNSANDBOXED (a policy rule sets \"sandbox\": false): with every right of the user".to_owned();
        }
        if self.mode == SandboxMode::Required
            && let Some(why) = self.missing()
        {
            return format!("will be refused: EXECUTION_SANDBOX=required and {why}");
        }
        let writes = if self.support.landlock.is_ok() {
            "writes only in the workspace and a private temp directory"
        } else {
            "writes anywhere the user can (no Landlock)"
        };
        let net = match (grant.network, self.support.seccomp.is_ok() || self.landlock_net()) {
            (true, _) => "network allowed by a policy rule",
            (false, true) => "no network",
            (false, false) => "network NOT blocked (no seccomp or Landlock TCP rules)",
        };
        format!("runs sandboxed: {writes}, {net} ({})", self.layers(grant))
    }

    fn landlock_net(&self) -> bool {
        self.support.landlock.as_ref().is_ok_and(|abi| *abi >= 4)
    }

    /// What is in force, for brain_status and `execlayer status`.
    pub fn report(&self) -> SandboxReport {
        let landlock = match &self.support.landlock {
            Ok(abi) => {
                let mut parts = vec!["file system (reads and writes)"];
                if *abi >= 4 {
                    parts.push("TCP bind and connect");
                }
                if *abi >= 6 {
                    parts.push("signals and abstract Unix sockets scoped to the sandbox");
                }
                parts.push("no ptrace or /proc/<pid> of processes outside");
                format!("ABI {abi}: {}", parts.join(", "))
            }
            Err(e) => format!("unavailable: {e}"),
        };
        let seccomp = match &self.support.seccomp {
            Ok(()) => {
                "sockets other than AF_UNIX, ptrace, process_vm_readv/writev, io_uring and mount calls are refused"
                    .to_owned()
            }
            Err(e) => format!("unavailable: {e}"),
        };
        let namespaces = match &self.support.namespaces {
            Ok(NsKind::MountOnly) => "mount namespace per command (as root)".to_owned(),
            Ok(NsKind::UserAndMount) => "user and mount namespace per command (unprivileged)".to_owned(),
            Err(e) => format!("unavailable: {e}"),
        };
        let git_metadata = match &self.support.namespaces {
            Ok(_) => "read-only for commands: .git/hooks, .git/config (and submodules'), execlayer's policy, playbooks and audit log inside the workspace; a .env inside it is hidden (re-bound in a mount namespace)".to_owned(),
            Err(_) => "NOT protected: without a mount namespace, Landlock cannot keep .git/hooks and .git/config read-only inside the writable workspace".to_owned(),
        };
        let enforced = match self.mode {
            SandboxMode::Off => false,
            SandboxMode::Required => self.missing().is_none(),
            SandboxMode::Auto => {
                self.support.landlock.is_ok() || self.support.seccomp.is_ok() || self.support.namespaces.is_ok()
            }
        };
        let each_call = match self.mode {
            SandboxMode::Off => "commands run with every right of the user (EXECUTION_SANDBOX=off)".to_owned(),
            _ => self.describe(CommandGrant::default()),
        };
        let show = |paths: &[PathBuf]| paths.iter().map(|p| p.display().to_string()).collect();
        SandboxReport {
            mode: self.mode,
            enforced,
            landlock_abi: self.support.landlock.as_ref().ok().copied(),
            landlock,
            seccomp,
            namespaces,
            git_metadata,
            each_call,
            read: show(&self.read),
            write: show(&self.write),
        }
    }

    /// Prepares one command's confinement. An error means the command must
    /// not run (`required` without Landlock or seccomp, or a setup failure);
    /// it says why.
    pub fn prepare(&self, grant: CommandGrant) -> Result<Confined, String> {
        if self.mode == SandboxMode::Off {
            return Ok(Confined::none("off (EXECUTION_SANDBOX=off)"));
        }
        if !grant.sandbox {
            return Ok(Confined::none("off (policy rule: \"sandbox\": false)"));
        }
        if self.mode == SandboxMode::Required
            && let Some(why) = self.missing()
        {
            return Err(format!(
                "refused: EXECUTION_SANDBOX=required and this kernel cannot confine the command: {why}. Run execlayer where Landlock and seccomp are available, or set EXECUTION_SANDBOX=auto to run with what the kernel offers"
            ));
        }
        self.prepare_linux(grant)
    }

    #[cfg(not(target_os = "linux"))]
    fn prepare_linux(&self, _grant: CommandGrant) -> Result<Confined, String> {
        Ok(Confined::none("none (no sandbox on this platform)"))
    }

    #[cfg(target_os = "linux")]
    fn prepare_linux(&self, grant: CommandGrant) -> Result<Confined, String> {
        let tmp = TempDir::create(&self.temp_root)?;
        let mut write = self.write.clone();
        write.push(tmp.path.clone());
        let ruleset = match self.support.landlock {
            Ok(_) => Some(landlock::ruleset(&self.read, &write, grant.network)?),
            Err(_) => None,
        };
        let filter = self
            .support
            .seccomp
            .is_ok()
            .then(|| self.filters.for_grant(grant))
            .transpose()?;
        let mounts = match self.support.namespaces {
            Ok(kind) => namespaces::plan(
                kind,
                &self.workspace,
                &self.protect_ro,
                &self.protect_hidden,
                &self.hidden_dirs,
            )?,
            Err(_) => None,
        };
        let mut summary = self.layers(grant);
        if mounts.is_none() {
            summary = summary
                .replace(", mount namespace", "")
                .replace(", user+mount namespace", "");
        }
        Ok(Confined {
            summary,
            tmp: Some(tmp),
            #[cfg(target_os = "linux")]
            child: Some(ChildSetup {
                ruleset,
                filter,
                mounts,
            }),
        })
    }
}

/// Confines the command `cmd` of the call `ctx` (its grant, the sandbox in
/// force) and notes how for the audit line. The returned guard must live
/// until the command has ended: dropping it removes the private temp directory.
pub fn confine(ctx: &crate::tools::ToolContext, cmd: &mut tokio::process::Command) -> Result<Confined, String> {
    match ctx.sandbox.prepare(ctx.grant) {
        Ok(confined) => {
            ctx.confinement.set(confined.summary.clone());
            confined.apply(cmd);
            Ok(confined)
        }
        Err(e) => {
            ctx.confinement.set(e.clone());
            Err(e)
        }
    }
}

/// What the child installs before exec.
#[cfg(target_os = "linux")]
struct ChildSetup {
    ruleset: Option<std::os::fd::OwnedFd>,
    filter: Option<Arc<seccomp::Program>>,
    mounts: Option<namespaces::Plan>,
}

/// One command's confinement: its temp directory (removed on drop) and what
/// the child installs before exec.
pub struct Confined {
    /// What the command gets, for its audit line.
    pub summary: String,
    tmp: Option<TempDir>,
    #[cfg(target_os = "linux")]
    child: Option<ChildSetup>,
}

impl Confined {
    fn none(summary: &str) -> Self {
        Self {
            summary: summary.to_owned(),
            tmp: None,
            #[cfg(target_os = "linux")]
            child: None,
        }
    }

    /// Points `TMPDIR` at the private temp directory and installs the
    /// confinement in the child between fork and exec.
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        if let Some(tmp) = &self.tmp {
            cmd.env("TMPDIR", &tmp.path)
                .env("TMP", &tmp.path)
                .env("TEMP", &tmp.path);
        }
        #[cfg(target_os = "linux")]
        if let Some(setup) = &self.child {
            use std::os::fd::AsRawFd;
            let ruleset = setup.ruleset.as_ref().map(|fd| fd.as_raw_fd());
            let filter = setup.filter.clone();
            let mounts = setup.mounts.clone();
            // SAFETY: the closure runs in the forked child before exec. It
            // only makes system calls on memory prepared here (no allocation,
            // no locks), as `pre_exec` requires.
            unsafe {
                cmd.pre_exec(move || {
                    if let Some(plan) = &mounts {
                        namespaces::enter(plan)?;
                    }
                    drop_capabilities();
                    no_new_privs()?;
                    if let Some(fd) = ruleset {
                        landlock::restrict_self(fd)?;
                    }
                    if let Some(program) = &filter {
                        seccomp::install(program)?;
                    }
                    Ok(())
                });
            }
        }
    }
}

/// Capabilities a command run by root must not keep: those that read other
/// processes (`CAP_SYS_PTRACE` also passes Landlock's ptrace scope), open files
/// by handle behind path rules, load modules, mount, or reach raw devices and
/// the network stack. `CAP_SETPCAP` goes last: dropping needs it.
#[cfg(target_os = "linux")]
const DROPPED_CAPABILITIES: &[libc::c_int] = &[
    2,  // CAP_DAC_READ_SEARCH
    9,  // CAP_LINUX_IMMUTABLE
    12, // CAP_NET_ADMIN
    13, // CAP_NET_RAW
    16, // CAP_SYS_MODULE
    17, // CAP_SYS_RAWIO
    19, // CAP_SYS_PTRACE
    21, // CAP_SYS_ADMIN
    22, // CAP_SYS_BOOT
    25, // CAP_SYS_TIME
    27, // CAP_MKNOD
    30, // CAP_AUDIT_CONTROL
    32, // CAP_MAC_OVERRIDE
    33, // CAP_MAC_ADMIN
    34, // CAP_SYSLOG
    38, // CAP_PERFMON
    39, // CAP_BPF
    40, // CAP_CHECKPOINT_RESTORE
    8,  // CAP_SETPCAP
];

/// In the child: removes [`DROPPED_CAPABILITIES`] from the bounding set, so
/// a root command does not get them back at exec. A process without
/// CAP_SETPCAP (any non-root user) has none of them after exec anyway, and
/// the call fails harmlessly.
#[cfg(target_os = "linux")]
fn drop_capabilities() {
    for cap in DROPPED_CAPABILITIES {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, *cap, 0, 0, 0) };
    }
}

#[cfg(target_os = "linux")]
fn no_new_privs() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A private temp directory, removed with everything in it on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn create(root: &Path) -> Result<Self, String> {
        use std::os::unix::fs::DirBuilderExt;
        let path = root.join(format!("execlayer-call-{}", crate::policy::approvals::new_id()));
        std::fs::DirBuilder::new().mode(0o700).create(&path).map_err(|e| {
            format!(
                "cannot create the command's private temp directory {}: {e}",
                path.display()
            )
        })?;
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Toolchains commands run from: the directories on `PATH` (but never `/` or
/// the home directory itself), the Rust and Python homes, the user's git
/// configuration, and the parent of a linked worktree's git directory.
fn toolchain_paths(workspace: &Path) -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut paths = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.is_absolute() && dir != Path::new("/") && Some(&dir) != home.as_ref() {
                paths.push(dir);
            }
        }
    }
    let from_env_or_home = |var: &str, sub: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(sub)))
    };
    paths.extend(from_env_or_home("CARGO_HOME", ".cargo"));
    paths.extend(from_env_or_home("RUSTUP_HOME", ".rustup"));
    paths.extend(from_env_or_home("PYENV_ROOT", ".pyenv"));
    if let Some(h) = &home {
        for sub in [".local/lib", ".gitconfig", ".config/git"] {
            paths.push(h.join(sub));
        }
    }
    // A linked worktree or submodule: `.git` is a file naming the real git directory.
    if let Ok(text) = std::fs::read_to_string(workspace.join(".git"))
        && let Some(dir) = text.trim().strip_prefix("gitdir:")
    {
        let dir = workspace.join(dir.trim());
        if let Ok(common) = std::fs::read_to_string(dir.join("commondir")) {
            paths.push(dir.join(common.trim()));
        }
        paths.push(dir);
    }
    paths
}

fn dedup(paths: &mut Vec<PathBuf>) {
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| seen.insert(p.clone()));
}

/// Finds out what the kernel offers (nothing is probed when the sandbox is off).
fn probe(mode: SandboxMode) -> Support {
    if mode == SandboxMode::Off {
        let off = || "EXECUTION_SANDBOX=off".to_owned();
        return Support {
            landlock: Err(off()),
            seccomp: Err(off()),
            namespaces: Err(off()),
        };
    }
    #[cfg(target_os = "linux")]
    {
        Support {
            landlock: landlock::abi(),
            seccomp: seccomp::available(),
            namespaces: namespaces::probe(),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let none = || "not Linux".to_owned();
        Support {
            landlock: Err(none()),
            seccomp: Err(none()),
            namespaces: Err(none()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_the_default_grant_is_confined_without_network() {
        assert_eq!(SandboxMode::parse("AUTO"), Some(SandboxMode::Auto));
        assert_eq!(SandboxMode::parse("required"), Some(SandboxMode::Required));
        assert_eq!(SandboxMode::parse("off"), Some(SandboxMode::Off));
        assert_eq!(SandboxMode::parse("yes"), None);
        let g = CommandGrant::default();
        assert!(g.sandbox && !g.network);
    }

    #[test]
    fn home_and_root_on_path_are_never_readable_wholesale() {
        let dir = tempfile::tempdir().unwrap();
        let paths = toolchain_paths(dir.path());
        assert!(!paths.iter().any(|p| p == Path::new("/")));
        if let Some(home) = std::env::var_os("HOME") {
            assert!(!paths.iter().any(|p| p == Path::new(&home)));
        }
    }

    #[test]
    fn off_confines_nothing_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = Sandbox::off(dir.path());
        let confined = sandbox.prepare(CommandGrant::default()).unwrap();
        assert!(confined.summary.starts_with("off"));
        assert!(sandbox.describe(CommandGrant::default()).contains("UNSANDBOXED"));
        assert!(!sandbox.report().enforced);
    }

    #[test]
    fn the_private_temp_directory_goes_with_the_call() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = TempDir::create(dir.path()).unwrap();
        let path = tmp.path.clone();
        std::fs::write(path.join("f"), "x").unwrap();
        drop(tmp);
        assert!(!path.exists());
    }
}
