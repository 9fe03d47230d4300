//! Shared by every Harbour crate. See ARCHITECTURE.md for the map.

pub mod api;
pub mod chunk;
pub mod config;
pub mod limits;
pub mod name;
pub mod percent;
pub mod server;
pub mod wire;
