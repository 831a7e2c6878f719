//! `filesystem_search`: a regex search over the workspace's text files.
//!
//! Built on ripgrep's own crates: `ignore`'s parallel walker (one thread per
//! core, `.gitignore` honoured, `.git` skipped) feeds `grep-searcher`, which
//! reads each file in blocks and runs `grep-regex`'s line-oriented matcher over
//! them. A file whose first block holds a NUL byte is binary and skipped (git's
//! rule, on the block ripgrep reads first). Files are visited in whatever order
//! the threads reach them; the answer is made deterministic by keeping only the
//! first `max_results` matches in path order (component by component, as a
//! sorted tree listing shows them), sorting just those. Once that many are held,
//! files and folders that sort after the last one kept are not opened at all.

use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use grep_regex::RegexMatcherBuilder;
use grep_searcher::{Searcher, SearcherBuilder, Sink, SinkMatch};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::filesystem_list::walker;
use super::{Annotations, Tool, ToolContext, ToolError, truncate_str};
use crate::policy::Risk;
use crate::workspace::{Access, display_relative};

pub const DEFAULT_MAX_RESULTS: usize = 200;
pub const MAX_RESULTS: usize = 5_000;
/// Longest line text returned per match.
pub const MAX_LINE_CHARS: usize = 400;
/// Longest line the searcher will hold in memory; a file with a longer line
/// (a minified bundle, a data dump) is left out of the search.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

pub struct FilesystemSearch;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Regular expression (Rust regex syntax), matched line by line.
    pub pattern: String,
    /// File or directory to search, relative to the workspace root. Default: the root.
    #[serde(default)]
    pub path: Option<String>,
    /// Only search files matching this glob, as .gitignore reads globs: without a `/` it matches file names at any depth (`*.rs`, `*.{rs,toml}`); with one it matches paths from the workspace root (`src/**/*.ts`).
    #[serde(default)]
    pub glob: Option<String>,
    /// Most matches to return (1 to 5000). Default 200.
    #[serde(default)]
    pub max_results: Option<usize>,
    /// Match letters in either case. Default false.
    #[serde(default)]
    pub case_insensitive: bool,
    /// Match `pattern` as plain text, not as a regular expression: `fn run(`
    /// and `a.b[0]` find themselves. Default false.
    #[serde(default)]
    pub literal: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Match {
    /// File path relative to the workspace root.
    pub path: String,
    /// Line number, counting from 1.
    pub line_number: u64,
    /// The line's text travels once, in the text content block
    /// (`path:line_number: text`).
    #[serde(skip)]
    #[schemars(skip)]
    pub line: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// Where each match is, in path order; the matching lines are in the text content block.
    pub matches: Vec<Match>,
    /// Text files searched.
    pub files_searched: u64,
    /// True when more matches exist than `max_results`: the first ones in path order are returned.
    pub truncated: bool,
}

/// Why `pattern` cannot be searched for, said about the pattern as the agent
/// wrote it (the matcher's own message shows it wrapped in a group), with
/// the way out.
fn pattern_error(params: &Params, matcher_says: &str) -> String {
    if params.pattern.contains(['\n', '\r']) || params.pattern.contains("\\n") {
        return format!(
            "pattern cannot be searched for: {matcher_says}\nThe search matches one line at a time, so a pattern cannot match a line break: search for one line of the text."
        );
    }
    if params.literal {
        return format!("pattern cannot be searched for: {matcher_says}");
    }
    let why = match regex::Regex::new(&params.pattern) {
        Err(e) => e.to_string(),
        Ok(_) => matcher_says.to_owned(),
    };
    format!(
        "pattern is not a valid regular expression:\n{why}\nTo search for the text as written, pass `literal: true`; or escape the characters a regular expression treats specially with `\\` (`\\(` `\\)` `\\[` `\\{{` `\\.` `\\*` `\\+` `\\?` `\\|` `\\^` `\\$`)."
    )
}

impl Tool for FilesystemSearch {
    const NAME: &'static str = "filesystem_search";
    const TITLE: &'static str = "Search files";
    const DESCRIPTION: &'static str = "Search the workspace's text files for a regular expression, line by line, honouring .gitignore. Returns each match as `path:line_number: line` in the text, sorted by path (the structured result lists path and line_number), at most max_results: when more exist, the first ones in path order and `truncated: true`. Binary files (a NUL byte in the first block) are skipped. Optional: a starting path, a glob filter, case-insensitive matching, `literal: true` to match the pattern as plain text (for code with parentheses, brackets, dots).";
    const RISK: Risk = Risk::Low;
    const ANNOTATIONS: Annotations = Annotations::READ_ONLY;
    type Params = Params;
    type Output = Output;

    fn describe(&self, _ctx: &ToolContext, params: &Params) -> String {
        format!("search for /{}/", params.pattern)
    }

    async fn run(&self, ctx: &ToolContext, params: Params) -> Result<Output, ToolError> {
        let max = params.max_results.unwrap_or(DEFAULT_MAX_RESULTS);
        if !(1..=MAX_RESULTS).contains(&max) {
            return Err(ToolError::new(format!(
                "max_results must be from 1 to {MAX_RESULTS}; got {max}"
            )));
        }
        let pattern = if params.literal {
            regex::escape(&params.pattern)
        } else {
            params.pattern.clone()
        };
        let matcher = RegexMatcherBuilder::new()
            .case_insensitive(params.case_insensitive)
            .multi_line(true)
            .line_terminator(Some(b'\n'))
            .crlf(true)
            .size_limit(8 * 1024 * 1024)
            .build(&pattern)
            .map_err(|e| ToolError::new(pattern_error(&params, &e.to_string())))?;
        let start = ctx
            .workspace
            .resolve(params.path.as_deref().unwrap_or("."), Access::Read)?;
        let root = ctx.workspace.root().to_path_buf();
        let glob = match &params.glob {
            Some(g) => {
                let mut builder = ignore::overrides::OverrideBuilder::new(&root);
                builder
                    .add(g)
                    .map_err(|e| ToolError::new(format!("glob {g:?} is not valid: {e}")))?;
                Some(
                    builder
                        .build()
                        .map_err(|e| ToolError::new(format!("glob {g:?} is not valid: {e}")))?,
                )
            }
            None => None,
        };
        let cancel = ctx.cancel.clone();
        tokio::task::spawn_blocking(move || {
            let mut builder = walker(start.physical(), None);
            if let Some(glob) = glob {
                builder.overrides(glob);
            }
            search(builder, &root, &matcher, max, &cancel)
        })
        .await
        .map_err(|e| ToolError::new(format!("internal error: {e}")))?
    }

    fn render(output: Output) -> String {
        let mut text = String::new();
        for m in &output.matches {
            text.push_str(&m.path);
            text.push(':');
            text.push_str(&m.line_number.to_string());
            text.push_str(": ");
            text.push_str(&m.line);
            text.push('\n');
        }
        if output.matches.is_empty() {
            text.push_str(&format!("No matches in {} files.\n", output.files_searched));
        }
        if output.truncated {
            text.push_str(&format!(
                "[execlayer: more matches exist; these are the first {} in path order. Narrow the pattern, path or glob, or raise max_results]\n",
                output.matches.len()
            ));
        }
        text
    }
}

/// Runs the parallel walk and search; returns the first `max` matches in path order.
fn search(
    builder: ignore::WalkBuilder,
    root: &std::path::Path,
    matcher: &grep_regex::RegexMatcher,
    max: usize,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Output, ToolError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let mut builder = builder;
    builder.threads(threads);
    let kept = Kept::new(max);
    let files_searched = AtomicU64::new(0);
    builder.build_parallel().run(|| {
        let mut searcher = SearcherBuilder::new()
            .line_number(true)
            .line_terminator(grep_matcher::LineTerminator::crlf())
            // Bytes as they are: UTF-16 text, full of NULs, counts as binary (git's rule).
            .bom_sniffing(false)
            .heap_limit(Some(MAX_LINE_BYTES))
            .build();
        let (kept, files_searched) = (&kept, &files_searched);
        let mut head = vec![0; FIRST_BLOCK];
        Box::new(move |item| {
            use ignore::WalkState;
            if cancel.is_cancelled() {
                return WalkState::Quit;
            }
            let Ok(item) = item else { return WalkState::Continue };
            let Some(file_type) = item.file_type() else {
                return WalkState::Continue;
            };
            let key = || display_relative(item.path().strip_prefix(root).unwrap_or(item.path()));
            if kept.has_cutoff.load(Ordering::Relaxed) && kept.sorts_after_cutoff(&key()) {
                // Nothing in it could be among the first `max` matches.
                return if file_type.is_dir() {
                    WalkState::Skip
                } else {
                    WalkState::Continue
                };
            }
            // Symbolic links are not followed: a link's target may lie outside.
            if !file_type.is_file() {
                return WalkState::Continue;
            }
            let mut sink = FileMatches::new(max);
            // Binary, unreadable, or a line over MAX_LINE_BYTES: left out.
            if let Ok(true) = search_file(&mut searcher, matcher, item.path(), &mut sink, &mut head) {
                files_searched.fetch_add(1, Ordering::Relaxed);
                if !sink.found.is_empty() {
                    kept.add(key(), sink);
                }
            }
            WalkState::Continue
        })
    });
    if cancel.is_cancelled() {
        return Err(ToolError::new("search cancelled"));
    }
    let (matches, truncated) = kept.finish();
    Ok(Output {
        matches,
        files_searched: files_searched.load(Ordering::Relaxed),
        truncated,
    })
}

/// Searches one file; `Ok(false)` when its first block shows it is binary.
fn search_file(
    searcher: &mut Searcher,
    matcher: &grep_regex::RegexMatcher,
    path: &std::path::Path,
    sink: &mut FileMatches,
    head: &mut Vec<u8>,
) -> std::io::Result<bool> {
    let file = open_no_follow(path)?;
    let mut reader = FirstBlockCheck {
        file,
        head,
        filled: 0,
        served: 0,
        state: Block::Unread,
    };
    searcher.search_reader(matcher, &mut reader, &mut *sink)?;
    Ok(reader.state != Block::Binary)
}

#[cfg(unix)]
fn open_no_follow(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    // A file swapped for a link after the walk saw it is not opened through the link.
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(not(unix))]
fn open_no_follow(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

/// Bytes read first from each file and checked for a NUL (ripgrep's block size).
const FIRST_BLOCK: usize = 64 * 1024;

/// A reader that reads a file's first block itself and looks for a NUL byte
/// there: then the file is binary and the reader reports end of file before
/// the searcher sees a byte of it. The block buffer is reused across files.
struct FirstBlockCheck<'a> {
    file: std::fs::File,
    head: &'a mut Vec<u8>,
    filled: usize,
    served: usize,
    state: Block,
}

#[derive(PartialEq, Eq)]
enum Block {
    Unread,
    Serving,
    Rest,
    Binary,
}

impl Read for FirstBlockCheck<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.state {
                Block::Binary => return Ok(0),
                Block::Rest => return self.file.read(buf),
                Block::Serving => {
                    let left = &self.head[self.served..self.filled];
                    if left.is_empty() {
                        self.state = Block::Rest;
                        continue;
                    }
                    let n = left.len().min(buf.len());
                    buf[..n].copy_from_slice(&left[..n]);
                    self.served += n;
                    return Ok(n);
                }
                Block::Unread => {
                    // Sized once per thread, never cleared: only `filled` bytes count.
                    if self.head.len() < FIRST_BLOCK {
                        self.head.resize(FIRST_BLOCK, 0);
                    }
                    self.filled = self.file.read(&mut self.head[..FIRST_BLOCK])?;
                    self.state = if self.head[..self.filled].contains(&0) {
                        Block::Binary
                    } else {
                        Block::Serving
                    };
                }
            }
        }
    }
}

/// The matches found in one file, at most `max` of them (a file's lines come in order).
struct FileMatches {
    max: usize,
    found: Vec<(u64, String)>,
    more: bool,
}

impl FileMatches {
    fn new(max: usize) -> Self {
        Self {
            max,
            found: Vec::new(),
            more: false,
        }
    }
}

impl Sink for FileMatches {
    type Error = std::io::Error;

    fn matched(&mut self, _searcher: &Searcher, mat: &SinkMatch<'_>) -> Result<bool, Self::Error> {
        if self.found.len() == self.max {
            self.more = true;
            return Ok(false);
        }
        let line = mat.bytes();
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = String::from_utf8_lossy(line);
        self.found.push((
            mat.line_number().unwrap_or(0),
            truncate_str(&text, MAX_LINE_CHARS).0.to_owned(),
        ));
        Ok(true)
    }
}

/// Orders workspace paths as a sorted tree listing does: component by
/// component (`a/b` before `a.txt`, since `a` sorts before `a.txt`).
fn tree_order(a: &str, b: &str) -> std::cmp::Ordering {
    let rank = |c: u8| if c == b'/' { 0 } else { u16::from(c) + 1 };
    a.bytes().map(rank).cmp(b.bytes().map(rank))
}

/// The first `max` matches in path order, shared by the walker's threads.
struct Kept {
    max: usize,
    /// Set once a cutoff exists, so the walk asks the lock only then.
    has_cutoff: std::sync::atomic::AtomicBool,
    state: Mutex<KeptState>,
}

#[derive(Default)]
struct KeptState {
    /// Matches kept so far: (path, line number, line), not yet sorted.
    items: Vec<(String, u64, String)>,
    /// Some matches were dropped because `max` sorted before them.
    dropped: bool,
    /// Once `max` are held: the path of the last of them in order.
    cutoff: Option<String>,
}

impl Kept {
    fn new(max: usize) -> Self {
        Self {
            max,
            has_cutoff: std::sync::atomic::AtomicBool::new(false),
            state: Mutex::new(KeptState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeptState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `path` (and everything below it) sorts after the last match that
    /// would be returned: then it cannot change the answer.
    fn sorts_after_cutoff(&self, path: &str) -> bool {
        self.lock()
            .cutoff
            .as_deref()
            .is_some_and(|cut| tree_order(path, cut) == std::cmp::Ordering::Greater)
    }

    fn add(&self, path: String, file: FileMatches) {
        let mut state = self.lock();
        state.dropped |= file.more;
        state
            .items
            .extend(file.found.into_iter().map(|(n, line)| (path.clone(), n, line)));
        if state.items.len() >= 2 * self.max {
            Self::cut(&mut state, self.max);
            if state.cutoff.is_some() {
                self.has_cutoff.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Sorts what is held and keeps the first `max`, remembering the cutoff.
    fn cut(state: &mut KeptState, max: usize) {
        state
            .items
            .sort_unstable_by(|a, b| tree_order(&a.0, &b.0).then(a.1.cmp(&b.1)));
        if state.items.len() > max {
            state.items.truncate(max);
            state.dropped = true;
        }
        // Only once more than `max` are known to exist: a path after the cutoff
        // then cannot change the answer, nor whether it was truncated.
        if state.dropped && state.items.len() == max {
            state.cutoff = state.items.last().map(|(p, _, _)| p.clone());
        }
    }

    fn finish(self) -> (Vec<Match>, bool) {
        let mut state = self.state.into_inner().unwrap_or_else(|p| p.into_inner());
        Self::cut(&mut state, self.max);
        let matches = state
            .items
            .into_iter()
            .map(|(path, line_number, line)| Match {
                path,
                line_number,
                line,
            })
            .collect();
        (matches, state.dropped)
    }
}
