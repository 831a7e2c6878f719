mod approvals;
mod git;
mod stdio;
mod tools_fs;
