//! SPEC "Operators", metrics: `GET /metrics` on every server, in the
//! Prometheus text format as `promtool check metrics` (Debian's
//! `prometheus` package, installed by .ci/run) accepts it, with requests
//! by endpoint and status, bytes, the store, fsync latency, and the
//! naming server's view of the cluster. Storage servers serve it without
//! credentials, like `/health`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::cluster::{Cluster, Spec, call, metric_value, test_bytes, wait_until};

/// `promtool check metrics` on `page`: its exit code and what it said.
pub fn promtool_check(page: &str) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (.ci/run installs Debian's prometheus)");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(page.as_bytes())
        .expect("feed promtool");
    let output = child.wait_with_output().expect("promtool ran");
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), said)
}

/// The value of the sample `series` (name and labels exactly as written).
fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{page}"))
        .trim()
        .parse()
        .unwrap_or_else(|err| panic!("{series}: {err}"))
}

fn page_of(url: &str) -> String {
    let answer = call(&format!("{url}/metrics"), "GET", None, &[]);
    assert_eq!(answer.status, 200, "{url}/metrics");
    String::from_utf8(answer.body).expect("a text page")
}

#[test]
fn every_server_serves_metrics_that_promtool_accepts() {
    let mut cluster = Cluster::start(Spec {
        storage: 2,
        replication: 2,
        ..Spec::default()
    });
    for idx in 0..5 {
        let name = format!("m{idx}");
        assert_eq!(cluster.put(&name, &test_bytes(3000, idx)).status, 201);
        assert_eq!(cluster.get(&name).body, test_bytes(3000, idx));
    }
    assert_eq!(cluster.get("absent").status, 404);
    // Requests are counted once answered: after the client has its answer.
    let naming_url = cluster.url();
    let put_count = "harbour_http_request_duration_seconds_count{endpoint=\"/files/{name}\",method=\"PUT\",status=\"201\"}";
    wait_until(Duration::from_secs(5), "the requests counted", || {
        page_of(&naming_url).contains(&format!("{put_count} 5"))
    });
    let naming = page_of(&naming_url);
    let (code, said) = promtool_check(&naming);
    assert_eq!((code, said.as_str()), (0, ""), "naming /metrics:\n{naming}");
    assert_eq!(
        sample(
            &naming,
            "harbour_http_request_duration_seconds_count{endpoint=\"/files/{name}\",method=\"GET\",status=\"404\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &naming,
            "harbour_http_request_bytes_total{endpoint=\"/files/{name}\",method=\"PUT\",status=\"201\"}"
        ),
        15_000.0
    );
    assert!(sample(&naming, "harbour_journal_fsync_duration_seconds_count") >= 5.0);
    assert_eq!(metric_value(&naming, "harbour_files"), 5);
    assert_eq!(metric_value(&naming, "harbour_under_replicated_chunks"), 0);
    assert_eq!(metric_value(&naming, "harbour_storage_servers_dead"), 0);
    if !cluster.on_etcd {
        assert!(metric_value(&naming, "harbour_journal_bytes") > 0);
    }

    for idx in 0..2 {
        let page = page_of(&cluster.storage_url(idx));
        let (code, said) = promtool_check(&page);
        assert_eq!((code, said.as_str()), (0, ""), "storage /metrics:\n{page}");
        assert_eq!(metric_value(&page, "harbour_store_chunks"), 15);
        assert_eq!(metric_value(&page, "harbour_store_live_bytes"), 15_000);
        assert!(sample(&page, "harbour_store_fsync_duration_seconds_count") >= 1.0);
        let free = metric_value(&page, "harbour_store_filesystem_free_bytes");
        assert!(free > 0 && free <= metric_value(&page, "harbour_store_filesystem_size_bytes"));
        assert!(
            sample(
                &page,
                "harbour_http_request_duration_seconds_count{endpoint=\"/chunks\",method=\"PUT\",status=\"201\"}"
            ) >= 1.0,
            "{page}"
        );
    }

    // A dead server shows, and so do the chunks it leaves short.
    cluster.storage(1).kill();
    wait_until(Duration::from_secs(10), "the death counted", || {
        metric_value(&page_of(&naming_url), "harbour_storage_servers_dead") == 1
    });
    let naming = page_of(&naming_url);
    assert_eq!(metric_value(&naming, "harbour_under_replicated_chunks"), 15);
    let dead_url = cluster.storage_url(1);
    assert_eq!(
        sample(
            &naming,
            &format!("harbour_storage_up{{server=\"{dead_url}\"}}")
        ),
        0.0
    );
    assert_eq!(promtool_check(&naming).0, 0);
}
