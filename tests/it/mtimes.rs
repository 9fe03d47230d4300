//! SPEC "Namespace", times: every file has an `mtime` (RFC 3339 UTC, set
//! when its version is committed), in `GET /files`, `GET /stat`, `harbour
//! stat` and `list -l`; an overwrite moves it; it survives `kill -9`,
//! restarts and checkpoints.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cluster::{Cluster, Spec, test_bytes, wait_until};

/// Milliseconds since the epoch of an RFC 3339 UTC time as the API writes
/// it (`2026-12-02T08:59:01.123Z`), parsed by hand for the test.
fn unix_ms(rfc3339: &str) -> u64 {
    assert_eq!(rfc3339.len(), 24, "{rfc3339}");
    let number = |range: std::ops::Range<usize>| -> u64 { rfc3339[range].parse().unwrap() };
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    // Days from the epoch (Howard Hinnant's days_from_civil).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + number(11..13)) * 60 + number(14..16)) * 60_000
        + number(17..19) * 1000
        + number(20..23)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn listed_mtime(cluster: &Cluster, name: &str) -> String {
    let list = cluster.request("GET", "/files", &[]).json();
    list.as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed"))["mtime"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn mtimes_are_set_at_commit_moved_by_overwrites_and_kept_across_crashes_and_checkpoints() {
    let mut cluster = Cluster::start(Spec {
        checkpoint_bytes: 1024,
        ..Spec::default()
    });
    let before = now_ms();
    assert_eq!(cluster.put("timed", &test_bytes(3000, 1)).status, 201);
    let after = now_ms();
    let mtime = listed_mtime(&cluster, "timed");
    assert!(mtime.ends_with('Z') && &mtime[10..11] == "T", "{mtime}");
    let at = unix_ms(&mtime);
    assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
    let stat = cluster.request("GET", "/stat/timed", &[]).json();
    assert_eq!(stat["mtime"], mtime.as_str());
    let shown = cluster.cli(&["stat", "timed"]).assert_ok().stdout_text();
    assert!(shown.contains(&format!("mtime:  {mtime}\n")), "{shown}");

    // An overwrite is a new version: a later time.
    wait_until(Duration::from_secs(2), "the clock to move", || {
        now_ms() > at + 5
    });
    assert_eq!(
        cluster
            .put("timed?overwrite=true", &test_bytes(10, 2))
            .status,
        201
    );
    let overwritten = listed_mtime(&cluster, "timed");
    assert!(unix_ms(&overwritten) > at, "{overwritten} after {mtime}");

    // Enough creates for checkpoints, then kill -9 of everything.
    for idx in 0..30 {
        assert_eq!(cluster.put(&format!("more{idx}"), b"x").status, 201);
    }
    let times: Vec<(String, String)> = (0..30)
        .map(|idx| {
            let name = format!("more{idx}");
            let mtime = listed_mtime(&cluster, &name);
            (name, mtime)
        })
        .collect();
    if !cluster.on_etcd {
        wait_until(Duration::from_secs(10), "a checkpoint", || {
            cluster.naming_ref().log_text().contains("checkpoint ")
        });
    }
    cluster.kill_all_and_restart();
    assert_eq!(listed_mtime(&cluster, "timed"), overwritten);
    for (name, mtime) in times {
        assert_eq!(listed_mtime(&cluster, &name), mtime, "{name}");
    }
}

#[test]
fn reads_carry_the_mtime_as_an_http_date_and_to_the_millisecond() {
    let cluster = Cluster::start(Spec::default());
    assert_eq!(cluster.put("dated", b"some bytes").status, 201);
    let listed = listed_mtime(&cluster, "dated");
    let url = format!("{}/files/dated", cluster.url());
    for response in [
        cluster.agent.head(&url).call().unwrap(),
        cluster
            .agent
            .get(&url)
            .header("Range", "bytes=0-1")
            .call()
            .unwrap(),
    ] {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .unwrap_or_else(|| panic!("{name} missing"))
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(header("X-Harbour-Mtime"), listed);
        let secs = unix_ms(&listed) / 1000;
        assert_eq!(
            header("Last-Modified"),
            common::time::http_date(secs * 1000)
        );
        assert!(header("Last-Modified").ends_with(" GMT"));
    }
}
