//! SPEC "Namespace", ranged reads: `GET /files/NAME` honours one
//! `Range: bytes=A-B`, `A-` or `-N` with 206 and `Content-Range`, answers
//! a range past the end 416, says `Accept-Ranges: bytes`, and fetches only
//! the chunks of the range from storage; `curl -r` and `curl -C -` work.

use std::process::Command;

use crate::cluster::{Cluster, Spec, metric_value, test_bytes, test_dir};

/// A GET or HEAD of `name` with `range`: status, headers we look at, body.
struct Ranged {
    status: u16,
    content_range: Option<String>,
    content_length: Option<u64>,
    accept_ranges: Option<String>,
    body: Vec<u8>,
}

fn ranged(cluster: &Cluster, method: &str, name: &str, range: Option<&str>) -> Ranged {
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{}/files/{name}", cluster.url()));
    if let Some(range) = range {
        builder = builder.header("Range", range);
    }
    let mut response = cluster
        .agent
        .run(builder.body(()).expect("a request"))
        .expect("an answer");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let (content_range, content_length, accept_ranges) = (
        header("content-range"),
        header("content-length").and_then(|len| len.parse().ok()),
        header("accept-ranges"),
    );
    Ranged {
        status: response.status().as_u16(),
        content_range,
        content_length,
        accept_ranges,
        body: response.body_mut().read_to_vec().expect("a body"),
    }
}

#[test]
fn one_range_of_each_form_reads_exactly_its_bytes() {
    let cluster = Cluster::start(Spec::default());
    let bytes = test_bytes(5000, 3);
    assert_eq!(cluster.put("five", &bytes).status, 201);
    for (range, start, end) in [
        ("bytes=0-0", 0, 1),
        ("bytes=1023-1024", 1023, 1025),
        ("bytes=1024-2047", 1024, 2048),
        ("bytes=100-4000", 100, 4001),
        ("bytes=4999-", 4999, 5000),
        ("bytes=3000-", 3000, 5000),
        ("bytes=-1", 4999, 5000),
        ("bytes=-1500", 3500, 5000),
        ("bytes=-9000", 0, 5000),
        ("bytes=4000-99999", 4000, 5000),
    ] {
        let answer = ranged(&cluster, "GET", "five", Some(range));
        assert_eq!(answer.status, 206, "{range}");
        assert!(answer.body == bytes[start..end], "{range}: other bytes");
        assert_eq!(
            answer.content_range.as_deref(),
            Some(format!("bytes {start}-{}/5000", end - 1).as_str()),
            "{range}"
        );
        assert_eq!(answer.content_length, Some((end - start) as u64), "{range}");
        assert_eq!(answer.accept_ranges.as_deref(), Some("bytes"));
        let head = ranged(&cluster, "HEAD", "five", Some(range));
        assert_eq!(head.status, 206, "HEAD {range}");
        assert_eq!(head.content_length, Some((end - start) as u64));
        assert!(head.body.is_empty());
    }
    // Past the end: 416 with the size.
    for range in ["bytes=5000-", "bytes=6000-7000", "bytes=-0"] {
        let answer = ranged(&cluster, "GET", "five", Some(range));
        assert_eq!(answer.status, 416, "{range}");
        assert_eq!(answer.content_range.as_deref(), Some("bytes */5000"));
    }
    // Several ranges, another unit, nonsense: the whole file, 200.
    for range in ["bytes=0-1,3-4", "lines=1-2", "bytes=9-5", "bytes=x-"] {
        let answer = ranged(&cluster, "GET", "five", Some(range));
        assert_eq!(answer.status, 200, "{range}");
        assert!(answer.body == bytes, "{range}");
    }
    let whole = ranged(&cluster, "GET", "five", None);
    assert_eq!(
        (whole.status, whole.accept_ranges.as_deref()),
        (200, Some("bytes"))
    );
    let head = ranged(&cluster, "HEAD", "five", None);
    assert_eq!((head.status, head.content_length), (200, Some(5000)));
    // An empty file has no byte to range over.
    assert_eq!(cluster.put("empty", b"").status, 201);
    assert_eq!(
        ranged(&cluster, "GET", "empty", Some("bytes=0-")).status,
        416
    );
}

#[test]
fn a_range_fetches_only_its_chunks_even_across_batches() {
    let cluster = Cluster::start(Spec {
        storage: 2,
        ..Spec::default()
    });
    // 2.5 MiB: 2560 chunks, so three batches of at most 1024.
    let bytes = test_bytes(2560 * 1024, 8);
    assert_eq!(cluster.put("big", &bytes).status, 201);
    let sent_by_storage = || -> u64 {
        (0..2)
            .map(|idx| {
                let page = crate::cluster::call(
                    &format!("{}/metrics", cluster.storage_url(idx)),
                    "GET",
                    None,
                    &[],
                );
                String::from_utf8_lossy(&page.body)
                    .lines()
                    .filter(|line| {
                        line.starts_with(
                            "harbour_http_response_bytes_total{endpoint=\"/chunks/{blob}\"",
                        )
                    })
                    .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
                    .sum::<u64>()
            })
            .sum()
    };
    let before = sent_by_storage();
    let before_read = metric_value(
        &String::from_utf8_lossy(&cluster.request("GET", "/metrics", &[]).body),
        "harbour_bytes_read_total",
    );
    // Across the first batch boundary (chunk 1024 starts at byte 1048576).
    let answer = ranged(&cluster, "GET", "big", Some("bytes=1048000-1049000"));
    assert_eq!(answer.status, 206);
    assert!(answer.body == bytes[1_048_000..1_049_001]);
    crate::cluster::wait_until(std::time::Duration::from_secs(5), "the counts", || {
        sent_by_storage() > before
    });
    let sent = sent_by_storage() - before;
    // Two chunks (1023 + 1 of them are needed), with their frame headers.
    assert!(
        sent < 4 * 1024,
        "storage sent {sent} bytes for a 1001-byte range"
    );
    let read = metric_value(
        &String::from_utf8_lossy(&cluster.request("GET", "/metrics", &[]).body),
        "harbour_bytes_read_total",
    ) - before_read;
    assert_eq!(read, 1001);
    // A range over the whole second batch and into the third.
    let answer = ranged(&cluster, "GET", "big", Some("bytes=1048575-2097153"));
    assert!(answer.body == bytes[1_048_575..2_097_154]);
}

#[test]
fn curl_reads_a_range_and_resumes_a_download() {
    let cluster = Cluster::start(Spec::default());
    let bytes = test_bytes(300_000, 9);
    assert_eq!(cluster.put("resumed", &bytes).status, 201);
    let url = format!("{}/files/resumed", cluster.url());
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "-r", "1000-1999", &url])
        .output()
        .expect("curl");
    assert!(output.status.success());
    assert!(
        output.stdout == bytes[1000..2000],
        "curl -r read other bytes"
    );
    // A download cut after 123456 bytes, resumed with -C -.
    let dir = test_dir();
    let partial = dir.join("resumed");
    std::fs::write(&partial, &bytes[..123_456]).unwrap();
    let status = Command::new("curl")
        .args(["--silent", "--show-error", "-C", "-", "-o"])
        .arg(&partial)
        .arg(&url)
        .status()
        .expect("curl");
    assert!(status.success());
    assert!(
        std::fs::read(&partial).unwrap() == bytes,
        "the resumed download differs"
    );
}
