//! Root-only fault injection: tmpfs and read-only bind mounts that are undone
//! when dropped, and the rule for skipping when not root.

use std::path::{Path, PathBuf};

/// Whether a root-only test can run here; says why not on stderr. With
/// `EXECLAYER_REQUIRE_ROOT_TESTS=1` (CI), not being able to run is a failure.
pub fn root_can_run(test: &str, why_not: Option<String>) -> bool {
    let required = std::env::var("EXECLAYER_REQUIRE_ROOT_TESTS").as_deref() == Ok("1");
    match why_not {
        None => true,
        Some(reason) => {
            eprintln!("{test}: SKIPPED: {reason}");
            assert!(
                !required,
                "{test} must run (EXECLAYER_REQUIRE_ROOT_TESTS=1) but cannot: {reason}"
            );
            false
        }
    }
}

pub fn not_root() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    (euid != 0).then(|| format!("needs root to mount (euid {euid})"))
}

/// A mount that is undone when dropped, also when the test panics.
pub struct Mounted(PathBuf);

impl Mounted {
    fn run(args: &[&str]) -> Result<(), String> {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .map_err(|e| format!("{}: {e}", args[0]))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    pub fn tmpfs(at: &Path, size: &str) -> Result<Self, String> {
        Self::run(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            at.to_str().unwrap(),
        ])?;
        Ok(Self(at.to_path_buf()))
    }

    pub fn read_only(at: &Path) -> Result<Self, String> {
        let p = at.to_str().unwrap();
        Self::run(&["mount", "--bind", p, p])?;
        let mounted = Self(at.to_path_buf());
        Self::run(&["mount", "-o", "remount,ro,bind", p])?;
        Ok(mounted)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let p = self.0.to_str().unwrap();
        if Self::run(&["umount", p]).is_err() {
            let _ = Self::run(&["umount", "-l", p]);
        }
    }
}

/// Fills the file system holding `dir` with one file, until it is full.
pub fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).expect("create filler");
    let chunk = vec![b'x'; 4096];
    loop {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    // Byte by byte into the last partial block.
    while f.write_all(b"x").is_ok() {}
    filler
}
