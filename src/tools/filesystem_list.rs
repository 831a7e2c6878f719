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
    let mut builder = walker(dir.physical(), if recursive { None } else { Some(1) });
    if recursive {
        // Tree order, deterministic. (For one level the walker's sort would
        // also read every subdirectory to sort it: sort the level here instead.)
        builder.sort_by_file_name(|a, b| a.cmp(b));
    }
    let mut entries = Vec::new();
    let mut truncated = false;
    let walk = builder.build().flatten().filter(|i| i.depth() > 0);
    let items: Box<dyn Iterator<Item = ignore::DirEntry>> = if recursive {
        // Streamed, so a huge tree stops at `max`.
        Box::new(walk)
    } else {
        let mut level: Vec<ignore::DirEntry> = walk.collect();
        level.sort_by(|a, b| a.file_name().cmp(b.file_name()));
        Box::new(level.into_iter())
    };
    for item in items {
        if entries.len() == max {
            truncated = true;
            break;
        }
        let Some(file_type) = item.file_type() else { continue };
        let kind = if file_type.is_symlink() {
            EntryKind::Symlink
        } else if file_type.is_dir() {
            EntryKind::Dir
        } else if file_type.is_file() {
            EntryKind::File
        } else {
            EntryKind::Other
        };
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
