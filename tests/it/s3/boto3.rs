//! boto3 against the S3 API: each test runs checks of
//! `boto3_checks.py` (every operation, ranges, conditions, listings,
//! copies, folder markers, presigned URLs, checksums, refusals, key
//! rights) and of `boto3_multipart.py` (multipart uploads), with the
//! SDK's default checksums on (`when_supported`, its
//! default) and off (`when_required`) where bodies are sent.

use super::{KEYS, here, run_ok, start};
use crate::cluster::{Cluster, Spec, slow_tests};
use crate::memory::PEAK_RSS_BYTES_MAX;

fn checks(names: &[&str], env: &[(&str, &str)]) {
    checks_on(&start(), names, env);
}

fn checks_on(cluster: &Cluster, names: &[&str], env: &[(&str, &str)]) {
    script_checks_on(cluster, "boto3_checks.py", names, env);
}

/// Runs the checks `names` of the Python file `script`.
fn script_checks_on(cluster: &Cluster, script: &str, names: &[&str], env: &[(&str, &str)]) {
    let mut args = vec![script];
    args.extend(names);
    let out = run_ok(cluster, &here(), "python3", &args, env);
    for name in names {
        assert!(
            out.contains(&format!("{} ok", name.replace('_', " "))),
            "{out}"
        );
    }
}

const CHECKSUMS_OFF: [(&str, &str); 2] = [
    ("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required"),
    ("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required"),
];

#[test]
fn buckets_are_made_listed_and_removed() {
    checks(&["buckets"], &[]);
}

#[test]
fn objects_round_trip_with_their_metadata() {
    checks(&["objects"], &[]);
}

#[test]
fn objects_round_trip_with_the_sdk_checksums_off() {
    checks(&["objects"], &CHECKSUMS_OFF);
}

#[test]
fn https_bodies_stream_aws_chunked_with_trailing_checksums() {
    let cluster = Cluster::start(Spec {
        s3_keys: Some(KEYS),
        tls: true,
        ..Spec::default()
    });
    let ca = cluster
        .pki
        .as_ref()
        .expect("a TLS cluster has a CA")
        .ca_arg();
    checks_on(&cluster, &["streaming", "objects"], &[("S3_CA_FILE", &ca)]);
}

#[test]
fn every_checksum_algorithm_is_checked() {
    checks(&["checksums"], &[]);
}

#[test]
fn ranges_and_conditional_requests_answer_as_s3_does() {
    checks(&["ranges_and_conditions"], &[]);
}

#[test]
fn listings_page_with_prefixes_delimiters_and_tokens() {
    checks(&["listing"], &[]);
}

#[test]
fn copies_keep_or_replace_metadata() {
    checks(&["copy", "delete_objects"], &[]);
}

#[test]
fn folder_markers_are_directories() {
    checks(&["folders"], &[]);
}

#[test]
fn presigned_urls_work_until_they_expire() {
    checks(&["presigned"], &[]);
}

#[test]
fn bad_signatures_stale_requests_and_strangers_are_refused() {
    checks(&["refusals"], &[]);
}

#[test]
fn read_keys_and_bucket_limited_keys_keep_to_their_rights() {
    checks(&["key_rights"], &[]);
}

#[test]
fn secrets_never_reach_the_logs() {
    let cluster = Cluster::start(Spec {
        s3_keys: Some(KEYS),
        env: vec![("LOG_LEVEL", "debug")],
        ..Spec::default()
    });
    checks_on(&cluster, &["refusals", "presigned"], &[]);
    let log = cluster.naming_ref().log_text();
    // Every request has its line, naming the key by its id...
    assert!(log.contains("s3:harbour-test"), "{log}");
    // ...presigned URLs without their signatures...
    assert!(log.contains("X-Amz-Signature=REDACTED"), "{log}");
    for (at, _) in log.match_indices("X-Amz-Signature=") {
        let value = &log[at + "X-Amz-Signature=".len()..];
        assert!(
            value.starts_with("REDACTED"),
            "a signature in the log:\n{log}"
        );
    }
    // ...and no secret is ever written.
    for line in KEYS.lines() {
        let secret = line.split_whitespace().nth(1).expect("a secret per line");
        assert!(!log.contains(secret), "a secret in the log:\n{log}");
    }
}

#[test]
fn a_large_object_streams_both_ways_in_bounded_memory() {
    let size: u64 = match slow_tests("a 1 GiB object through S3") {
        true => 1 << 30,
        false => 256 << 20,
    };
    let cluster = start();
    checks_on(
        &cluster,
        &["big_stream"],
        &[("BIG_BYTES", &size.to_string())],
    );
    let naming = cluster.naming_ref().peak_rss_bytes();
    let storage: Vec<u64> = (0..cluster.spec.storage)
        .map(|idx| cluster.storage_ref(idx).peak_rss_bytes())
        .collect();
    println!("peak RSS with a {size}-byte object through S3: naming {naming}, storage {storage:?}");
    for peak in storage.iter().chain([&naming]) {
        assert!(*peak < PEAK_RSS_BYTES_MAX, "peak RSS {peak} bytes");
    }
}

#[test]
fn s3_requests_are_counted_in_the_metrics() {
    let cluster = start();
    checks_on(&cluster, &["buckets"], &[]);
    let page = cluster.request("GET", "/metrics", &[]);
    let page = String::from_utf8_lossy(&page.body).into_owned();
    for series in [
        "harbour_http_request_duration_seconds_count{endpoint=\"s3:/\",method=\"GET\",status=\"200\"}",
        "harbour_http_request_duration_seconds_count{endpoint=\"s3:/{bucket}\",method=\"PUT\",status=\"200\"}",
        "harbour_http_request_duration_seconds_count{endpoint=\"s3:/{bucket}\",method=\"DELETE\",status=\"409\"}",
        "harbour_http_request_duration_seconds_count{endpoint=\"s3:/{bucket}/{key}\",method=\"PUT\",status=\"200\"}",
    ] {
        assert!(
            page.lines().any(|line| line.starts_with(series)),
            "no {series} in:\n{page}"
        );
    }
    let (code, said) = crate::metrics::promtool_check(&page);
    assert_eq!(code, 0, "{said}");
}

#[test]
fn object_metadata_and_marker_removals_survive_a_kill_9() {
    let mut cluster = start();
    checks_on(&cluster, &["durable_put"], &[]);
    cluster.naming().kill();
    cluster.naming().restart();
    cluster.wait_healthy();
    checks_on(&cluster, &["durable_after"], &[]);
}

fn multipart_checks(cluster: &Cluster, names: &[&str], env: &[(&str, &str)]) {
    script_checks_on(cluster, "boto3_multipart.py", names, env);
}

#[test]
fn multipart_parts_from_threads_complete_into_one_object() {
    multipart_checks(&start(), &["multipart"], &[]);
}

#[test]
fn multipart_parts_complete_with_the_sdk_checksums_off() {
    multipart_checks(&start(), &["multipart"], &CHECKSUMS_OFF);
}

#[test]
fn multipart_completions_keep_to_the_rules_of_s3() {
    multipart_checks(&start(), &["multipart_rules"], &[]);
}

#[test]
fn an_aborted_upload_leaves_no_object_and_no_chunks() {
    multipart_checks(&start(), &["multipart_abort"], &[]);
}

#[test]
fn parts_are_copied_from_objects_whole_and_by_range() {
    multipart_checks(&start(), &["upload_part_copy"], &[]);
}

#[test]
fn uploads_under_way_are_listed_by_key_with_prefixes_and_pages() {
    multipart_checks(&start(), &["list_uploads"], &[]);
}

#[test]
fn an_upload_under_way_survives_a_kill_9() {
    let mut cluster = start();
    multipart_checks(&cluster, &["durable_begin"], &[]);
    cluster.naming().kill();
    cluster.naming().restart();
    cluster.wait_healthy();
    multipart_checks(&cluster, &["durable_end"], &[]);
}

#[test]
fn unfinished_uploads_expire_and_their_parts_go() {
    let cluster = Cluster::start(Spec {
        s3_keys: Some(KEYS),
        env: vec![("S3_UPLOAD_EXPIRY_MS", "1500")],
        ..Spec::default()
    });
    multipart_checks(&cluster, &["expiry"], &[]);
    assert!(
        cluster
            .naming_ref()
            .log_text()
            .contains("expired; its parts are deleted"),
        "{}",
        cluster.naming_ref().log_text()
    );
}

#[test]
fn a_large_multipart_upload_and_ranged_reads_keep_memory_flat() {
    let size: u64 = match slow_tests("a 5 GiB multipart upload through S3") {
        true => 5 << 30,
        false => 512 << 20,
    };
    let cluster = start();
    multipart_checks(
        &cluster,
        &["big_multipart"],
        &[("BIG_BYTES", &size.to_string())],
    );
    let naming = cluster.naming_ref().peak_rss_bytes();
    let storage: Vec<u64> = (0..cluster.spec.storage)
        .map(|idx| cluster.storage_ref(idx).peak_rss_bytes())
        .collect();
    println!("peak RSS with a {size}-byte multipart upload: naming {naming}, storage {storage:?}");
    for peak in storage.iter().chain([&naming]) {
        assert!(*peak < PEAK_RSS_BYTES_MAX, "peak RSS {peak} bytes");
    }
}
