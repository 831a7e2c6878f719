//! Golden-file scenarios for `edit_file`, run through a real MCP client.
//!
//! Each folder of `tests/fixtures/edit/` is one scenario (see
//! `tests/common/scenario.rs` and `tests/fixtures/edit/README.md`): `input/`,
//! `args.json` (the whole `edit_file` arguments), `expected/`, and optionally
//! `error.txt`, `answer.txt`, `expected_summary.json` and `BUG.md`.
//!
//! `PATCH_SCENARIO=name` runs the scenarios whose name contains `name`;
//! `PATCH_SCENARIO_SHOW=1` prints each tool answer (`--nocapture`).

use crate::common::scenario::{Scenario, run_all};

fn edit_args(s: &Scenario) -> Result<serde_json::Value, String> {
    s.json("args.json")?.ok_or_else(|| "args.json is missing".to_owned())
}

#[tokio::test]
async fn edit_file_golden_scenarios() {
    run_all("edit", "edit_file", 15, edit_args).await;
}
