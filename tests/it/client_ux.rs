//! SPEC "Operators", the client: a progress bar on stderr for transfers
//! over 1 MiB when stderr is a terminal (tested under a pseudo-terminal
//! made by util-linux's `script`), none when piped or with `--quiet`;
//! human sizes in `list -l`, `stat` and `status`, exact with `--bytes`;
//! `--help` for every command with examples; shell completions that
//! complete in bash and fish and parse in zsh.

use std::process::Command;

use crate::cluster::{Cli, Cluster, Spec, bin_path, test_bytes, test_dir};

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
    // Sizes, the modification time (`2026-12-02 08:59`, UTC), names.
    let without_times = |list: &str| -> String {
        list.lines()
            .map(|line| format!("{}|{}\n", &line[..10], &line[30..]))
            .collect()
    };
    let list = cluster.cli(&["list", "-l"]).assert_ok().stdout_text();
    assert_eq!(
        without_times(&list),
        "   4.9 KiB|five\n       3 B|tiny\n",
        "{list}"
    );
    assert_eq!((&list[16..17], &list[22..23]), ("-", " "), "{list}");
    let list = cluster
        .cli(&["list", "-l", "--bytes"])
        .assert_ok()
        .stdout_text();
    assert_eq!(without_times(&list), "      5000|five\n         3|tiny\n");
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

#[test]
fn every_command_has_help_with_an_example() {
    for command in [
        "create",
        "read",
        "size",
        "delete",
        "list",
        "stat",
        "status",
        "drain",
        "bench",
        "completions",
    ] {
        let run = Cli::new(&[command, "--help"]).assert_ok();
        let help = run.stdout_text();
        assert!(help.starts_with(&format!("harbour {command}: ")), "{help}");
        assert!(
            help.contains(&format!("\nUsage: harbour {command}")),
            "{help}"
        );
        assert!(help.contains("\nExamples:\n  "), "{help}");
        let run = Cli::new(&["help", command]).assert_ok();
        assert_eq!(run.stdout_text(), help);
    }
    Cli::new(&["help", "frobnicate"]).assert_fails(2, "unknown command \"frobnicate\"");
    let page = Cli::new(&["--help"]).assert_ok().stdout_text();
    assert!(page.contains("harbour COMMAND --help"), "{page}");
}

/// Runs `script` in `shell` (`-c`), its stdout; the shell must succeed.
fn shell(shell: &str, script: &str) -> String {
    let output = Command::new(shell)
        .args(["-c", script])
        .output()
        .unwrap_or_else(|err| panic!("{shell} is installed (.ci/run installs it): {err}"));
    assert!(
        output.status.success(),
        "{shell}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn completions_complete_in_bash_and_fish_and_parse_in_zsh() {
    let harbour = bin_path("harbour");
    let harbour = harbour.display();
    let bash = |words: &str, cword: usize| {
        shell(
            "bash",
            &format!(
                "source <({harbour} completions bash); COMP_WORDS=({words}); COMP_CWORD={cword}; _harbour; echo \"${{COMPREPLY[@]}}\""
            ),
        )
    };
    assert_eq!(bash("harbour cr", 1).trim(), "create");
    assert_eq!(bash("harbour st", 1).trim(), "stat status");
    assert_eq!(bash("harbour list --by", 2).trim(), "--bytes");
    assert_eq!(bash("harbour create x --ov", 3).trim(), "--overwrite");
    let fish = shell(
        "fish",
        &format!("{harbour} completions fish | source; complete -C 'harbour cre'"),
    );
    assert!(fish.starts_with("create\t"), "{fish}");
    let fish = shell(
        "fish",
        &format!("{harbour} completions fish | source; complete -C 'harbour read x --qu'"),
    );
    assert!(fish.contains("--quiet"), "{fish}");
    shell(
        "zsh",
        &format!("{harbour} completions zsh > /dev/null && zsh -n <({harbour} completions zsh)"),
    );
    Cli::new(&["completions", "csh"]).assert_fails(2, "bash, zsh or fish");
}
