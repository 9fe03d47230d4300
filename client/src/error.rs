//! The client's failures: a usage error (exit 2) or anything else (exit 1),
//! each one sentence a user can act on.

use std::fmt;

#[derive(Debug)]
pub enum ClientError {
    Usage(String),
    Failed(String),
}

impl ClientError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Usage(_) => 2,
            ClientError::Failed(_) => 1,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Usage(message) => write!(f, "{message} (see harbour --help)"),
            ClientError::Failed(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ClientError {}
