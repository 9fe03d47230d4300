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

pub fn list(entries: &[FileEntry], json: bool) {
    if json {
        println!("{}", to_json(&entries));
        return;
    }
    for entry in entries {
        println!("{}\t{}", entry.name, entry.size);
    }
}

pub fn stat(stat: &FileStat, json: bool) {
    if json {
        println!("{}", to_json(stat));
        return;
    }
    println!("name:   {}", stat.name);
    println!("size:   {} bytes", stat.size);
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

pub fn status(status: &ClusterStatus, json: bool) {
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
            .map_or_else(|| "unlimited".to_owned(), |bytes| bytes.to_string());
        println!(
            "{:<32} {:<6} {:>14} {:>14} {:>10}",
            server.url,
            match (server.alive, server.draining) {
                (true, false) => "yes",
                (true, true) => "drain",
                (false, _) => "NO",
            },
            server.used_bytes,
            capacity,
            server.placed_chunks
        );
    }
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("API documents always serialise")
}
