//! `filesystem_write`: write a whole text file, atomically.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Annotations, Tool, ToolContext, ToolError};
use crate::fsutil::{looks_binary, read_prefix, write_atomic};
use crate::policy::Risk;
use crate::workspace::Access;

/// Largest content one call may write.
pub const MAX_WRITE_BYTES: usize = 16 * 1024 * 1024;

pub struct FilesystemWrite;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// File path relative to the workspace root. Never inside `.git`.
    pub path: String,
    /// The complete new text of the file (UTF-8, no NUL bytes).
    pub content: String,
    /// Create missing parent directories. Default false.
    #[serde(default)]
    pub create_dirs: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// The file written, relative to the workspace root.
    pub path: String,
    /// Bytes now in the file.
    pub bytes_written: u64,
    /// True when the file did not exist before.
    pub created: bool,
    /// Size before the write, when it existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_bytes: Option<u64>,
}

impl Tool for FilesystemWrite {
    const NAME: &'static str = "filesystem_write";
    const TITLE: &'static str = "Write a file";
    const DESCRIPTION: &'static str = "Write the complete text of a file inside the workspace, creating or replacing it. Text only: content with NUL bytes and overwriting a binary file are refused. The write is atomic (a temp file renamed into place), so readers never see half a file. Paths inside .git are refused.";
    const RISK: Risk = Risk::Medium;
    const ANNOTATIONS: Annotations = Annotations {
        read_only: false,
        destructive: true,
        idempotent: true,
        open_world: false,
    };
    type Params = Params;
    type Output = Output;

    fn subject(&self, ctx: &ToolContext, params: &Params) -> crate::policy::Subject {
        crate::policy::Subject::paths(
            ctx.workspace
                .resolve(&params.path, Access::Write)
                .map(|p| vec![p.display()]),
        )
    }

    fn describe(&self, ctx: &ToolContext, params: &Params) -> String {
        let existing = ctx
            .workspace
            .resolve(&params.path, Access::Write)
            .ok()
            .and_then(|p| std::fs::metadata(p.physical()).ok());
        match existing {
            Some(meta) => format!(
                "overwrite {} ({} bytes now) with {} bytes",
                params.path,
                meta.len(),
                params.content.len()
            ),
            None => format!("create {} with {} bytes", params.path, params.content.len()),
        }
    }

    fn check(&self, ctx: &ToolContext, params: &Params) -> Result<(), ToolError> {
        check_content(params)?;
        let target = ctx.workspace.resolve(&params.path, Access::Write)?;
        let shown = target.display();
        let physical = target.physical();
        if physical.is_dir() {
            return Err(ToolError::new(format!("{shown} is a directory; give a file path")));
        }
        if physical.is_file() && read_prefix(physical, 8192).is_ok_and(|head| looks_binary(&head)) {
            return Err(ToolError::new(format!(
                "{shown} is a binary file; filesystem_write will not overwrite it"
            )));
        }
        if let Some(parent) = physical.parent()
            && !parent.is_dir()
            && !params.create_dirs
        {
            return Err(ToolError::new(format!(
                "the directory of {shown} does not exist; pass create_dirs: true to create it"
            )));
        }
        Ok(())
    }

    async fn run(&self, ctx: &ToolContext, params: Params) -> Result<Output, ToolError> {
        check_content(&params)?;
        let target = ctx.workspace.resolve(&params.path, Access::Write)?;
        let shown = target.display();
        tokio::task::spawn_blocking(move || {
            let physical = target.physical();
            let previous = match std::fs::metadata(physical) {
                Ok(meta) if meta.is_dir() => {
                    return Err(ToolError::new(format!("{shown} is a directory; give a file path")));
                }
                Ok(meta) => {
                    let head =
                        read_prefix(physical, 8192).map_err(|e| ToolError::new(format!("cannot read {shown}: {e}")))?;
                    if looks_binary(&head) {
                        return Err(ToolError::new(format!(
                            "{shown} is a binary file; filesystem_write will not overwrite it"
                        )));
                    }
                    Some(meta.len())
                }
                Err(_) => None,
            };
            if let Some(parent) = physical.parent()
                && !parent.is_dir()
                && !params.create_dirs
            {
                return Err(ToolError::new(format!(
                    "the directory of {shown} does not exist; pass create_dirs: true to create it"
                )));
            }
            write_atomic(physical, params.content.as_bytes(), params.create_dirs)
                .map_err(|e| ToolError::new(format!("cannot write {shown}: {e}; the file is unchanged")))?;
            Ok(Output {
                path: shown,
                bytes_written: params.content.len() as u64,
                created: previous.is_none(),
                previous_bytes: previous,
            })
        })
        .await
        .map_err(|e| ToolError::new(format!("internal error: {e}")))?
    }

    fn render(output: Output) -> String {
        if output.created {
            format!("Created {} ({} bytes).", output.path, output.bytes_written)
        } else {
            format!("Wrote {} ({} bytes).", output.path, output.bytes_written)
        }
    }
}

/// Text only, within the size limit.
fn check_content(params: &Params) -> Result<(), ToolError> {
    if params.content.contains('\0') {
        return Err(ToolError::new(
            "content contains NUL bytes; filesystem_write writes text only",
        ));
    }
    if params.content.len() > MAX_WRITE_BYTES {
        return Err(ToolError::new(format!(
            "content is {} bytes, over the {MAX_WRITE_BYTES}-byte limit; split the file or write it with apply_patch",
            params.content.len()
        )));
    }
    Ok(())
}
