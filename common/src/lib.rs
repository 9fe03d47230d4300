//! Shared by every Harbour crate. See ARCHITECTURE.md for the map.

pub mod api;
pub mod chunk;
pub mod cluster_auth;
pub mod codec;
pub mod config;
pub mod group_commit;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod name;
pub mod own_files;
pub mod pacer;
pub mod percent;
pub mod pool;
pub mod probe;
pub mod resolver;
pub mod rng;
pub mod server;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod tls;
pub mod transport;
pub mod wire;
pub mod zeroed_tail;
