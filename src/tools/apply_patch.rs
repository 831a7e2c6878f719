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
    /// A unified diff (git-style `diff --git` or plain `---`/`+++`), one or many files; may create, delete, modify and rename files.
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
    const DESCRIPTION: &'static str = "Apply a unified diff to files in the workspace. Every file is checked and every hunk applied in memory before anything is written, then all files are replaced atomically: a patch that fails on one file changes none. A failing hunk is reported with the lines it expected and the lines found. `dry_run: true` reports per file the action and +/- counts and changes nothing. Paths inside .git are refused.";
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

    fn subject(&self, ctx: &ToolContext, params: &Params) -> crate::policy::Subject {
        crate::policy::Subject::paths(patch::touched_paths(&ctx.workspace, &params.patch))
    }

    fn describe(&self, ctx: &ToolContext, params: &Params) -> String {
        let mut text = match patch::plan(&ctx.workspace, &params.patch) {
            Ok(plan) => plan.files.iter().map(summary_line).collect::<Vec<_>>().join("\n"),
            Err(e) => format!("(the patch does not apply: {e})"),
        };
        let head: Vec<&str> = params.patch.lines().take(20).collect();
        text.push_str("\n--- first lines of the diff ---\n");
        text.push_str(&head.join("\n"));
        text
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
