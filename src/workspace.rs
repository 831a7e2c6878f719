//! Path confinement: the only way a tool turns a path argument into a file on disk.
//!
//! [`Workspace::resolve`] walks the argument component by component from the
//! canonical workspace root, following symlinks itself (with a hop limit), so the
//! result is the physical path the operating system would reach. It refuses `..`,
//! NUL bytes, paths that end outside the root (through an absolute path, a sibling
//! prefix such as `/w/project2`, or a symlink, dangling or not) and, for writes,
//! anything inside a `.git` directory. The result, a [`WorkspacePath`], is inside
//! the root by construction.

use std::ffi::OsStr;
use std::io;
use std::path::{Component, Path, PathBuf};

use thiserror::Error;

/// How many symlinks one resolution may follow before it is refused as a loop.
const MAX_SYMLINK_HOPS: usize = 40;

/// What the caller means to do with the path: writes are held to stricter rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Why a path argument was refused. Each message says what to do instead.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PathError {
    #[error("path {0:?} contains a NUL byte; give a plain relative path")]
    Nul(String),
    #[error("path {0:?} contains '..'; give the path relative to the workspace root without '..'")]
    ParentDir(String),
    #[error("path {path:?} is outside the workspace root {root}; give a path inside it")]
    Outside { path: String, root: String },
    #[error(
        "path {path:?} leads outside the workspace root {root} through a symlink; only links that stay inside may be used"
    )]
    SymlinkEscape { path: String, root: String },
    #[error("path {0:?} has too many levels of symlinks")]
    SymlinkLoop(String),
    #[error("path {0:?} is inside a .git directory; git internals are never written by tools")]
    GitInternals(String),
    #[error("path {0:?} contains invisible or direction-changing Unicode characters; rename it with plain characters")]
    InvisibleChars(String),
    #[error("path {path:?} is execlayer's {what}; tools cannot change it (an operator edits it, or uses the REST API)")]
    Protected { path: String, what: &'static str },
    #[error("path {0:?} is empty; give a file path relative to the workspace root")]
    Empty(String),
    #[error("cannot inspect {path:?}: {message}")]
    Io { path: String, message: String },
}

/// The one directory tools may touch.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    /// Files and folders of execlayer's own that may lie inside the workspace
    /// (the policy file, playbooks, the audit log, `.env`): never written by
    /// tools; secrets (`.env`) are not read either.
    protected: Vec<Protected>,
}

/// A path of execlayer's own, and what tools may not do with it.
#[derive(Debug, Clone)]
struct Protected {
    /// Canonical path (the parent canonicalized when the file does not exist yet).
    path: PathBuf,
    /// Reading is refused too (it holds secrets).
    secret: bool,
    what: &'static str,
    /// (device, inode) of the file, to catch hard links to it.
    inode: Option<(u64, u64)>,
}

/// A path that was resolved inside the workspace. `physical` has every symlink
/// resolved; `relative` is how it is shown to users (relative to the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspacePath {
    physical: PathBuf,
    relative: PathBuf,
}

impl WorkspacePath {
    /// The resolved path on disk.
    pub fn physical(&self) -> &Path {
        &self.physical
    }

    /// The path relative to the workspace root (empty for the root itself).
    pub fn relative(&self) -> &Path {
        &self.relative
    }

    /// The relative path as shown to users: `.` for the root, `/` separators.
    pub fn display(&self) -> String {
        display_relative(&self.relative)
    }
}

/// Shows a root-relative path the way users wrote it: `.` for the root.
pub fn display_relative(relative: &Path) -> String {
    if relative.as_os_str().is_empty() {
        ".".to_owned()
    } else {
        relative.to_string_lossy().into_owned()
    }
}

impl Workspace {
    /// Opens a workspace at `root`, which must be an existing directory.
    pub fn new(root: &Path) -> io::Result<Self> {
        let root = root.canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Self {
            root,
            protected: Vec::new(),
        })
    }

    /// Marks `path` (a file or a folder) as execlayer's own: tools may not
    /// write it, and may not read it either when it is `secret`.
    pub fn protect(&mut self, path: &Path, what: &'static str, secret: bool) {
        let canonical = path.canonicalize().ok().or_else(|| {
            let parent = path.parent()?.canonicalize().ok()?;
            Some(parent.join(path.file_name()?))
        });
        if let Some(path) = canonical {
            use std::os::unix::fs::MetadataExt;
            let inode = std::fs::metadata(&path)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| (m.dev(), m.ino()));
            self.protected.push(Protected {
                path,
                secret,
                what,
                inode,
            });
        }
    }

    fn check_protected(&self, physical: &Path, access: Access, raw: &str) -> Result<(), PathError> {
        let refused = |p: &Protected| PathError::Protected {
            path: raw.to_owned(),
            what: p.what,
        };
        let applies = |p: &&Protected| access == Access::Write || p.secret;
        if let Some(p) = self
            .protected
            .iter()
            .filter(applies)
            .find(|p| physical.starts_with(&p.path))
        {
            return Err(refused(p));
        }
        // A hard link is another name for the same file.
        if self.protected.iter().any(|p| p.inode.is_some()) {
            use std::os::unix::fs::MetadataExt;
            if let Ok(meta) = std::fs::metadata(physical)
                && meta.nlink() > 1
                && let Some(p) = self
                    .protected
                    .iter()
                    .filter(applies)
                    .find(|p| p.inode == Some((meta.dev(), meta.ino())))
            {
                return Err(refused(p));
            }
        }
        Ok(())
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves a path argument (relative to the root, or absolute inside it).
    pub fn resolve(&self, raw: &str, access: Access) -> Result<WorkspacePath, PathError> {
        let shown = || raw.to_owned();
        if raw.contains('\0') {
            return Err(PathError::Nul(shown()));
        }
        let input = Path::new(raw);
        let relative_input: PathBuf = if input.is_absolute() {
            // An absolute argument must name the root, lexically or physically.
            match input.strip_prefix(&self.root) {
                Ok(rest) => rest.to_path_buf(),
                Err(_) => return Err(self.outside(raw)),
            }
        } else {
            input.to_path_buf()
        };
        let mut pending: Vec<PathBuf> = Vec::new();
        for component in relative_input.components() {
            match component {
                Component::Normal(name) => pending.push(PathBuf::from(name)),
                Component::CurDir => {}
                Component::ParentDir => return Err(PathError::ParentDir(shown())),
                Component::RootDir | Component::Prefix(_) => return Err(self.outside(raw)),
            }
        }
        if access == Access::Write {
            if pending.is_empty() {
                return Err(PathError::Empty(shown()));
            }
            check_write_components(pending.iter().map(|p| p.as_os_str()), raw)?;
        }
        let physical = self.walk(pending, raw)?;
        let relative = physical
            .strip_prefix(&self.root)
            .map_err(|_| PathError::SymlinkEscape {
                path: shown(),
                root: self.root.display().to_string(),
            })?
            .to_path_buf();
        if access == Access::Write {
            // The target of a link may itself live under `.git`.
            check_write_components(relative.iter(), raw)?;
        }
        self.check_protected(&physical, access, raw)?;
        Ok(WorkspacePath { physical, relative })
    }

    /// Follows `components` from the root the way the kernel would, one at a
    /// time, and returns the physical path. Components that do not exist yet
    /// are appended as they are (nothing on disk can redirect them).
    fn walk(&self, components: Vec<PathBuf>, raw: &str) -> Result<PathBuf, PathError> {
        // A stack of components still to visit, the next one last.
        let mut todo: Vec<PathBuf> = components.into_iter().rev().collect();
        let mut current = self.root.clone();
        let mut hops = 0usize;
        let mut missing = false;
        while let Some(next) = todo.pop() {
            if next.as_os_str() == ".." {
                current.pop();
                continue;
            }
            if next.as_os_str() == "/" {
                current = PathBuf::from("/");
                continue;
            }
            let candidate = current.join(&next);
            if missing {
                current = candidate;
                continue;
            }
            match std::fs::symlink_metadata(&candidate) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(PathError::SymlinkLoop(raw.to_owned()));
                    }
                    let target = std::fs::read_link(&candidate).map_err(|e| io_error(raw, e))?;
                    if target.is_absolute() {
                        current = PathBuf::from("/");
                    }
                    for part in target.components().rev() {
                        match part {
                            Component::Normal(name) => todo.push(PathBuf::from(name)),
                            Component::ParentDir => todo.push(PathBuf::from("..")),
                            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                        }
                    }
                }
                Ok(_) => current = candidate,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    missing = true;
                    current = candidate;
                }
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                    return Err(io_error(raw, e));
                }
                Err(e) => return Err(io_error(raw, e)),
            }
        }
        if current.starts_with(&self.root) {
            Ok(current)
        } else if hops > 0 {
            Err(PathError::SymlinkEscape {
                path: raw.to_owned(),
                root: self.root.display().to_string(),
            })
        } else {
            Err(self.outside(raw))
        }
    }

    fn outside(&self, raw: &str) -> PathError {
        PathError::Outside {
            path: raw.to_owned(),
            root: self.root.display().to_string(),
        }
    }
}

fn io_error(raw: &str, e: io::Error) -> PathError {
    PathError::Io {
        path: raw.to_owned(),
        message: e.to_string(),
    }
}

/// Refuses `.git` (in any letter case, as case-insensitive file systems and git
/// itself treat it) and names hiding invisible characters, for writes.
fn check_write_components<'a>(components: impl Iterator<Item = &'a OsStr>, raw: &str) -> Result<(), PathError> {
    for component in components {
        let name = component.to_string_lossy();
        if name.chars().any(is_invisible) {
            return Err(PathError::InvisibleChars(raw.to_owned()));
        }
        let trimmed = name.trim_end_matches([' ', '.']);
        if trimmed.eq_ignore_ascii_case(".git") {
            return Err(PathError::GitInternals(raw.to_owned()));
        }
    }
    Ok(())
}

/// Characters that render as nothing or reorder text, which can make two
/// different names look alike (e.g. `.git` with a zero-width joiner).
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{E0000}'..='\u{E0FFF}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("project");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/lib.rs"), "fn x() {}\n").unwrap();
        std::fs::create_dir_all(dir.path().join("project2")).unwrap();
        std::fs::write(dir.path().join("secret.txt"), "s3cret").unwrap();
        let ws = Workspace::new(&root).unwrap();
        (dir, ws)
    }

    #[test]
    fn resolves_plain_relative_and_absolute_inside() {
        let (_d, ws) = setup();
        let p = ws.resolve("src/lib.rs", Access::Read).unwrap();
        assert_eq!(p.relative(), Path::new("src/lib.rs"));
        let abs = ws.root().join("src/lib.rs");
        let q = ws.resolve(abs.to_str().unwrap(), Access::Read).unwrap();
        assert_eq!(p, q);
        assert_eq!(ws.resolve(".", Access::Read).unwrap().display(), ".");
        assert_eq!(
            ws.resolve("./src/new.rs", Access::Write).unwrap().display(),
            "src/new.rs"
        );
    }

    #[test]
    fn refuses_parent_dirs_nul_and_outside() {
        let (d, ws) = setup();
        assert!(matches!(
            ws.resolve("../secret.txt", Access::Read),
            Err(PathError::ParentDir(_))
        ));
        assert!(matches!(
            ws.resolve("src/../../x", Access::Read),
            Err(PathError::ParentDir(_))
        ));
        assert!(matches!(ws.resolve("a\0b", Access::Read), Err(PathError::Nul(_))));
        assert!(matches!(
            ws.resolve("/etc/passwd", Access::Read),
            Err(PathError::Outside { .. })
        ));
        let sibling = d.path().join("project2");
        assert!(matches!(
            ws.resolve(sibling.to_str().unwrap(), Access::Read),
            Err(PathError::Outside { .. })
        ));
        let old = format!("{}-old/x", ws.root().display());
        assert!(matches!(
            ws.resolve(&old, Access::Write),
            Err(PathError::Outside { .. })
        ));
    }

    #[test]
    fn symlinks_inside_are_followed_and_outside_refused() {
        let (d, ws) = setup();
        symlink("src/lib.rs", ws.root().join("inside_link")).unwrap();
        let p = ws.resolve("inside_link", Access::Read).unwrap();
        assert_eq!(p.relative(), Path::new("src/lib.rs"));
        symlink(d.path().join("secret.txt"), ws.root().join("out_file")).unwrap();
        symlink(d.path(), ws.root().join("out_dir")).unwrap();
        symlink(d.path().join("nothing/here"), ws.root().join("dangling")).unwrap();
        symlink("../secret.txt", ws.root().join("rel_out")).unwrap();
        for (name, access) in [
            ("out_file", Access::Read),
            ("out_dir/secret.txt", Access::Read),
            ("out_dir/new.txt", Access::Write),
            ("dangling", Access::Write),
            ("rel_out", Access::Read),
        ] {
            assert!(
                matches!(ws.resolve(name, access), Err(PathError::SymlinkEscape { .. })),
                "{name} was not refused"
            );
        }
    }

    #[test]
    fn symlink_loops_are_refused() {
        let (_d, ws) = setup();
        symlink("b", ws.root().join("a")).unwrap();
        symlink("a", ws.root().join("b")).unwrap();
        assert!(matches!(ws.resolve("a", Access::Read), Err(PathError::SymlinkLoop(_))));
    }

    #[test]
    fn git_internals_are_never_written() {
        let (_d, ws) = setup();
        std::fs::create_dir_all(ws.root().join(".git/hooks")).unwrap();
        for p in [
            ".git/config",
            ".git/hooks/pre-commit",
            "sub/.git/config",
            ".GIT/config",
            ".git",
            ".git./x",
            "a/.g\u{200d}it/x",
        ] {
            assert!(ws.resolve(p, Access::Write).is_err(), "{p} was allowed");
        }
        symlink(".git/hooks", ws.root().join("hooks")).unwrap();
        assert!(matches!(
            ws.resolve("hooks/post-commit", Access::Write),
            Err(PathError::GitInternals(_))
        ));
        assert!(ws.resolve(".git/config", Access::Read).is_ok());
        assert!(ws.resolve(".gitignore", Access::Write).is_ok());
    }
}
