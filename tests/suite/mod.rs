mod approvals;
mod git;
mod tools_fs;
