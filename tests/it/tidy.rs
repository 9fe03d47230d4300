//! Style rules that a grep can enforce, each naming the replacement.

use std::fs;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<(String, String)> {
    let root = workspace_root();
    let mut files = Vec::new();
    for krate in ["common", "naming", "storage", "client", "tests"] {
        rust_files(&root.join(krate), &mut files);
    }
    files
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).unwrap();
            (
                path.strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                text,
            )
        })
        .collect()
}

#[test]
fn banned_constructs_stay_out() {
    // (what, allowed in files whose path ends with one of these, why and instead)
    let rules: [(&str, &[&str], &str); 8] = [
        (
            "unbounded(",
            &[],
            "every queue is bounded: crossbeam_channel::bounded",
        ),
        (
            "ureq::get(",
            &[],
            "the default agent has no timeouts: build an Agent",
        ),
        (
            "ureq::put(",
            &[],
            "the default agent has no timeouts: build an Agent",
        ),
        (
            "thread::sleep",
            &["tests/it/cluster.rs"],
            "no sleeps: wait_until, or a crossbeam tick",
        ),
        (
            "#[ignore]",
            &[],
            "a known bug gets a test of today's behaviour with a FIXME",
        ),
        ("#[should_panic]", &[], "assert on the error value instead"),
        (
            "std::env::var",
            &["config.rs", "tests/it/cluster.rs"],
            "configuration is read in config.rs only",
        ),
        (
            "thread::spawn(",
            &[
                "naming/src/main.rs",
                "tests/it/cluster.rs",
                "tests/it/faults.rs",
                "common/src/server/tests.rs",
            ],
            "fan-out is scoped: thread::scope",
        ),
    ];
    let mut violations = Vec::new();
    for (path, text) in sources() {
        if path.ends_with("tidy.rs") {
            continue;
        }
        for (pattern, allowed, why) in rules {
            if text.contains(pattern) && !allowed.iter().any(|suffix| path.ends_with(suffix)) {
                violations.push(format!("{path}: `{pattern}`: {why}"));
            }
        }
    }
    assert!(violations.is_empty(), "\n{}", violations.join("\n"));
}

/// The architecture invariants a grep can check (ARCHITECTURE.md states
/// them): (path prefix the rule covers, what must not appear, why).
#[test]
fn architecture_invariants_hold_in_the_sources() {
    let rules: [(&str, &str, &str); 14] = [
        (
            "storage/src/",
            "FileName",
            "storage never sees file names: it stores chunks by blob and index",
        ),
        (
            "storage/src/",
            "common::name",
            "storage never sees file names: it stores chunks by blob and index",
        ),
        (
            "naming/src/metadata",
            "std::fs",
            "the metadata does no IO: the journal and the door do",
        ),
        (
            "naming/src/metadata",
            "std::net",
            "the metadata does no IO: the journal and the door do",
        ),
        (
            "naming/src/metadata",
            "ureq",
            "the metadata does no IO: the journal and the door do",
        ),
        (
            "naming/src/placement.rs",
            "Instant",
            "placement is pure: no clock, no IO",
        ),
        (
            "naming/src/",
            "OpenOptions",
            "a server's own files open through common::own_files (never via a link)",
        ),
        (
            "storage/src/",
            "OpenOptions",
            "a server's own files open through common::own_files (never via a link)",
        ),
        (
            "naming/src/",
            "File::",
            "a server's own files open through common::own_files (never via a link)",
        ),
        (
            "storage/src/",
            "File::",
            "a server's own files open through common::own_files (never via a link)",
        ),
        (
            "naming/src/",
            "println!",
            "a server writes its lines through the log (common::log: LOG_LEVEL, LOG_FORMAT)",
        ),
        (
            "naming/src/",
            "eprintln!",
            "a server writes its lines through the log (common::log: LOG_LEVEL, LOG_FORMAT)",
        ),
        (
            "storage/src/",
            "println!",
            "a server writes its lines through the log (common::log: LOG_LEVEL, LOG_FORMAT)",
        ),
        (
            "storage/src/",
            "eprintln!",
            "a server writes its lines through the log (common::log: LOG_LEVEL, LOG_FORMAT)",
        ),
    ];
    let mut violations = Vec::new();
    for (path, text) in sources() {
        if path.contains("/tests.rs")
            || path.contains("/tests/")
            || path.ends_with("test_support.rs")
        {
            continue;
        }
        for (prefix, pattern, why) in rules {
            if path.starts_with(prefix) && text.contains(pattern) {
                violations.push(format!("{path}: `{pattern}`: {why}"));
            }
        }
    }
    assert!(violations.is_empty(), "\n{}", violations.join("\n"));
}

#[test]
fn durable_state_changes_only_through_the_door() {
    // `Metadata::apply` mutates; outside a metadata store only tests may
    // call it (the door hands everyone else a read-only `StateRef`).
    let mut violations = Vec::new();
    for (path, text) in sources() {
        let allowed = path.starts_with("naming/src/meta_store/")
            || path.starts_with("naming/src/metadata/entity.rs")
            || path.contains("/tests.rs")
            || !path.starts_with("naming/src/");
        if !allowed && text.contains(".apply(&") {
            violations.push(path);
        }
    }
    assert!(
        violations.is_empty(),
        "Metadata::apply called outside the door: {violations:?}"
    );
}

#[test]
fn every_source_file_says_what_it_owns() {
    let missing: Vec<String> = sources()
        .into_iter()
        .filter(|(path, text)| {
            !path.contains("/tests.rs")
                && !text.starts_with("//!")
                && !path.ends_with("tests/lib.rs")
        })
        .map(|(path, _)| path)
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! header: {missing:?}"
    );
}
