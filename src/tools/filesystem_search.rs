//! `filesystem_search`: a regex search over the workspace's text files.

use regex::bytes::RegexBuilder;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::filesystem_list::walker;
use super::{Annotations, Tool, ToolContext, ToolError, truncate_str};
use crate::fsutil::looks_binary;
use crate::policy::Risk;
use crate::workspace::{Access, display_relative};

pub const DEFAULT_MAX_RESULTS: usize = 200;
pub const MAX_RESULTS: usize = 5_000;
/// Longest line text returned per match.
pub const MAX_LINE_CHARS: usize = 400;
/// Files larger than this are skipped.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

pub struct FilesystemSearch;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Regular expression (Rust regex syntax), matched line by line.
    pub pattern: String,
    /// File or directory to search, relative to the workspace root. Default: the root.
    #[serde(default)]
    pub path: Option<String>,
    /// Only search files whose path matches this glob, e.g. `*.rs` or `src/**/*.ts`.
    #[serde(default)]
    pub glob: Option<String>,
    /// Most matches to return (1 to 5000). Default 200.
    #[serde(default)]
    pub max_results: Option<usize>,
    /// Match letters in either case. Default false.
    #[serde(default)]
    pub case_insensitive: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Match {
    /// File path relative to the workspace root.
    pub path: String,
    /// Line number, counting from 1.
    pub line_number: u64,
    /// The line (cut at 400 characters).
    pub line: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    pub matches: Vec<Match>,
    /// Text files searched.
    pub files_searched: u64,
    /// True when `max_results` cut the search short.
    pub truncated: bool,
}

impl Tool for FilesystemSearch {
    const NAME: &'static str = "filesystem_search";
    const TITLE: &'static str = "Search files";
    const DESCRIPTION: &'static str = "Search the workspace's text files for a regular expression, line by line, honouring .gitignore. Returns each match's path, line number and line, sorted by path, at most max_results. Optional: a starting path, a glob filter, case-insensitive matching.";
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
        let regex = RegexBuilder::new(&params.pattern)
            .case_insensitive(params.case_insensitive)
            .multi_line(true)
            .size_limit(8 * 1024 * 1024)
            .build()
            .map_err(|e| ToolError::new(format!("pattern is not a valid regular expression: {e}")))?;
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
            builder.sort_by_file_name(|a, b| a.cmp(b));
            if let Some(glob) = glob {
                builder.overrides(glob);
            }
            let mut out = Output {
                matches: Vec::new(),
                files_searched: 0,
                truncated: false,
            };
            for item in builder.build() {
                if cancel.is_cancelled() {
                    return Err(ToolError::new("search cancelled"));
                }
                let Ok(item) = item else { continue };
                if !item.file_type().is_some_and(|t| t.is_file()) {
                    continue;
                }
                if item.metadata().map(|m| m.len()).unwrap_or(0) > MAX_FILE_BYTES {
                    continue;
                }
                let Ok(bytes) = std::fs::read(item.path()) else {
                    continue;
                };
                if looks_binary(&bytes) {
                    continue;
                }
                out.files_searched += 1;
                if !regex.is_match(&bytes) {
                    continue;
                }
                let relative = display_relative(item.path().strip_prefix(&root).unwrap_or(item.path()));
                for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if !regex.is_match(line) {
                        continue;
                    }
                    if out.matches.len() == max {
                        out.truncated = true;
                        return Ok(out);
                    }
                    let text = String::from_utf8_lossy(line);
                    out.matches.push(Match {
                        path: relative.clone(),
                        line_number: index as u64 + 1,
                        line: truncate_str(&text, MAX_LINE_CHARS).0.to_owned(),
                    });
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| ToolError::new(format!("internal error: {e}")))?
    }

    fn render(output: Output) -> String {
        let mut text = String::new();
        for m in &output.matches {
            text.push_str(&format!("{}:{}: {}\n", m.path, m.line_number, m.line));
        }
        if output.matches.is_empty() {
            text.push_str(&format!("No matches in {} files.\n", output.files_searched));
        }
        if output.truncated {
            text.push_str(&format!(
                "[execlayer: stopped at {} matches; narrow the pattern, path or glob, or raise max_results]\n",
                output.matches.len()
            ));
        }
        text
    }
}
