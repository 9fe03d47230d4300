//! Harbour's integration tests: one binary, a module per area of SPEC.md.
//! Each test starts real binaries on loopback through `cluster`.

#![allow(clippy::unwrap_used)]

mod bench;
mod browser;
mod cli;
mod client_ux;
mod cluster;
mod compaction;
mod compose;
mod config;
mod dirs;
mod docker;
mod docker_ha;
mod durability;
mod etcd;
mod faults;
mod files;
mod full_disk;
mod ha;
mod hostile;
mod load;
mod logs;
mod memory;
mod metrics;
mod mount;
mod mtimes;
mod pki;
mod ranges;
mod reconcile;
mod rename;
mod replication;
mod s3;
mod security;
mod shutdown;
mod tidy;
mod tls;
mod tokens;
