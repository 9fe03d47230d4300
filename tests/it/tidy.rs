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
