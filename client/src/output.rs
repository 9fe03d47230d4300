//! What the client prints: a human layout, or with `--json` the server's
//! document as one JSON value.

use common::api::{ClusterStatus, FileEntry, FileStat};

pub fn size(name: &str, size: u64, json: bool) {
    if json {
        println!("{}", serde_json::json!({ "name": name, "size": size }));
    } else {
        println!("{size}");
    }
}

/// Sizes as the user asked: exact bytes, or human units.
#[derive(Clone, Copy)]
pub struct Units {
    pub exact: bool,
}

impl Units {
    fn of(self, bytes: u64) -> String {
        match self.exact {
            true => bytes.to_string(),
            false => human_bytes(bytes),
        }
    }
}

/// `bytes` in binary units with one decimal: `512 B`, `4.9 KiB`, `1.0 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

pub fn list(entries: &[FileEntry], json: bool, long: bool, units: Units) {
    if json {
        println!("{}", to_json(&entries));
        return;
    }
    for entry in entries {
        match long {
            true => println!(
                "{:>10}  {}  {}",
                units.of(entry.size),
                short_time(&entry.mtime),
                entry.name
            ),
            false => println!("{}\t{}", entry.name, entry.size),
        }
    }
}

pub fn stat(stat: &FileStat, json: bool, units: Units) {
    if json {
        println!("{}", to_json(stat));
        return;
    }
    println!("name:   {}", stat.name);
    match units.exact || stat.size < 1024 {
        true => println!("size:   {} bytes", stat.size),
        false => println!("size:   {} ({} bytes)", human_bytes(stat.size), stat.size),
    }
    println!("mtime:  {}", stat.mtime);
    println!("chunks: {}", stat.chunk_count);
    for chunk in &stat.chunks {
        println!(
            "  #{:<8} {:>5} B  {}",
            chunk.index,
            chunk.size,
            chunk.replicas.join(" ")
        );
    }
}

pub fn status(status: &ClusterStatus, json: bool, units: Units) {
    if json {
        println!("{}", to_json(status));
        return;
    }
    println!(
        "files: {}  chunks: {}  under-replicated: {}  replication: {}",
        status.files, status.chunks, status.under_replicated, status.replication
    );
    println!(
        "{:<32} {:<6} {:>14} {:>14} {:>10}",
        "SERVER", "ALIVE", "USED", "CAPACITY", "PLACED"
    );
    for server in &status.servers {
        let capacity = server
            .capacity_bytes
            .map_or_else(|| "unlimited".to_owned(), |bytes| units.of(bytes));
        println!(
            "{:<32} {:<6} {:>14} {:>14} {:>10}",
            server.url,
            match (server.alive, server.draining) {
                (true, false) => "yes",
                (true, true) => "drain",
                (false, _) => "NO",
            },
            units.of(server.used_bytes),
            capacity,
            server.placed_chunks
        );
    }
}

/// `2026-12-02T08:59:01.123Z` as `2026-12-02 08:59` (UTC), as `ls -l`
/// shows a time; a server without times shows blanks.
fn short_time(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(11..16)) {
        (Some(day), Some(minute)) => format!("{day} {minute}"),
        _ => format!("{:16}", ""),
    }
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("API documents always serialise")
}
