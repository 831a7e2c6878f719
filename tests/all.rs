//! The one integration test binary: real MCP clients against the real server.

mod common;
mod suite;
