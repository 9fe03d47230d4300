//! The metadata on etcd (SPEC "Metadata on etcd"): real etcd members
//! (`etcd.rs`), several naming servers serving one namespace, and what
//! each promise of the SPEC becomes when a naming server or an etcd member
//! dies or freezes.

use std::time::{Duration, Instant};

use crate::cluster::{Answer, Cluster, Server, Spec, request_to, wait_until};
use crate::etcd::Etcd;

/// A cluster whose naming server keeps its metadata in `etcd`.
fn on_etcd(etcd: &Etcd, spec: Spec) -> Cluster {
    Cluster::start(Spec {
        etcd: Some(etcd.endpoints()),
        ..spec
    })
}

/// A one-member etcd, a cluster on it, and a second naming server of the
/// same namespace.
fn two_naming_servers(spec: Spec) -> (Etcd, Cluster, Server) {
    let etcd = Etcd::start(&crate::cluster::test_dir(), 1);
    let cluster = on_etcd(&etcd, spec);
    let peer = cluster.start_naming_peer("b");
    (etcd, cluster, peer)
}

/// SIGKILL, then wait until its port refuses connections.
fn kill_and_wait_gone(server: &Server) {
    server.kill_now();
    let addr = server.addr;
    wait_until(Duration::from_secs(10), "the killed one to be gone", || {
        std::net::TcpStream::connect(addr).is_err()
    });
}

fn at(cluster: &Cluster, server: &Server, method: &str, path: &str, body: &[u8]) -> Answer {
    request_to(
        &cluster.agent,
        &format!("{}{path}", server.url()),
        method,
        body,
    )
    .unwrap_or_else(|err| panic!("{method} {path} on {}: {err}", server.url()))
}

fn body_of(size: usize, seed: u8) -> Vec<u8> {
    (0..size)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The sizes around the chunk boundary.
const SIZES: [usize; 6] = [0, 1, 1023, 1024, 1025, 5000];

#[test]
fn two_naming_servers_serve_one_namespace_and_each_reads_what_the_other_wrote() {
    let (_etcd, cluster, peer) = two_naming_servers(Spec::default());
    let own = cluster.naming_ref();
    for (idx, size) in SIZES.into_iter().enumerate() {
        let body = body_of(size, idx as u8);
        let (writer, reader) = match idx % 2 {
            0 => (own, &peer),
            _ => (&peer, own),
        };
        let name = format!("/files/ha/f{idx}");
        assert_eq!(at(&cluster, writer, "PUT", &name, &body).status, 201);
        // No wait: a read after an acknowledged write on another naming
        // server sees it.
        let read = at(&cluster, reader, "GET", &name, &[]);
        assert_eq!(read.status, 200, "{size} bytes");
        assert_eq!(read.body, body, "{size} bytes");
    }
    let listing = at(&cluster, &peer, "GET", "/files?prefix=ha/", &[]).json();
    assert_eq!(listing.as_array().map(Vec::len), Some(SIZES.len()));
    let renamed = at(&cluster, own, "POST", "/rename?from=ha/f0&to=ha/moved", &[]);
    assert_eq!(
        renamed.status,
        200,
        "{}",
        String::from_utf8_lossy(&renamed.body)
    );
    assert_eq!(at(&cluster, &peer, "GET", "/files/ha/f0", &[]).status, 404);
    assert_eq!(
        at(&cluster, &peer, "GET", "/files/ha/moved", &[]).status,
        200
    );
    assert_eq!(
        at(&cluster, &peer, "DELETE", "/files/ha/f1", &[]).status,
        204
    );
    assert_eq!(at(&cluster, own, "GET", "/files/ha/f1", &[]).status, 404);
    assert_eq!(
        at(&cluster, own, "POST", "/dirs/ha/empty/", &[]).status,
        201
    );
    let level = at(&cluster, &peer, "GET", "/files?prefix=ha/&delimiter=/", &[]).json();
    assert!(level.to_string().contains("ha/empty/"), "{level}");
    // One of the two leads upkeep, and /metrics says which.
    wait_until(Duration::from_secs(15), "one upkeep leader", || {
        let leaders: u64 = [own, &peer]
            .into_iter()
            .map(|server| {
                let page = at(&cluster, server, "GET", "/metrics", &[]);
                crate::cluster::metric_value(
                    &String::from_utf8_lossy(&page.body),
                    "harbour_upkeep_leader",
                )
            })
            .sum();
        leaders == 1
    });
}

#[test]
fn concurrent_creates_of_one_name_on_two_naming_servers_have_exactly_one_winner() {
    let (_etcd, cluster, peer) = two_naming_servers(Spec::default());
    let servers = [cluster.naming_ref(), &peer];
    const NAMES: usize = 40;
    let outcomes: Vec<Vec<u16>> = std::thread::scope(|scope| {
        let handles: Vec<_> = servers
            .iter()
            .enumerate()
            .map(|(seed, server)| {
                let cluster = &cluster;
                scope.spawn(move || {
                    (0..NAMES)
                        .map(|idx| {
                            let body = body_of(1500, seed as u8);
                            at(cluster, server, "PUT", &format!("/files/race/{idx}"), &body).status
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a writer"))
            .collect()
    });
    for (idx, (&first, &second)) in outcomes[0].iter().zip(&outcomes[1]).enumerate() {
        let statuses = [first, second];
        let winners: Vec<usize> = (0..2).filter(|&s| statuses[s] == 201).collect();
        assert_eq!(winners.len(), 1, "race/{idx}: {statuses:?}");
        assert!(statuses.contains(&409), "race/{idx}: {statuses:?}");
        let winner = winners[0];
        for server in servers {
            let read = at(&cluster, server, "GET", &format!("/files/race/{idx}"), &[]);
            assert_eq!(read.body, body_of(1500, winner as u8), "race/{idx}");
        }
    }
}

/// What a client made of one operation of the mixed workload.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Outcome {
    Created,
    Deleted,
    /// Its answer was lost with the naming server: either state is right.
    Unknown,
}

#[test]
fn a_naming_server_killed_mid_workload_loses_no_acknowledged_file() {
    let (_etcd, mut cluster, peer) = two_naming_servers(Spec::default());
    const OPS: usize = 300;
    // Creates, reads of what was created, deletes of every third, through
    // the first naming server, moving to the second when the first cannot
    // be reached (as the CLI does with two URLs).
    let outcomes: Vec<(usize, Outcome)> = std::thread::scope(|scope| {
        let servers = [cluster.url(), peer.url()];
        let agent = &cluster.agent;
        let client = scope.spawn(move || {
            let mut current = 0;
            let mut outcomes = Vec::new();
            let mut call = |method: &str, path: &str, body: &[u8]| loop {
                match request_to(agent, &format!("{}{path}", servers[current]), method, body) {
                    Ok(answer) => return Some(answer.status),
                    Err(ureq::Error::Io(err))
                        if err.kind() == std::io::ErrorKind::ConnectionRefused && current == 0 =>
                    {
                        current = 1;
                    }
                    Err(_) if current == 0 => {
                        // Cut off mid-request: the outcome is unknown.
                        current = 1;
                        return None;
                    }
                    Err(err) => panic!("{method} {path} on the second server: {err}"),
                }
            };
            for idx in 0..OPS {
                let outcome = match call(
                    "PUT",
                    &format!("/files/mixed/{idx}"),
                    &body_of(2100, idx as u8),
                ) {
                    Some(201) => Outcome::Created,
                    None => Outcome::Unknown,
                    Some(status) => panic!("create {idx}: {status}"),
                };
                outcomes.push((idx, outcome));
                if outcome == Outcome::Created {
                    match call("GET", &format!("/files/mixed/{idx}"), &[]) {
                        Some(200) | None => {}
                        Some(status) => panic!("read {idx}: {status}"),
                    }
                }
                if idx % 3 == 2 {
                    let gone = idx - 1;
                    let outcome = match call("DELETE", &format!("/files/mixed/{gone}"), &[]) {
                        Some(204) => Outcome::Deleted,
                        Some(404) if outcomes[gone].1 == Outcome::Unknown => Outcome::Deleted,
                        None => Outcome::Unknown,
                        Some(status) => panic!("delete {gone}: {status}"),
                    };
                    outcomes[gone].1 = match (outcomes[gone].1, outcome) {
                        (_, Outcome::Deleted) => Outcome::Deleted,
                        _ => Outcome::Unknown,
                    };
                }
            }
            outcomes
        });
        wait_until(Duration::from_secs(30), "some of the workload", || {
            let listing = at(&cluster, &peer, "GET", "/files?prefix=mixed/", &[]).json();
            listing.as_array().map_or(0, Vec::len) >= 40
        });
        cluster.naming_ref().kill_now();
        client.join().expect("the client")
    });
    assert_eq!(outcomes.len(), OPS, "the client went on through the other");
    let unknown = outcomes
        .iter()
        .filter(|(_, o)| *o == Outcome::Unknown)
        .count();
    assert!(
        unknown <= 2,
        "{unknown} outcomes lost with one naming server"
    );
    for &(idx, outcome) in &outcomes {
        let read = at(&cluster, &peer, "GET", &format!("/files/mixed/{idx}"), &[]);
        match outcome {
            Outcome::Created => assert_eq!(read.body, body_of(2100, idx as u8), "mixed/{idx}"),
            Outcome::Deleted => assert_eq!(read.status, 404, "mixed/{idx}"),
            Outcome::Unknown => assert!(
                read.status == 404 || read.body == body_of(2100, idx as u8),
                "mixed/{idx} is partial"
            ),
        }
    }
    // Nothing partial is listed.
    let listing = at(&cluster, &peer, "GET", "/files?prefix=mixed/", &[]).json();
    for entry in listing.as_array().expect("a listing") {
        assert_eq!(entry["size"], 2100, "{entry}");
    }
    // The killed one comes back from etcd alone (its --meta-dir is unused).
    cluster.naming().restart();
    cluster.wait_healthy();
    for &(idx, outcome) in &outcomes {
        if outcome == Outcome::Created {
            assert_eq!(cluster.get(&format!("mixed/{idx}")).status, 200);
        }
    }
}

/// Whether a naming server leads upkeep now, by its log: it said it
/// took the lead, and has not said it lost it since.
fn leads(server: &Server) -> bool {
    let log = server.log_text();
    log.rfind("this server leads upkeep")
        .is_some_and(|at| !log[at..].contains("no longer leads"))
}

#[test]
fn a_frozen_upkeep_leader_is_replaced_and_re_replication_goes_on() {
    let (_etcd, cluster, peer) = two_naming_servers(Spec::default());
    for idx in 0..10 {
        assert_eq!(
            cluster
                .put(&format!("rr/{idx}"), &body_of(3000, idx))
                .status,
            201
        );
    }
    wait_until(Duration::from_secs(15), "an upkeep leader", || {
        leads(cluster.naming_ref()) || leads(&peer)
    });
    let (leader, follower) = match leads(cluster.naming_ref()) {
        true => (cluster.naming_ref(), &peer),
        false => (&peer, cluster.naming_ref()),
    };
    assert!(!leads(follower), "two leaders");
    leader.freeze();
    let frozen_at = Instant::now();
    // A storage server dies: its replicas must be made again elsewhere,
    // by the follower once it takes the lead.
    cluster.storage_ref(0).kill_now();
    wait_until(Duration::from_secs(60), "the follower to repair", || {
        let status = at(&cluster, follower, "GET", "/status", &[]).json();
        status["under_replicated"] == 0 && leads(follower)
    });
    let took = frozen_at.elapsed();
    eprintln!("leader frozen -> re-replication done by the other: {took:?}");
    // The woken leader first finds its lease gone, and leads no more.
    leader.thaw();
    wait_until(
        Duration::from_secs(15),
        "the woken leader to step down",
        || leader.log_text().contains("no longer leads upkeep"),
    );
    for idx in 0..10 {
        let read = at(&cluster, follower, "GET", &format!("/files/rr/{idx}"), &[]);
        assert_eq!(read.body, body_of(3000, idx), "rr/{idx}");
    }
}

#[test]
fn without_an_etcd_quorum_writes_and_reads_fail_with_503_then_resume() {
    let dir = crate::cluster::test_dir();
    let mut etcd = Etcd::start(&dir, 3);
    let cluster = on_etcd(&etcd, Spec::default());
    assert_eq!(cluster.put("q/before", b"before").status, 201);
    etcd.kill(0);
    // One member down: a quorum remains.
    assert_eq!(cluster.put("q/one-down", b"one down").status, 201);
    assert_eq!(cluster.get("q/before").body, b"before");
    etcd.kill(1);
    let started = Instant::now();
    let refused = cluster.put("q/no-quorum", b"no quorum");
    assert_eq!(
        refused.status,
        503,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    assert!(refused.error().contains("etcd"), "{}", refused.error());
    let read = cluster.get("q/before");
    assert_eq!(read.status, 503);
    assert!(
        read.error().contains("metadata store is unavailable"),
        "{}",
        read.error()
    );
    eprintln!(
        "a request without an etcd quorum is answered 503 in {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    etcd.restart(1);
    etcd.wait_healthy(1);
    wait_until(Duration::from_secs(30), "writes to resume", || {
        cluster.put("q/after", b"after").status == 201
    });
    assert_eq!(cluster.get("q/one-down").body, b"one down");
    assert_eq!(cluster.get("q/no-quorum").status, 404);
}

#[test]
fn migrate_to_etcd_copies_a_populated_namespace_into_an_empty_prefix_only() {
    let dir = crate::cluster::test_dir();
    let etcd = Etcd::start(&dir, 1);
    // A cluster on the local journal first.
    let mut cluster = Cluster::start(Spec {
        local_journal: true,
        ..Spec::default()
    });
    for (idx, size) in SIZES.into_iter().enumerate() {
        assert_eq!(
            cluster
                .put(&format!("m/f{idx}"), &body_of(size, idx as u8))
                .status,
            201
        );
    }
    assert_eq!(cluster.request("POST", "/dirs/m/empty/", &[]).status, 201);
    cluster.naming().kill();
    let migrate = |prefix: Option<&str>| {
        let mut command = std::process::Command::new(crate::cluster::bin_path("harbour-naming"));
        if let Some(prefix) = prefix {
            command.args(["--etcd-prefix", prefix]);
        }
        command
            .args(["--insecure", "--storage-servers"])
            .arg(
                (0..3)
                    .map(|idx| cluster.storage_url(idx))
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .args(["--meta-dir"])
            .arg(cluster.meta_dir())
            .args(["--etcd-endpoints", &etcd.endpoints()])
            .arg("--migrate-to-etcd")
            .env_clear()
            .output()
            .expect("run --migrate-to-etcd")
    };
    let first = migrate(Some("/migrated/"));
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let again = migrate(Some("/migrated/"));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("empty prefix"));
    // Without --etcd-prefix, the default: /harbour/.
    assert!(migrate(None).status.success());
    let seq = etcd.call("/v3/kv/range", r#"{"key":"L2hhcmJvdXIvbS9+c2Vx"}"#);
    assert_eq!(seq["count"], "1", "/harbour/m/~seq: {seq}");
    // A naming server on etcd serves the migrated namespace.
    let mut args = vec!["--listen".to_owned(), "127.0.0.1:0".to_owned()];
    args.extend([
        "--storage-servers".to_owned(),
        (0..3)
            .map(|idx| cluster.storage_url(idx))
            .collect::<Vec<_>>()
            .join(","),
    ]);
    args.extend([
        "--meta-dir".to_owned(),
        dir.join("unused").display().to_string(),
    ]);
    args.extend([
        "--etcd-endpoints".to_owned(),
        etcd.endpoints(),
        "--etcd-prefix".to_owned(),
        "/migrated/".to_owned(),
    ]);
    let on_etcd = Server::start("harbour-naming", args, dir.join("migrated.log"));
    for (idx, size) in SIZES.into_iter().enumerate() {
        let read = at(&cluster, &on_etcd, "GET", &format!("/files/m/f{idx}"), &[]);
        assert_eq!(read.body, body_of(size, idx as u8), "m/f{idx}");
    }
    let level = at(
        &cluster,
        &on_etcd,
        "GET",
        "/files?prefix=m/&delimiter=/",
        &[],
    )
    .json();
    assert!(level.to_string().contains("m/empty/"), "{level}");
    assert_eq!(
        at(&cluster, &on_etcd, "PUT", "/files/m/new", b"new").status,
        201
    );
}

#[test]
fn clients_and_joining_storage_servers_fail_over_to_the_next_naming_server() {
    let (_etcd, cluster, peer) = two_naming_servers(Spec::default());
    let both = format!("{},{}", cluster.url(), peer.url());
    let cli = |args: &[&str], stdin: &[u8]| {
        crate::cluster::Cli::new(args)
            .env("NAME_SERVER", &both)
            .stdin(stdin)
            .run()
    };
    let created = cli(&["create", "fo/a", "-"], b"first");
    assert_eq!(created.code, 0, "{}", created.stderr);
    kill_and_wait_gone(cluster.naming_ref());
    // The first URL is gone: each command moves on to the second.
    let started = Instant::now();
    let read = cli(&["read", "fo/a", "-"], &[]);
    eprintln!(
        "a read whose first naming server is dead took {:?}",
        started.elapsed()
    );
    assert_eq!(read.code, 0, "{}", read.stderr);
    assert_eq!(read.stdout, b"first");
    let created = cli(&["create", "fo/b", "-"], b"second");
    assert_eq!(created.code, 0, "{}", created.stderr);
    let listed = cli(&["list", "fo/"], &[]);
    assert!(
        listed.stdout_text().contains("fo/b"),
        "{}",
        listed.stdout_text()
    );
    // A storage server joining names the dead one first.
    let data_dir = cluster.dir.join("joiner");
    let joiner = Server::start(
        "harbour-storage",
        vec![
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--data-dir".to_owned(),
            data_dir.display().to_string(),
            "--join".to_owned(),
            both.clone(),
        ],
        cluster.dir.join("joiner.log"),
    );
    wait_until(Duration::from_secs(20), "the joiner to register", || {
        let status = at(&cluster, &peer, "GET", "/status", &[]).json();
        status.to_string().contains(&joiner.url())
    });
}

#[test]
fn a_naming_server_behind_compacted_history_reads_the_state_again_whole() {
    let (etcd, cluster, peer) = two_naming_servers(Spec::default());
    assert_eq!(cluster.put("c/before", b"before").status, 201);
    assert_eq!(
        at(&cluster, &peer, "GET", "/files/c/before", &[]).status,
        200
    );
    peer.freeze();
    for idx in 0..5 {
        assert_eq!(
            cluster.put(&format!("c/{idx}"), &body_of(1500, idx)).status,
            201
        );
    }
    assert_eq!(cluster.delete("c/before").status, 204);
    // etcd forgets the changes the frozen server has not seen.
    let range = etcd.call("/v3/kv/range", r#"{"key":"AA=="}"#);
    let revision = range["header"]["revision"].as_str().expect("a revision");
    etcd.call(
        "/v3/kv/compaction",
        &format!(r#"{{"revision":"{revision}"}}"#),
    );
    peer.thaw();
    for idx in 0..5 {
        let read = at(&cluster, &peer, "GET", &format!("/files/c/{idx}"), &[]);
        assert_eq!(read.body, body_of(1500, idx), "c/{idx}");
    }
    assert_eq!(
        at(&cluster, &peer, "GET", "/files/c/before", &[]).status,
        404
    );
    assert!(
        peer.log_text().contains("read again whole"),
        "{}",
        peer.log_text()
    );
}

#[test]
fn a_directory_rename_larger_than_one_etcd_transaction_is_refused_whole() {
    let dir = crate::cluster::test_dir();
    let etcd = Etcd::start(&dir, 1);
    let cluster = on_etcd(&etcd, Spec::default());
    for idx in 0..64 {
        assert_eq!(cluster.put(&format!("big/{idx}"), b"x").status, 201);
    }
    let refused = cluster.request("POST", "/rename?from=big/&to=moved/", &[]);
    assert_eq!(
        refused.status,
        400,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    assert!(
        refused.error().contains("etcd takes at most"),
        "{}",
        refused.error()
    );
    // Nothing moved.
    let listing = cluster.request("GET", "/files?prefix=big/", &[]).json();
    assert_eq!(listing.as_array().map(Vec::len), Some(64));
    assert_eq!(
        cluster.request("GET", "/files?prefix=moved/", &[]).body,
        b"[]"
    );
    // 63 names fit.
    assert_eq!(cluster.delete("big/0").status, 204);
    let renamed = cluster.request("POST", "/rename?from=big/&to=moved/", &[]);
    assert_eq!(
        renamed.status,
        200,
        "{}",
        String::from_utf8_lossy(&renamed.body)
    );
}

#[test]
fn etcd_over_https_with_a_user_and_password_and_a_wrong_password_refused() {
    let dir = crate::cluster::test_dir();
    let pki = crate::pki::TestPki::new(&dir.join("tls"), "etcd");
    let etcd = Etcd::start_with(&dir, 1, Some(pki.clone()));
    etcd.call(
        "/v3/auth/user/add",
        r#"{"name":"root","password":"etcd-secret-1"}"#,
    );
    etcd.call("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#);
    etcd.call("/v3/auth/enable", "{}");
    // Without the password, and with a wrong one: no start.
    for password in [None, Some("wrong")] {
        let mut command = std::process::Command::new(crate::cluster::bin_path("harbour-naming"));
        crate::cluster::clear_env(&mut command);
        command.args([
            "--listen",
            "127.0.0.1:0",
            "--storage-servers",
            "http://127.0.0.1:9",
            "--replication",
            "1",
            "--meta-dir",
            &dir.join("refused").display().to_string(),
            "--etcd-endpoints",
            &etcd.endpoints(),
            "--etcd-ca-file",
            &pki.ca_arg(),
        ]);
        if let Some(password) = password {
            command
                .args(["--etcd-username", "root"])
                .env("ETCD_PASSWORD", password);
        }
        let output = command.output().expect("run harbour-naming");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains("etcd"), "{stderr}");
        assert!(
            !stderr.contains("wrong"),
            "the password is never printed: {stderr}"
        );
    }
    let ca: &'static str = Box::leak(pki.ca_arg().into_boxed_str());
    let cluster = on_etcd(
        &etcd,
        Spec {
            env: vec![
                ("ETCD_USERNAME", "root"),
                ("ETCD_PASSWORD", "etcd-secret-1"),
                ("ETCD_CA_FILE", ca),
            ],
            ..Spec::default()
        },
    );
    assert!(etcd.endpoints().starts_with("https://"));
    let peer = cluster.start_naming_peer("b");
    assert_eq!(cluster.put("auth/a", b"over tls").status, 201);
    assert_eq!(
        at(&cluster, &peer, "GET", "/files/auth/a", &[]).body,
        b"over tls"
    );
    assert!(!cluster.naming_ref().log_text().contains("etcd-secret-1"));
}

#[test]
fn a_mount_goes_on_through_the_other_naming_server_when_one_dies() {
    let (_etcd, cluster, peer) = two_naming_servers(Spec::default());
    let both = format!("{},{}", cluster.url(), peer.url());
    let mount = crate::mount::Mounted::start(&cluster, &["--server", &both]);
    std::fs::write(mount.path("before.txt"), b"before the kill").expect("write through the mount");
    wait_until(Duration::from_secs(10), "the first file uploaded", || {
        at(&cluster, &peer, "GET", "/files/before.txt", &[]).status == 200
    });
    kill_and_wait_gone(cluster.naming_ref());
    std::fs::write(mount.path("after.txt"), b"after the kill").expect("write through the mount");
    let read = at(&cluster, &peer, "GET", "/files/after.txt", &[]);
    assert_eq!(read.body, b"after the kill", "{}", mount.log_text());
    let names: Vec<String> = std::fs::read_dir(&mount.dir)
        .expect("list the mount")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(names.contains(&"before.txt".to_owned()), "{names:?}");
    assert!(names.contains(&"after.txt".to_owned()), "{names:?}");
}

#[test]
fn an_s3_multipart_upload_spans_two_naming_servers() {
    let dir = crate::cluster::test_dir();
    let etcd = Etcd::start(&dir, 1);
    let cluster = on_etcd(
        &etcd,
        Spec {
            s3_keys: Some(crate::s3::KEYS),
            ..Spec::default()
        },
    );
    let peer = cluster.start_naming_peer("b");
    let peer_s3 = crate::cluster::s3_url_of(&peer);
    let out = crate::s3::run_ok(
        &cluster,
        &crate::s3::here(),
        "python3",
        &["boto3_two_servers.py"],
        &[("S3_URL_B", &peer_s3)],
    );
    assert!(out.contains("two servers ok"), "{out}");
}
