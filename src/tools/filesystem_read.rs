//! `filesystem_read`: the text of a workspace file, by lines, paged.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Annotations, Tool, ToolContext, ToolError};
use crate::fsutil::looks_binary;
use crate::policy::Risk;
use crate::workspace::Access;

/// Most bytes of text returned by one call, unless `max_bytes` says otherwise.
pub const MAX_RETURN_BYTES: usize = 256 * 1024;
/// Files up to this size are read without moving to the blocking pool.
const INLINE_READ_BYTES: u64 = 64 * 1024;
/// The largest `max_bytes` a call may ask for.
pub const MAX_RETURN_BYTES_LIMIT: usize = 16 * 1024 * 1024;
/// Largest file read at all.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

pub struct FilesystemRead;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// File path relative to the workspace root (or absolute inside it).
    pub path: String,
    /// First line to return, counting from 1. Default 1.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Most lines to return. Default: as many as fit in `max_bytes`.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Most bytes of text to return (1 to 16777216). Default 262144 (256 KiB).
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// The file, relative to the workspace root.
    pub path: String,
    /// First line returned (1-based); 0 when the file is empty.
    pub start_line: u64,
    /// Last line returned (1-based); 0 when no line was returned.
    pub end_line: u64,
    /// Lines in the whole file.
    pub total_lines: u64,
    /// Size of the whole file in bytes.
    pub size_bytes: u64,
    /// True when more of the file is left: call again with `offset: next_offset`.
    pub truncated: bool,
    /// Where the next page starts, when `truncated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
    /// True when the file was not valid UTF-8 and bad bytes were replaced by U+FFFD.
    pub lossy: bool,
    /// The text itself travels once, in the text content block.
    #[serde(skip)]
    #[schemars(skip)]
    pub content: String,
}

impl Tool for FilesystemRead {
    const NAME: &'static str = "filesystem_read";
    const TITLE: &'static str = "Read a file";
    const DESCRIPTION: &'static str = "Read a UTF-8 text file inside the workspace, by lines. The file's text is returned in the text content block; the structured result holds the line range, total lines and whether more is left (then call again with `offset: next_offset`). Returns at most 256 KiB per call. Binary files are refused.";
    const RISK: Risk = Risk::Low;
    const ANNOTATIONS: Annotations = Annotations::READ_ONLY;
    type Params = Params;
    type Output = Output;

    fn describe(&self, _ctx: &ToolContext, params: &Params) -> String {
        format!("read {}", params.path)
    }

    async fn run(&self, ctx: &ToolContext, params: Params) -> Result<Output, ToolError> {
        let max_bytes = params.max_bytes.unwrap_or(MAX_RETURN_BYTES);
        if !(1..=MAX_RETURN_BYTES_LIMIT).contains(&max_bytes) {
            return Err(ToolError::new(format!(
                "max_bytes must be from 1 to {MAX_RETURN_BYTES_LIMIT}; got {max_bytes}"
            )));
        }
        let target = ctx.workspace.resolve(&params.path, Access::Read)?;
        let shown = target.display();
        let window = Window {
            offset: params.offset.unwrap_or(1).max(1),
            limit: params.limit,
            max_bytes,
        };
        // A small file is read in place: handing it to the blocking pool costs
        // more (two thread wake-ups) than the read itself.
        let small = std::fs::metadata(target.physical()).is_ok_and(|m| m.len() <= INLINE_READ_BYTES);
        if small {
            return read(target.physical(), shown, window);
        }
        tokio::task::spawn_blocking(move || read(target.physical(), shown, window))
            .await
            .map_err(|e| ToolError::new(format!("internal error: {e}")))?
    }

    fn render(output: Output) -> String {
        if !output.truncated {
            return output.content;
        }
        let mut text = String::with_capacity(output.content.len() + 160);
        text.push_str(&output.content);
        if !text.ends_with('\n') && !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!(
            "[execlayer: lines {}-{} of {}; more remains: call filesystem_read with offset={}]",
            output.start_line,
            output.end_line,
            output.total_lines,
            output.next_offset.unwrap_or(output.end_line + 1)
        ));
        text
    }
}

/// Which part of the file a call wants.
#[derive(Debug, Clone, Copy)]
struct Window {
    offset: u64,
    limit: Option<u64>,
    max_bytes: usize,
}

fn read(physical: &std::path::Path, shown: String, window: Window) -> Result<Output, ToolError> {
    let meta = std::fs::metadata(physical).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ToolError::new(format!(
            "{shown} does not exist; list the directory with filesystem_list to find the file"
        )),
        _ => ToolError::new(format!("cannot read {shown}: {e}")),
    })?;
    if meta.is_dir() {
        return Err(ToolError::new(format!(
            "{shown} is a directory; use filesystem_list to see its entries"
        )));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(ToolError::new(format!(
            "{shown} is {} bytes, over the {MAX_FILE_BYTES}-byte limit for reading; search it with filesystem_search instead",
            meta.len()
        )));
    }
    let bytes = std::fs::read(physical).map_err(|e| ToolError::new(format!("cannot read {shown}: {e}")))?;
    if looks_binary(&bytes) {
        return Err(ToolError::new(format!(
            "{shown} is a binary file ({} bytes); filesystem_read returns text only",
            bytes.len()
        )));
    }
    let (text, lossy) = match String::from_utf8(bytes) {
        Ok(text) => (text, false),
        Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
    };
    Ok(page(text, shown, window, meta.len(), lossy))
}

/// Cuts lines `[offset, offset + limit)` out of `text`, within the byte cap.
fn page(text: String, shown: String, window: Window, size: u64, lossy: bool) -> Output {
    let Window {
        offset,
        limit,
        max_bytes,
    } = window;
    let total_lines = count_lines(&text);
    let limit = limit.unwrap_or(u64::MAX).max(1);
    let mut start_byte = text.len();
    let mut line_no = 1u64;
    let mut pos = 0usize;
    // Find the start of line `offset`.
    while line_no < offset {
        match text[pos..].find('\n') {
            Some(i) => {
                pos += i + 1;
                line_no += 1;
            }
            None => {
                pos = text.len();
                break;
            }
        }
    }
    if line_no == offset && pos < text.len() {
        start_byte = pos;
    }
    let mut end_byte = start_byte;
    let mut taken = 0u64;
    let mut cut_line = false;
    while end_byte < text.len() && taken < limit {
        let line_end = text[end_byte..].find('\n').map_or(text.len(), |i| end_byte + i + 1);
        if line_end - start_byte > max_bytes {
            if taken == 0 {
                // One line longer than the cap: return its head.
                end_byte = start_byte + super::truncate_str(&text[start_byte..line_end], max_bytes).0.len();
                taken = 1;
                cut_line = true;
            }
            break;
        }
        end_byte = line_end;
        taken += 1;
    }
    let start_line = if taken > 0 { offset } else { 0 };
    let end_line = if taken > 0 { offset + taken - 1 } else { 0 };
    let truncated = taken > 0 && end_line < total_lines || cut_line;
    Output {
        path: shown,
        start_line,
        end_line,
        total_lines,
        size_bytes: size,
        truncated,
        next_offset: (truncated && end_line < total_lines).then_some(end_line + 1),
        lossy,
        content: if start_byte == 0 && end_byte == text.len() {
            // The whole file: hand the buffer over instead of copying it.
            text
        } else {
            text[start_byte..end_byte].to_owned()
        },
    }
}

fn count_lines(text: &str) -> u64 {
    let newlines = text.bytes().filter(|b| *b == b'\n').count() as u64;
    if text.is_empty() || text.ends_with('\n') {
        newlines
    } else {
        newlines + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_by_lines() {
        let text = "a\nb\nc\nd";
        let w = |offset, limit| Window {
            offset,
            limit,
            max_bytes: MAX_RETURN_BYTES,
        };
        let all = page(text.into(), "f".into(), w(1, None), 7, false);
        assert_eq!(
            (all.start_line, all.end_line, all.total_lines, all.truncated),
            (1, 4, 4, false)
        );
        assert_eq!(all.content, text);
        let mid = page(text.into(), "f".into(), w(2, Some(2)), 7, false);
        assert_eq!(mid.content, "b\nc\n");
        assert_eq!((mid.truncated, mid.next_offset), (true, Some(4)));
        let past = page(text.into(), "f".into(), w(9, None), 7, false);
        assert_eq!((past.start_line, past.end_line, past.content.as_str()), (0, 0, ""));
        let empty = page(String::new(), "f".into(), w(1, None), 0, false);
        assert_eq!((empty.total_lines, empty.truncated), (0, false));
    }

    #[test]
    fn caps_bytes_per_call() {
        let line = "x".repeat(1000) + "\n";
        let text = line.repeat(600);
        let w = Window {
            offset: 1,
            limit: None,
            max_bytes: MAX_RETURN_BYTES,
        };
        let first = page(text.clone(), "f".into(), w, text.len() as u64, false);
        assert!(first.content.len() <= MAX_RETURN_BYTES);
        assert!(first.truncated);
        let next = first.next_offset.unwrap();
        assert_eq!(next, first.end_line + 1);
        let huge = "y".repeat(MAX_RETURN_BYTES * 2);
        let cut = page(huge.clone(), "f".into(), w, huge.len() as u64, false);
        assert_eq!(cut.content.len(), MAX_RETURN_BYTES);
        assert!(cut.truncated);
        let whole = Window {
            max_bytes: MAX_RETURN_BYTES_LIMIT,
            ..w
        };
        let all = page(text.clone(), "f".into(), whole, text.len() as u64, false);
        assert!(!all.truncated && all.content.len() == text.len());
    }
}
