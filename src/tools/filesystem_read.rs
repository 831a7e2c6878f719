//! `filesystem_read`: the text of workspace files, by lines, paged, numbered
//! as `cat -n` numbers them when asked.
//!
//! A file's text travels alone in its content block, byte for byte; what
//! execlayer says about it (the lines shown, how to go on, why a file was not
//! read) travels in note blocks and in the structured result, so text an agent
//! copies back into a file never carries a note.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Annotations, Block, Tool, ToolContext, ToolError};
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

/// Most files one call may read.
pub const MAX_PATHS: usize = 64;
/// Width of the line-number column, as `cat -n` prints it.
const NUMBER_WIDTH: usize = 6;

pub struct FilesystemRead;

/// The arguments, checked: exactly one of `path` and `paths`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "RawParams")]
pub struct Params {
    pub target: Target,
    pub offset: Option<u64>,
    pub limit: Option<u64>,
    pub max_bytes: Option<usize>,
    pub line_numbers: bool,
}

/// The schema is that of the arguments as sent.
impl JsonSchema for Params {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        RawParams::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        RawParams::json_schema(generator)
    }
}

/// What to read.
#[derive(Debug)]
pub enum Target {
    One(String),
    Many(Vec<FileRange>),
}

impl TryFrom<RawParams> for Params {
    type Error = String;

    fn try_from(raw: RawParams) -> Result<Self, String> {
        let target = match (raw.path, raw.paths) {
            (Some(_), Some(_)) => {
                return Err("give either `path` (one file) or `paths` (several files), not both".into());
            }
            (None, None) => {
                return Err(
                    "missing field `path`: set `path` to read one file, or `paths` (a list of {path, offset?, limit?}) to read several"
                        .into(),
                );
            }
            (Some(path), None) => Target::One(path),
            (None, Some(list)) if list.is_empty() || list.len() > MAX_PATHS => {
                return Err(format!(
                    "`paths` must list from 1 to {MAX_PATHS} files; it lists {}",
                    list.len()
                ));
            }
            (None, Some(list)) => Target::Many(list),
        };
        Ok(Self {
            target,
            offset: raw.offset,
            limit: raw.limit,
            max_bytes: raw.max_bytes,
            line_numbers: raw.line_numbers,
        })
    }
}

/// Read one file (`path`) or several (`paths`); `Params` checks that exactly one is given.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawParams {
    /// The file to read, relative to the workspace root (or absolute inside it). Give this or `paths`.
    #[serde(default)]
    pub path: Option<String>,
    /// Several files in one call (at most 64), each with its own range, e.g. `[{"path": "src/a.rs"}, {"path": "src/b.rs", "offset": 40, "limit": 20}]`. Each file is read, or fails, on its own.
    #[serde(default)]
    pub paths: Option<Vec<FileRange>>,
    /// First line to return, counting from 1. Default 1. With `paths`, the default for entries that give none.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Most lines to return. Default: as many as fit in `max_bytes`. With `paths`, the default for entries that give none.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Most bytes of file text to return in this call, all files together (1 to 16777216). Default 262144 (256 KiB). Line-number prefixes are not counted.
    #[serde(default)]
    pub max_bytes: Option<usize>,
    /// Prefix each line with its number, right-aligned in a 6-wide column, then a tab, as `cat -n` does (`    12\tfn main() {`). For citing lines and building patch hunks; never copy the numbers into a file.
    #[serde(default)]
    pub line_numbers: bool,
}

/// One file of a `paths` call.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRange {
    /// File path relative to the workspace root (or absolute inside it).
    pub path: String,
    /// First line to return, counting from 1.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Most lines to return.
    #[serde(default)]
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// A `path` call: the file's fields, at the top level.
    #[serde(flatten)]
    pub file: Option<FileEntry>,
    /// A `paths` call: one entry per file, in the order asked; an entry with `error` was not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileEntry>>,
    /// Whether the text is shown with line numbers.
    #[serde(skip)]
    #[schemars(skip)]
    pub line_numbers: bool,
}

/// One file's read, or why it failed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FileEntry {
    /// The file, relative to the workspace root (as asked, when it did not resolve).
    pub path: String,
    /// Why this file was not read (only in `files`; the other files are unaffected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The lines shown, when the file was read.
    #[serde(flatten)]
    pub lines: Option<Lines>,
    /// The text itself travels once, in a text content block.
    #[serde(skip)]
    #[schemars(skip)]
    pub content: String,
}

/// Which lines of a file were returned.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Lines {
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
    /// True when the last line shown was cut at `max_bytes` (a line longer than the cap).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub line_cut: bool,
    /// True when the file was not valid UTF-8 and bad bytes were replaced by U+FFFD.
    pub lossy: bool,
}

impl Tool for FilesystemRead {
    const NAME: &'static str = "filesystem_read";
    const TITLE: &'static str = "Read files";
    const DESCRIPTION: &'static str = "Read UTF-8 text files inside the workspace, by lines. `path` reads one file; `paths` reads several in one call, each with its own `offset`/`limit` and its own error (a missing file does not fail the others; the call is an error only when no file could be read). `line_numbers: true` prefixes each line with its number as `cat -n` does (a 6-wide right-aligned column, then a tab): use them to cite lines and build patch hunks, never copy them into a file. A file's text travels alone in its own content block, exactly as in the file; execlayer's notes (which lines were shown, how to go on) come in separate blocks that start with `[execlayer:` and in the structured result (`start_line`, `end_line`, `total_lines`, `next_offset`). At most 256 KiB of text per call unless `max_bytes` says otherwise. Binary files are refused; an `offset` past the end of a file is an error that says how many lines it has.";
    const RISK: Risk = Risk::Low;
    const ANNOTATIONS: Annotations = Annotations::READ_ONLY;
    type Params = Params;
    type Output = Output;

    fn describe(&self, _ctx: &ToolContext, params: &Params) -> String {
        match &params.target {
            Target::One(path) => format!("read {path}"),
            Target::Many(paths) => format!(
                "read {}",
                paths.iter().map(|p| p.path.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    async fn run(&self, ctx: &ToolContext, params: Params) -> Result<Output, ToolError> {
        let max_bytes = params.max_bytes.unwrap_or(MAX_RETURN_BYTES);
        if !(1..=MAX_RETURN_BYTES_LIMIT).contains(&max_bytes) {
            return Err(ToolError::new(format!(
                "max_bytes must be from 1 to {MAX_RETURN_BYTES_LIMIT}; got {max_bytes}"
            )));
        }
        let window = |offset: Option<u64>, limit: Option<u64>, max_bytes| Window {
            offset: offset.or(params.offset).unwrap_or(1).max(1),
            limit: limit.or(params.limit),
            max_bytes,
        };
        let list = match params.target {
            Target::One(ref path) => {
                let file = read_one(ctx, path, window(None, None, max_bytes)).await?;
                return Ok(Output {
                    file: Some(file),
                    files: None,
                    line_numbers: params.line_numbers,
                });
            }
            Target::Many(ref list) => list,
        };
        let mut budget = max_bytes;
        let mut files = Vec::with_capacity(list.len());
        for range in list {
            if budget == 0 {
                files.push(FileEntry::failed(
                    range.path.clone(),
                    format!(
                        "not read: the files before it used up this call's max_bytes ({max_bytes}); read it in another call"
                    ),
                ));
                continue;
            }
            match read_one(ctx, &range.path, window(range.offset, range.limit, budget)).await {
                Ok(file) => {
                    budget -= file.content.len().min(budget);
                    files.push(file);
                }
                Err(e) => files.push(FileEntry::failed(range.path.clone(), e.message)),
            }
        }
        Ok(Output {
            file: None,
            files: Some(files),
            line_numbers: params.line_numbers,
        })
    }

    /// A `paths` call in which no file could be read is an error.
    fn is_error(output: &Output) -> bool {
        output
            .files
            .as_ref()
            .is_some_and(|files| files.iter().all(|f| f.error.is_some()))
    }

    fn render(output: Output) -> String {
        Self::render_blocks(output)
            .into_iter()
            .map(|b| b.text)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A `path` call: the file's text, then a note when there is something to
    /// say. A `paths` call: for each file a note naming it and its lines, then
    /// its text.
    fn render_blocks(output: Output) -> Vec<Block> {
        let numbered = output.line_numbers;
        let mut blocks = Vec::new();
        if let Some(file) = output.file {
            let note = file.lines.as_ref().and_then(single_note);
            blocks.push(Block::text(file.text(numbered)));
            blocks.extend(note.map(Block::note));
        }
        for file in output.files.into_iter().flatten() {
            match (&file.error, &file.lines) {
                (Some(error), _) => {
                    blocks.push(Block::note(format!("[execlayer: {} was not read: {error}]", file.path)))
                }
                (None, Some(lines)) => {
                    blocks.push(Block::note(format!(
                        "[execlayer: {}, {}]",
                        file.path,
                        describe_lines(lines)
                    )));
                    blocks.push(Block::text(file.text(numbered)));
                }
                (None, None) => {}
            }
        }
        blocks
    }
}

impl FileEntry {
    fn failed(path: String, error: String) -> Self {
        Self {
            path,
            error: Some(error),
            lines: None,
            content: String::new(),
        }
    }

    /// The text as shown: as in the file, or numbered as `cat -n` numbers it.
    fn text(self, numbered: bool) -> String {
        let first = self.lines.as_ref().map_or(1, |l| l.start_line);
        if !numbered || self.content.is_empty() {
            return self.content;
        }
        let count = self.content.split_inclusive('\n').count();
        let mut out = String::with_capacity(self.content.len() + count * (NUMBER_WIDTH + 1));
        for (i, line) in self.content.split_inclusive('\n').enumerate() {
            push_line_number(&mut out, first + i as u64);
            out.push('\t');
            out.push_str(line);
        }
        out
    }
}

/// Appends `n` right-aligned in [`NUMBER_WIDTH`] columns (wider numbers take
/// the room they need), as `cat -n` prints it; no formatting machinery, as
/// this runs once per line.
fn push_line_number(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for _ in (digits.len() - start)..NUMBER_WIDTH {
        out.push(' ');
    }
    for &d in &digits[start..] {
        out.push(char::from(d));
    }
}

/// The note after a single file's text; `None` when the whole file was shown.
fn single_note(lines: &Lines) -> Option<String> {
    let whole = lines.start_line <= 1 && lines.end_line == lines.total_lines && !lines.line_cut;
    if whole && !lines.lossy && lines.total_lines > 0 {
        return None;
    }
    Some(format!("[execlayer: {}]", describe_lines(lines)))
}

/// Which lines were shown and how to go on, for a model.
fn describe_lines(lines: &Lines) -> String {
    let mut text = if lines.total_lines == 0 {
        "the file is empty (0 lines)".to_owned()
    } else if lines.start_line <= 1 && lines.end_line == lines.total_lines && !lines.line_cut {
        format!("the whole file, {} lines", lines.total_lines)
    } else {
        format!("lines {}-{} of {}", lines.start_line, lines.end_line, lines.total_lines)
    };
    if lines.line_cut {
        text.push_str(&format!(
            "; line {} is longer than max_bytes and only its beginning is shown: raise max_bytes (up to {MAX_RETURN_BYTES_LIMIT}) to see all of it",
            lines.end_line
        ));
    }
    match lines.next_offset {
        Some(next) => text.push_str(&format!("; more remains: call filesystem_read with offset={next}")),
        None if lines.total_lines > 0 && lines.end_line == lines.total_lines && lines.start_line > 1 => {
            text.push_str("; that is the end of the file")
        }
        None => {}
    }
    if lines.lossy {
        text.push_str("; the file is not valid UTF-8: bad bytes are shown as U+FFFD, so do not write this text back");
    }
    text
}

/// Resolves and reads one file (in place when small, else on the blocking pool).
async fn read_one(ctx: &ToolContext, path: &str, window: Window) -> Result<FileEntry, ToolError> {
    let target = ctx.workspace.resolve(path, Access::Read)?;
    let shown = target.display();
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

/// Which part of the file a call wants.
#[derive(Debug, Clone, Copy)]
struct Window {
    offset: u64,
    limit: Option<u64>,
    max_bytes: usize,
}

fn read(physical: &std::path::Path, shown: String, window: Window) -> Result<FileEntry, ToolError> {
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
    page(text, shown, window, meta.len(), lossy)
}

/// Cuts lines `[offset, offset + limit)` out of `text`, within the byte cap;
/// an offset past the last line is an error that says how many lines there are.
fn page(text: String, shown: String, window: Window, size: u64, lossy: bool) -> Result<FileEntry, ToolError> {
    let Window {
        offset,
        limit,
        max_bytes,
    } = window;
    let total_lines = count_lines(&text);
    if offset > total_lines.max(1) {
        let lines = if total_lines == 1 { "line" } else { "lines" };
        let from = if total_lines == 0 {
            "it is empty: omit offset".to_owned()
        } else {
            format!("give an offset from 1 to {total_lines}")
        };
        return Err(ToolError::new(format!(
            "{shown}: the file has {total_lines} {lines}; offset {offset} is past the end ({from})"
        )));
    }
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
    Ok(FileEntry {
        path: shown,
        error: None,
        lines: Some(Lines {
            start_line,
            end_line,
            total_lines,
            size_bytes: size,
            truncated,
            next_offset: (truncated && end_line < total_lines).then_some(end_line + 1),
            line_cut: cut_line,
            lossy,
        }),
        content: if start_byte == 0 && end_byte == text.len() {
            // The whole file: hand the buffer over instead of copying it.
            text
        } else {
            text[start_byte..end_byte].to_owned()
        },
    })
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

    fn w(offset: u64, limit: Option<u64>) -> Window {
        Window {
            offset,
            limit,
            max_bytes: MAX_RETURN_BYTES,
        }
    }

    fn lines(f: &FileEntry) -> (u64, u64, u64, bool) {
        let l = f.lines.as_ref().unwrap();
        (l.start_line, l.end_line, l.total_lines, l.truncated)
    }

    #[test]
    fn pages_by_lines() {
        let text = "a\nb\nc\nd";
        let all = page(text.into(), "f".into(), w(1, None), 7, false).unwrap();
        assert_eq!(lines(&all), (1, 4, 4, false));
        assert_eq!(all.content, text);
        let mid = page(text.into(), "f".into(), w(2, Some(2)), 7, false).unwrap();
        assert_eq!(mid.content, "b\nc\n");
        assert_eq!(mid.lines.as_ref().unwrap().next_offset, Some(4));
        assert!(mid.lines.as_ref().unwrap().truncated);
        let last = page(text.into(), "f".into(), w(4, None), 7, false).unwrap();
        assert_eq!((lines(&last), last.content.as_str()), ((4, 4, 4, false), "d"));
        let empty = page(String::new(), "f".into(), w(1, None), 0, false).unwrap();
        assert_eq!(lines(&empty), (0, 0, 0, false));
    }

    #[test]
    fn an_offset_past_the_end_says_how_many_lines_there_are() {
        let err = page("one\n".into(), "f.txt".into(), w(99, None), 4, false).unwrap_err();
        assert_eq!(
            err.message,
            "f.txt: the file has 1 line; offset 99 is past the end (give an offset from 1 to 1)"
        );
        let err = page(String::new(), "e".into(), w(2, None), 0, false).unwrap_err();
        assert!(
            err.message
                .contains("has 0 lines; offset 2 is past the end (it is empty"),
            "{}",
            err.message
        );
        let err = page("a\nb".into(), "f".into(), w(3, None), 3, false).unwrap_err();
        assert!(err.message.contains("has 2 lines; offset 3"), "{}", err.message);
    }

    #[test]
    fn caps_bytes_per_call() {
        let line = "x".repeat(1000) + "\n";
        let text = line.repeat(600);
        let w = w(1, None);
        let first = page(text.clone(), "f".into(), w, text.len() as u64, false).unwrap();
        assert!(first.content.len() <= MAX_RETURN_BYTES);
        let l = first.lines.as_ref().unwrap();
        assert!(l.truncated && !l.line_cut);
        assert_eq!(l.next_offset, Some(l.end_line + 1));
        let huge = "y".repeat(MAX_RETURN_BYTES * 2);
        let cut = page(huge.clone(), "f".into(), w, huge.len() as u64, false).unwrap();
        assert_eq!(cut.content.len(), MAX_RETURN_BYTES);
        let l = cut.lines.as_ref().unwrap();
        assert!(l.truncated && l.line_cut && l.next_offset.is_none());
        let whole = Window {
            max_bytes: MAX_RETURN_BYTES_LIMIT,
            ..w
        };
        let all = page(text.clone(), "f".into(), whole, text.len() as u64, false).unwrap();
        assert!(!all.lines.as_ref().unwrap().truncated && all.content.len() == text.len());
    }

    #[test]
    fn line_numbers_match_cat_n() {
        let file = page("a\n\nc\r\nlast".into(), "f".into(), w(2, None), 9, false).unwrap();
        assert_eq!(file.text(true), "     2\t\n     3\tc\r\n     4\tlast");
        let file = page("x\n".repeat(1_000_001), "f".into(), w(999_999, Some(2)), 0, false).unwrap();
        assert_eq!(file.text(true), "999999\tx\n1000000\tx\n");
    }

    #[test]
    fn notes_never_share_a_block_with_the_text() {
        let paged = page("a\nb\nc\n".into(), "f".into(), w(1, Some(1)), 6, false).unwrap();
        let blocks = FilesystemRead::render_blocks(Output {
            file: Some(paged),
            files: None,
            line_numbers: false,
        });
        assert_eq!(
            blocks,
            [
                Block::text("a\n"),
                Block::note("[execlayer: lines 1-1 of 3; more remains: call filesystem_read with offset=2]")
            ]
        );
        let whole = page("a\n".into(), "f".into(), w(1, None), 2, false).unwrap();
        let blocks = FilesystemRead::render_blocks(Output {
            file: Some(whole),
            files: None,
            line_numbers: false,
        });
        assert_eq!(blocks, [Block::text("a\n")], "a whole file needs no note");
    }
}
