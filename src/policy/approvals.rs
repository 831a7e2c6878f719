//! Approval ids now live in the state store ([`crate::state`]); these names
//! stay here for the modules that already use them.

pub use crate::state::{Approval, ApprovalError, ApprovalState, new_id};
