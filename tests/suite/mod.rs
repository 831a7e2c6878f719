mod approvals;
mod cancel;
mod git;
mod http;
mod reason;
mod stdio;
mod tools_fs;
mod patch_scenarios;
