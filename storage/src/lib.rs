//! The storage server as a library: everything but `main` (the binary `harbour-storage` wires it), so tools such as the fuzz targets reach its parsers.

pub mod api;
pub mod config;
pub mod error;
pub mod index;
pub mod join;
pub mod limits;
pub mod metrics;
pub mod record;
pub mod scrub;
pub mod segments;
pub mod store;
#[cfg(test)]
pub mod test_support;
