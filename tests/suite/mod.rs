mod approvals;
mod git;
mod http;
mod stdio;
mod tools_fs;
