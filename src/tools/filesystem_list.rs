//! `filesystem_list`: the entries of a workspace directory, honouring `.gitignore`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Annotations, Tool, ToolContext, ToolError};
use crate::policy::Risk;
use crate::workspace::{Access, display_relative};

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
    /// Most entries to return (1 to 20000). Default 1000.
    #[serde(default)]
    pub max_entries: Option<usize>,
}

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Entry {
    /// Path relative to the workspace root.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// Size in bytes, for files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// The directory listed, relative to the workspace root.
    pub path: String,
    /// Entries sorted by path; `.git` and ignored files are left out.
    pub entries: Vec<Entry>,
    /// True when `max_entries` cut the list.
    pub truncated: bool,
}

impl Tool for FilesystemList {
    const NAME: &'static str = "filesystem_list";
    const TITLE: &'static str = "List a directory";
    const DESCRIPTION: &'static str = "List the entries of a directory inside the workspace (optionally the whole tree), with type and size, sorted by path. Files ignored by .gitignore and the .git directory are left out. At most max_entries are returned; `truncated` says when more exist.";
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
        let recursive = params.recursive;
        tokio::task::spawn_blocking(move || list(&root, &dir, recursive, max))
            .await
            .map_err(|e| ToolError::new(format!("internal error: {e}")))?
    }

    fn render(output: Output) -> String {
        let mut text = String::new();
        for e in &output.entries {
            match (e.kind, e.size) {
                (EntryKind::Dir, _) => text.push_str(&format!("{}/\n", e.path)),
                (EntryKind::Symlink, _) => text.push_str(&format!("{} -> (symlink)\n", e.path)),
                (_, Some(size)) => text.push_str(&format!("{}  ({size} bytes)\n", e.path)),
                _ => text.push_str(&format!("{}\n", e.path)),
            }
        }
        if output.entries.is_empty() {
            text.push_str(&format!("{} is empty\n", output.path));
        }
        if output.truncated {
            text.push_str(&format!(
                "[execlayer: list cut at {} entries; raise max_entries or list a subdirectory]\n",
                output.entries.len()
            ));
        }
        text
    }
}

/// A walker over the workspace that honours `.gitignore` and skips `.git`.
pub fn walker(start: &std::path::Path, max_depth: Option<usize>) -> ignore::WalkBuilder {
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

fn list(
    root: &std::path::Path,
    dir: &crate::workspace::WorkspacePath,
    recursive: bool,
    max: usize,
) -> Result<Output, ToolError> {
    let shown = dir.display();
    let meta = std::fs::metadata(dir.physical()).map_err(|e| ToolError::new(format!("cannot list {shown}: {e}")))?;
    if !meta.is_dir() {
        return Err(ToolError::new(format!(
            "{shown} is a file, not a directory; read it with filesystem_read"
        )));
    }
    if !recursive {
        let (entries, truncated) = one_level(root, dir, max);
        return Ok(Output {
            path: shown,
            entries,
            truncated,
        });
    }
    let mut builder = walker(dir.physical(), None);
    // Tree order, deterministic; streamed, so a huge tree stops at `max`.
    builder.sort_by_file_name(|a, b| a.cmp(b));
    let mut entries = Vec::new();
    let mut truncated = false;
    for item in builder.build().flatten().filter(|i| i.depth() > 0) {
        if entries.len() == max {
            truncated = true;
            break;
        }
        let Some(file_type) = item.file_type() else { continue };
        let kind = EntryKind::of(file_type);
        let size = (kind == EntryKind::File).then(|| item.metadata().map(|m| m.len()).unwrap_or(0));
        let relative = item.path().strip_prefix(root).unwrap_or(item.path());
        entries.push(Entry {
            path: display_relative(relative),
            kind,
            size,
        });
    }
    Ok(Output {
        path: shown,
        entries,
        truncated,
    })
}

impl EntryKind {
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

/// One directory level: the walker reads the directory once (entry types come
/// from `readdir`, ignore rules are applied), the names are sorted as plain
/// bytes, and only the entries returned are `lstat`ed for their size.
fn one_level(root: &std::path::Path, dir: &crate::workspace::WorkspacePath, max: usize) -> (Vec<Entry>, bool) {
    let mut level: Vec<(std::ffi::OsString, std::fs::FileType)> = Vec::new();
    for item in walker(dir.physical(), Some(1)).build().flatten() {
        if item.depth() == 0 {
            continue;
        }
        let Some(file_type) = item.file_type() else { continue };
        level.push((item.file_name().to_owned(), file_type));
    }
    level.sort_unstable_by(|a, b| a.0.as_encoded_bytes().cmp(b.0.as_encoded_bytes()));
    let truncated = level.len() > max;
    level.truncate(max);
    let relative = dir.physical().strip_prefix(root).unwrap_or(std::path::Path::new(""));
    let mut prefix = relative.to_string_lossy().into_owned();
    if !prefix.is_empty() {
        prefix.push('/');
    }
    let entries = level
        .into_iter()
        .map(|(name, file_type)| {
            let kind = EntryKind::of(file_type);
            let size = (kind == EntryKind::File).then(|| {
                std::fs::symlink_metadata(dir.physical().join(&name))
                    .map(|m| m.len())
                    .unwrap_or(0)
            });
            let mut path = String::with_capacity(prefix.len() + name.len());
            path.push_str(&prefix);
            path.push_str(&name.to_string_lossy());
            Entry { path, kind, size }
        })
        .collect();
    (entries, truncated)
}
