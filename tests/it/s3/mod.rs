//! The S3 API (SPEC "S3"), tested with the clients people use: boto3
//! (`boto3_checks.py`, one check per test), the aws CLI, rclone and
//! s3cmd, each run as its own process against a test cluster with the S3
//! API on, under `timeout`, so a hang fails the test instead of hanging it.

mod boto3;
mod clients;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cluster::{Cluster, Spec, client_env};
use crate::mount::Ran;

/// The longest one client program may run.
const PROGRAM_SECONDS_MAX: u64 = 300;

/// The keys of every S3 test cluster: one that writes everywhere, one that
/// only reads, one that writes but reaches bucket `alpha` alone.
pub const KEYS: &str = "\
harbour-test harbour-test-secret-0123456789 write
reader reader-secret-0123456789 read
alpha alpha-secret-0123456789 write alpha
";
pub const KEY_ID: &str = "harbour-test";
pub const SECRET: &str = "harbour-test-secret-0123456789";

pub fn start() -> Cluster {
    Cluster::start(Spec {
        s3_keys: Some(KEYS),
        ..Spec::default()
    })
}

/// Runs `program` with `args` in `cwd`, with the cluster's S3 endpoint and
/// the writer key in the environment (`S3_URL`, `S3_KEY_ID`, `S3_SECRET`,
/// and the AWS variables the aws CLI reads), and nothing of the
/// developer's own AWS or rclone configuration.
pub fn run(
    cluster: &Cluster,
    cwd: &Path,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Ran {
    let home = cluster.dir.join("home");
    std::fs::create_dir_all(&home).expect("make a home for the clients");
    // What the README tells aws CLI users to set: SigV4 presigned URLs
    // (the CLI's v1 presigns with SigV2 otherwise) and path-style URLs.
    std::fs::write(
        home.join("aws-config"),
        "[default]\ns3 =\n  signature_version = s3v4\n  addressing_style = path\n",
    )
    .expect("write the aws CLI's config");
    let url = cluster.s3_url();
    let mut command = Command::new("timeout");
    client_env(&mut command);
    command
        .args(["-k", "5", &PROGRAM_SECONDS_MAX.to_string(), program])
        .args(args)
        .current_dir(cwd)
        .env("HOME", &home)
        .env("S3_URL", &url)
        .env("NATIVE_URL", cluster.url())
        .env("S3_KEY_ID", KEY_ID)
        .env("S3_SECRET", SECRET)
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", home.join("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("aws-credentials"))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `run`, asserting the program succeeds; its stdout.
pub fn run_ok(
    cluster: &Cluster,
    cwd: &Path,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> String {
    let ran = run(cluster, cwd, program, args, env);
    assert_eq!(
        ran.code,
        0,
        "{program} {args:?} failed ({}):\nstdout: {}\nstderr: {}\nnaming log tail: {}",
        ran.code,
        ran.stdout,
        ran.stderr,
        tail(&cluster.naming_ref().log_text(), 20)
    );
    ran.stdout
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// This folder, where the Python checks are.
pub fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("it/s3")
}

#[test]
fn bad_s3_configuration_is_refused_with_one_line() {
    use crate::config::check_server_refused;
    let listen = ["--s3-listen", "127.0.0.1:0"];
    check_server_refused(
        "harbour-naming",
        &listen,
        &[],
        "the S3 API needs keys: S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or S3_KEYS_FILE",
    );
    check_server_refused(
        "harbour-naming",
        &listen,
        &[("S3_ACCESS_KEY_ID", "harbour")],
        "needs both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY",
    );
    check_server_refused(
        "harbour-naming",
        &listen,
        &[
            ("S3_ACCESS_KEY_ID", "harbour"),
            ("S3_SECRET_ACCESS_KEY", "short"),
        ],
        "16 characters at least",
    );
    check_server_refused(
        "harbour-naming",
        &["--s3-listen", "nowhere"],
        &[],
        "--s3-listen / S3_LISTEN_ADDR",
    );
    check_server_refused(
        "harbour-naming",
        &listen,
        &[
            ("S3_ACCESS_KEY_ID", "harbour"),
            ("S3_SECRET_ACCESS_KEY", SECRET),
            ("S3_REGION", "EU West"),
        ],
        "--s3-region / S3_REGION",
    );
    let dir = crate::cluster::test_dir();
    let keys = dir.join("s3-keys");
    std::fs::write(&keys, KEYS).unwrap();
    let keys_arg = keys.to_str().unwrap().to_owned();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    check_server_refused(
        "harbour-naming",
        &["--s3-listen", "127.0.0.1:0", "--s3-keys-file", &keys_arg],
        &[],
        "--s3-keys-file / S3_KEYS_FILE",
    );
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    check_server_refused(
        "harbour-naming",
        &["--s3-listen", "127.0.0.1:0", "--s3-keys-file", &keys_arg],
        &[
            ("S3_ACCESS_KEY_ID", "harbour"),
            ("S3_SECRET_ACCESS_KEY", SECRET),
        ],
        "not both",
    );
    std::fs::write(&keys, "someone short read\n").unwrap();
    check_server_refused(
        "harbour-naming",
        &["--s3-listen", "127.0.0.1:0", "--s3-keys-file", &keys_arg],
        &[],
        "line 1",
    );
}
