//! `filesystem_list`: the entries of a workspace directory, honouring `.gitignore`.
//!
//! The entries travel once, in the text block, one per line (the structured
//! result says how many and whether the list was cut). Entry types come from
//! `readdir`; a file is `lstat`ed only when sizes are asked for, and only when
//! it is returned.

use std::fmt::Write as _;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Annotations, Tool, ToolContext, ToolError};
use crate::policy::Risk;
use crate::workspace::{Access, WorkspacePath};

pub const DEFAULT_MAX_ENTRIES: usize = 1_000;
pub const MAX_ENTRIES: usize = 20_000;

pub struct FilesystemList;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Directory relative to the workspace root. Default: the root.
    #[serde(default)]
    pub path: Option<String>,
    /// List the whole tree below the directory. Default false.
    #[serde(default)]
    pub recursive: bool,
    /// List this many levels below the directory (1 = its own entries); implies `recursive`. Default: no limit.
    #[serde(default)]
    pub max_depth: Option<usize>,
    /// Most entries to return (1 to 20000). Default 1000.
    #[serde(default)]
    pub max_entries: Option<usize>,
    /// Show each file's size in bytes. Default false.
    #[serde(default)]
    pub sizes: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// The directory listed, relative to the workspace root.
    pub path: String,
    /// How many entries the text lists.
    pub count: usize,
    /// True when `max_entries` cut the list.
    pub truncated: bool,
    /// The entries, one line each (sent once, as the text block).
    #[serde(skip)]
    pub listing: String,
}

impl Tool for FilesystemList {
    const NAME: &'static str = "filesystem_list";
    const TITLE: &'static str = "List a directory";
    const DESCRIPTION: &'static str = "List the entries of a directory inside the workspace (optionally the whole tree, or `max_depth` levels of it), sorted by path, one per line as workspace-relative paths: a line ending with `/` is a directory, `name -> target` a symbolic link, `name  (special)` a device, socket or pipe, and any other line a regular file (`sizes: true` adds `  (N bytes)` to files). Names holding control characters are written as JSON strings. Files ignored by .gitignore and the .git directory are left out; a recursive list does not descend into build caches (directories holding a CACHEDIR.TAG, such as cargo's target/): they show as `dir/  (cache directory, not listed)`, and listing them by path shows them. At most max_entries are returned; a last line and `truncated` say when more exist.";
    const RISK: Risk = Risk::Low;
    const ANNOTATIONS: Annotations = Annotations::READ_ONLY;
    type Params = Params;
    type Output = Output;

    fn describe(&self, _ctx: &ToolContext, params: &Params) -> String {
        format!("list {}", params.path.as_deref().unwrap_or("."))
    }

    async fn run(&self, ctx: &ToolContext, params: Params) -> Result<Output, ToolError> {
        let max = params.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
        if !(1..=MAX_ENTRIES).contains(&max) {
            return Err(ToolError::new(format!(
                "max_entries must be from 1 to {MAX_ENTRIES}; got {max}"
            )));
        }
        let dir = ctx
            .workspace
            .resolve(params.path.as_deref().unwrap_or("."), Access::Read)?;
        let root = ctx.workspace.root().to_path_buf();
        if params.max_depth == Some(0) {
            return Err(ToolError::new(
                "max_depth must be 1 or more (1 lists the directory's own entries); leave it out for the whole tree",
            ));
        }
        let depth = match (params.max_depth, params.recursive) {
            (Some(1), _) | (None, false) => Some(1),
            (depth, _) => depth,
        };
        let sizes = params.sizes;
        tokio::task::spawn_blocking(move || list(&root, &dir, depth, max, sizes))
            .await
            .map_err(|e| ToolError::new(format!("internal error: {e}")))?
    }

    fn render(output: Output) -> String {
        let mut text = output.listing;
        if output.count == 0 {
            let _ = writeln!(text, "{} is empty", output.path);
        }
        if output.truncated {
            let _ = writeln!(
                text,
                "[execlayer: list cut at {} entries; raise max_entries or list a subdirectory]",
                output.count
            );
        }
        text
    }
}

/// A walker over the workspace that honours `.gitignore` and skips `.git`.
pub fn walker(start: &Path, max_depth: Option<usize>) -> ignore::WalkBuilder {
    let mut builder = ignore::WalkBuilder::new(start);
    builder
        .hidden(false)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .ignore(true)
        .parents(true)
        .require_git(false)
        .follow_links(false)
        .max_depth(max_depth)
        .filter_entry(|e| e.file_name() != ".git");
    builder
}

/// Lists `dir`, `depth` levels deep (`Some(1)`: its own entries; `None`: all).
fn list(root: &Path, dir: &WorkspacePath, depth: Option<usize>, max: usize, sizes: bool) -> Result<Output, ToolError> {
    let shown = dir.display();
    let meta = std::fs::metadata(dir.physical()).map_err(|e| ToolError::new(format!("cannot list {shown}: {e}")))?;
    if !meta.is_dir() {
        return Err(ToolError::new(format!(
            "{shown} is a file, not a directory; read it with filesystem_read"
        )));
    }
    let mut out = Listing::new(sizes);
    let truncated = match depth {
        Some(1) => one_level(root, dir.physical(), max, &mut out),
        depth => walk_tree(root, dir.physical(), depth, max, &mut out),
    };
    Ok(Output {
        path: shown,
        count: out.count,
        truncated,
        listing: out.text,
    })
}

/// What kind of entry a line shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    /// A directory holding a CACHEDIR.TAG, not descended into.
    Cache,
    Symlink,
    Other,
}

impl Kind {
    fn of(file_type: std::fs::FileType) -> Self {
        if file_type.is_symlink() {
            Self::Symlink
        } else if file_type.is_dir() {
            Self::Dir
        } else if file_type.is_file() {
            Self::File
        } else {
            Self::Other
        }
    }
}

/// The text being built, one line per entry.
struct Listing {
    text: String,
    count: usize,
    sizes: bool,
}

impl Listing {
    fn new(sizes: bool) -> Self {
        Self {
            text: String::new(),
            count: 0,
            sizes,
        }
    }

    /// Adds `relative` (workspace-relative, `/`-separated), found at `physical`.
    fn push(&mut self, relative: &str, physical: &Path, kind: Kind) {
        if relative.chars().any(char::is_control) {
            let quoted = serde_json::to_string(relative).unwrap_or_default();
            self.text.push_str(&quoted);
        } else {
            self.text.push_str(relative);
        }
        match kind {
            Kind::Dir => self.text.push('/'),
            Kind::Cache => self.text.push_str("/  (cache directory, not listed)"),
            Kind::Symlink => match std::fs::read_link(physical) {
                Ok(target) => {
                    self.text.push_str(" -> ");
                    self.text.push_str(&target.to_string_lossy());
                }
                Err(_) => self.text.push_str(" -> (unreadable link)"),
            },
            Kind::Other => self.text.push_str("  (special)"),
            Kind::File if self.sizes => match std::fs::symlink_metadata(physical) {
                Ok(m) => {
                    let _ = write!(self.text, "  ({} bytes)", m.len());
                }
                Err(_) => self.text.push_str("  (gone)"),
            },
            Kind::File => {}
        }
        self.text.push('\n');
        self.count += 1;
    }
}

/// The part of `path` after `root` and its `/`, as text (a copy only when
/// the name is not UTF-8). Every listed path is below the root.
fn relative_of<'a>(root_len: usize, path: &'a Path) -> std::borrow::Cow<'a, str> {
    let bytes = path.as_os_str().as_encoded_bytes();
    let rest = bytes.get(root_len..).unwrap_or_default();
    let rest = rest.strip_prefix(b"/").unwrap_or(rest);
    match std::str::from_utf8(rest) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => std::borrow::Cow::Owned(String::from_utf8_lossy(rest).into_owned()),
    }
}

/// One directory level: the walker reads the directory once (entry types come
/// from `readdir`, ignore rules are applied); the entries, which all share the
/// directory's path as a prefix, are sorted by their path bytes (no component
/// parsing), and only the entries returned are looked at further.
fn one_level(root: &Path, dir: &Path, max: usize, out: &mut Listing) -> bool {
    let mut level: Vec<(std::path::PathBuf, Kind)> = Vec::new();
    for item in walker(dir, Some(1)).build().flatten() {
        if item.depth() == 0 {
            continue;
        }
        let Some(file_type) = item.file_type() else { continue };
        level.push((item.into_path(), Kind::of(file_type)));
    }
    let shared = dir.as_os_str().len();
    level.sort_unstable_by(|a, b| name_bytes(&a.0, shared).cmp(name_bytes(&b.0, shared)));
    let truncated = level.len() > max;
    level.truncate(max);
    let root_len = root.as_os_str().len();
    out.text.reserve(level.len() * (shared.saturating_sub(root_len) + 24));
    for (path, kind) in &level {
        out.push(&relative_of(root_len, path), path, *kind);
    }
    truncated
}

/// The bytes of `path` after its first `skip` (its parent's path).
fn name_bytes(path: &Path, skip: usize) -> &[u8] {
    path.as_os_str().as_encoded_bytes().get(skip..).unwrap_or_default()
}

/// The tree below `dir`, in path order, streamed: a huge tree stops at `max`.
/// Build caches below `dir` are shown but not descended into.
fn walk_tree(root: &Path, dir: &Path, depth: Option<usize>, max: usize, out: &mut Listing) -> bool {
    let mut builder = walker(dir, depth);
    // Entries of one directory share its path as a prefix: comparing the
    // bytes after it orders them by name without splitting paths into components.
    builder.sort_by_file_path(|a, b| {
        let (a, b) = (a.as_os_str().as_encoded_bytes(), b.as_os_str().as_encoded_bytes());
        // Both are in the same directory: skip the parent they share.
        let skip = a.iter().rposition(|&c| c == b'/').unwrap_or(0);
        a.get(skip..).cmp(&b.get(skip..))
    });
    // The filter sees a directory's entries when it is read, before any of
    // them is yielded; a cache directory it holds back waits in `caches`
    // until the walk passes its place in the order.
    let caches: std::sync::Arc<std::sync::Mutex<Vec<std::path::PathBuf>>> = Default::default();
    let held = caches.clone();
    builder.filter_entry(move |e| {
        if e.file_name() == ".git" {
            return false;
        }
        let cache = e.depth() > 0 && e.file_type().is_some_and(|t| t.is_dir()) && is_cache_dir(e.path());
        if cache {
            held.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e.path().to_path_buf());
        }
        !cache
    });
    let root_len = root.as_os_str().len();
    let mut pending: Vec<std::path::PathBuf> = Vec::new();
    let flush = |before: Option<&Path>, out: &mut Listing, pending: &mut Vec<std::path::PathBuf>| -> bool {
        pending.append(&mut caches.lock().unwrap_or_else(|p| p.into_inner()));
        pending.sort();
        while let Some(first) = pending.first() {
            if before.is_some_and(|b| first.as_path() > b) {
                break;
            }
            if out.count == max {
                return true;
            }
            let cache = pending.remove(0);
            out.push(&relative_of(root_len, &cache), &cache, Kind::Cache);
        }
        false
    };
    for item in builder.build().flatten().filter(|i| i.depth() > 0) {
        if flush(Some(item.path()), out, &mut pending) || out.count == max {
            return true;
        }
        let Some(file_type) = item.file_type() else { continue };
        out.push(&relative_of(root_len, item.path()), item.path(), Kind::of(file_type));
    }
    flush(None, out, &mut pending)
}

/// Whether `dir` is tagged as a cache (a `CACHEDIR.TAG` file starting with
/// the signature the Cache Directory Tagging convention gives).
fn is_cache_dir(dir: &Path) -> bool {
    use std::io::Read as _;
    const SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";
    let tag = dir.join("CACHEDIR.TAG");
    // A regular file only: never a link (it could lead out of the workspace)
    // nor a pipe (opening it would wait for a writer).
    if !std::fs::symlink_metadata(&tag).is_ok_and(|m| m.file_type().is_file()) {
        return false;
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let Ok(file) = options.open(&tag) else {
        return false;
    };
    let mut head = Vec::with_capacity(SIGNATURE.len());
    file.take(SIGNATURE.len() as u64).read_to_end(&mut head).is_ok() && head == SIGNATURE
}
