//! SPEC "Operators", the client: a progress bar on stderr for transfers
//! over 1 MiB when stderr is a terminal (tested under a pseudo-terminal
//! made by util-linux's `script`), none when piped or with `--quiet`;
//! human sizes in `list -l`, `stat` and `status`, exact with `--bytes`.

use std::process::Command;

use crate::cluster::{Cluster, Spec, bin_path, test_bytes, test_dir};

/// Runs `harbour ARGS` against `cluster` under a pseudo-terminal; what
/// the terminal showed (stdout and stderr together), and the exit code.
fn under_terminal(cluster: &Cluster, args: &str) -> (i32, String) {
    let harbour = bin_path("harbour");
    let output = Command::new("script")
        .args(["--quiet", "--return", "--command"])
        .arg(format!("{} {args}", harbour.display()))
        .arg("/dev/null")
        .env_clear()
        .env("NAME_SERVER", cluster.url())
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("script is installed (util-linux)");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn transfers_over_1_mib_show_progress_on_a_terminal_only() {
    let cluster = Cluster::start(Spec {
        storage: 2,
        ..Spec::default()
    });
    let dir = test_dir();
    let big = dir.join("big");
    let bytes = test_bytes(3 << 20, 5);
    std::fs::write(&big, &bytes).unwrap();
    let (code, shown) = under_terminal(&cluster, &format!("create big {}", big.display()));
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains(" / 3.0 MiB  ["), "no bar: {shown:?}");
    assert!(shown.contains("MiB/s"), "no rate: {shown:?}");
    // The bar is cleared before the closing line.
    assert!(
        shown.contains("\r\x1b[Kcreated big (3145728 bytes"),
        "{shown:?}"
    );

    let out = dir.join("out");
    let (code, shown) = under_terminal(&cluster, &format!("read big {}", out.display()));
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains(" / 3.0 MiB  ["), "no bar: {shown:?}");
    assert!(std::fs::read(&out).unwrap() == bytes);

    // --quiet: neither the bar nor the closing line.
    let (code, shown) = under_terminal(&cluster, &format!("read big {} --quiet", out.display()));
    assert_eq!((code, shown.as_str()), (0, ""));
    // A small file shows no bar, only its closing line.
    let small = dir.join("small");
    std::fs::write(&small, b"tiny").unwrap();
    let (_, shown) = under_terminal(&cluster, &format!("create small {}", small.display()));
    assert_eq!(shown.trim_end(), "created small (4 bytes, 1 chunks)");

    // Piped (no terminal): exactly the closing line, as before.
    let run = cluster
        .cli(&["read", "big", out.to_str().unwrap()])
        .assert_ok();
    assert_eq!(
        run.stderr,
        format!("read big (3145728 bytes) into {}\n", out.display())
    );
}

#[test]
fn sizes_are_human_in_list_l_stat_and_status_and_exact_with_bytes() {
    let cluster = Cluster::start(Spec {
        storage: 2,
        ..Spec::default()
    });
    cluster
        .cli(&["create", "five", "-"])
        .stdin(&test_bytes(5000, 1))
        .assert_ok();
    cluster
        .cli(&["create", "tiny", "-"])
        .stdin(b"abc")
        .assert_ok();
    let list = cluster.cli(&["list", "-l"]).assert_ok().stdout_text();
    assert_eq!(list, "   4.9 KiB  five\n       3 B  tiny\n");
    let list = cluster
        .cli(&["list", "-l", "--bytes"])
        .assert_ok()
        .stdout_text();
    assert_eq!(list, "      5000  five\n         3  tiny\n");
    // Without -l the list keeps its shape (scripts read it).
    let list = cluster.cli(&["list"]).assert_ok().stdout_text();
    assert_eq!(list, "five\t5000\ntiny\t3\n");
    let stat = cluster.cli(&["stat", "five"]).assert_ok().stdout_text();
    assert!(stat.contains("size:   4.9 KiB (5000 bytes)\n"), "{stat}");
    let stat = cluster
        .cli(&["stat", "five", "--bytes"])
        .assert_ok()
        .stdout_text();
    assert!(stat.contains("size:   5000 bytes\n"), "{stat}");
    let status = cluster.cli(&["status"]).assert_ok().stdout_text();
    assert!(status.contains(" KiB "), "{status}");
    let status = cluster
        .cli(&["status", "--bytes"])
        .assert_ok()
        .stdout_text();
    assert!(!status.contains("KiB"), "{status}");
    // --json keeps exact numbers.
    let json = cluster
        .cli(&["stat", "five", "--json"])
        .assert_ok()
        .stdout_text();
    assert!(json.contains("\"size\":5000"), "{json}");
}
