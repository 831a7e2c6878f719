mod approvals;
mod cancel;
mod git;
mod http;
mod stdio;
mod tools_fs;
