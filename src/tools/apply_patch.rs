//! `apply_patch`: apply a unified diff to the workspace, all files or none.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Annotations, Tool, ToolContext, ToolError};
use crate::patch::{self, Action, FileSummary};
use crate::policy::Risk;

pub struct ApplyPatch;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The patch text: a unified diff (git-style `diff --git` or plain `---`/`+++` headers, `@@` hunks) or Codex's `*** Begin Patch` envelope; one or many files; may create, delete, modify, rename. Hunk line numbers and counts are hints: hunks are placed by their lines.
    pub patch: String,
    /// Check the patch and report what it would do, changing nothing. Default false.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// True when the files were changed; false for a dry run.
    pub applied: bool,
    pub dry_run: bool,
    /// Each file with its action and line counts.
    pub files: Vec<FileSummary>,
    pub additions: usize,
    pub deletions: usize,
}

impl Tool for ApplyPatch {
    const NAME: &'static str = "apply_patch";
    const TITLE: &'static str = "Apply a patch";
    const DESCRIPTION: &'static str = "Apply a patch to files in the workspace, all files or none: best for changes spanning many hunks or files, and for creating, deleting and renaming files (for a local change, edit_file is simpler). Accepts unified diffs (`diff --git`, or `--- a/f` / `+++ b/f`; with or without a/ b/ prefixes; inside markdown fences) and Codex's envelope (`*** Begin Patch`, `*** Add File: p` / `*** Delete File: p` / `*** Update File: p` [+ `*** Move to: q`], `@@ anchor` chunks, `*** End of File`, `*** End Patch`). Each hunk's context (' ') and removed ('-') lines must match the file (trailing whitespace and indentation differences are tolerated); header counts are recounted from the body, and line numbers are hints: the hunk is placed where its lines match nearest the hinted line. A hunk with a bare `@@` (no numbers) must match in exactly one place. The answer says where each hunk landed, and when it was moved from its hinted line to the nearest of several matches, where else its lines match (check it changed the place meant). A failing hunk is reported with its file, number, the lines it expected and the closest lines of the file with their numbers, for every failing hunk; nothing is written then. A patch that changes nothing is an error. `dry_run: true` checks and reports, changing nothing. Paths inside .git are refused.";
    const RISK: Risk = Risk::Medium;
    const ANNOTATIONS: Annotations = Annotations {
        read_only: false,
        destructive: true,
        idempotent: false,
        open_world: false,
    };
    type Params = Params;
    type Output = Output;

    fn is_dry_run(params: &Params) -> bool {
        params.dry_run
    }

    fn check(&self, ctx: &ToolContext, params: &Params) -> Result<(), ToolError> {
        patch::plan(&ctx.workspace, &params.patch)
            .map(|_| ())
            .map_err(ToolError::new)
    }

    fn subject(&self, ctx: &ToolContext, params: &Params) -> crate::policy::Subject {
        crate::policy::Subject::paths(patch::touched_paths(&ctx.workspace, &params.patch))
    }

    fn describe(&self, ctx: &ToolContext, params: &Params) -> String {
        match patch::plan(&ctx.workspace, &params.patch) {
            Ok(plan) => {
                let mut text = plan.files.iter().map(summary_line).collect::<Vec<_>>().join("\n");
                text.push_str("\n--- the change ---\n");
                text.push_str(&crate::patch::diff::cut(plan.diff(ctx.workspace.root()), 8 * 1024));
                text
            }
            Err(e) => format!("(the patch does not apply: {e})"),
        }
    }

    async fn run(&self, ctx: &ToolContext, params: Params) -> Result<Output, ToolError> {
        let workspace = ctx.workspace.clone();
        let progress = ctx.progress.clone();
        tokio::task::spawn_blocking(move || {
            let plan = patch::plan(&workspace, &params.patch).map_err(ToolError::new)?;
            let files = plan.files.clone();
            if !params.dry_run {
                plan.commit(|done, total| {
                    progress.report(
                        done as f64,
                        Some(total as f64),
                        format!("staged {done} of {total} files"),
                    )
                })
                .map_err(ToolError::new)?;
            }
            Ok(Output {
                applied: !params.dry_run,
                dry_run: params.dry_run,
                additions: files.iter().map(|f| f.additions).sum(),
                deletions: files.iter().map(|f| f.deletions).sum(),
                files,
            })
        })
        .await
        .map_err(|e| ToolError::new(format!("internal error: {e}")))?
    }

    fn render(output: Output) -> String {
        let mut text = if output.dry_run {
            format!(
                "Dry run: the patch applies cleanly to {} file(s); nothing was changed.\n",
                output.files.len()
            )
        } else {
            format!("Applied the patch to {} file(s).\n", output.files.len())
        };
        for f in &output.files {
            text.push_str(&summary_line(f));
            text.push('\n');
            for h in &f.hunks {
                text.push_str("  ");
                text.push_str(&h.describe());
                text.push('\n');
            }
        }
        text
    }
}

fn summary_line(f: &FileSummary) -> String {
    let verb = match f.action {
        Action::Create => "create",
        Action::Modify => "modify",
        Action::Delete => "delete",
        Action::Rename => "rename",
    };
    match &f.old_path {
        Some(old) => format!("{verb} {old} -> {} (+{} -{})", f.path, f.additions, f.deletions),
        None => format!("{verb} {} (+{} -{})", f.path, f.additions, f.deletions),
    }
}
