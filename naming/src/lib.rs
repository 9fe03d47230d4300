//! The naming server as a library: everything but `main` (the binary `harbour-naming` wires it), so tools such as the fuzz targets reach its parsers.

pub mod api;
pub mod cluster;
pub mod config;
pub mod download;
pub mod error;
pub mod fanout;
pub mod garbage;
pub mod journal;
pub mod limits;
pub mod meta_store;
pub mod metadata;
pub mod metrics;
pub mod naming;
pub mod placement;
pub mod range;
pub mod reconcile;
pub mod repair;
pub mod replicate;
pub mod s3;
pub mod storage_client;
pub mod tokens;
pub mod ui;
pub mod upload;
