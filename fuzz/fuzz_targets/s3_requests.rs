//! What an S3 client controls: the SigV4 verifier over any Authorization
//! header, query, date and payload claim; the aws-chunked decoder over any
//! body; the XML request documents; base64. None may panic, and base64
//! decodes what it encodes.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use naming::s3::chunked::AwsChunked;
use naming::s3::encoding::{base64, unbase64};
use naming::s3::keys::S3Keys;
use naming::s3::sigv4::{RequestParts, verify};
use naming::s3::xml;

fuzz_target!(|data: &[u8]| {
    let mut fields = data.split(|&byte| byte == 0xff);
    let mut text = || String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let (authorization, query, date, payload, path) = (text(), text(), text(), text(), text());
    let body = fields.next().unwrap_or_default();
    let headers = vec![
        ("host".to_owned(), "127.0.0.1:9000".to_owned()),
        ("authorization".to_owned(), authorization),
        ("x-amz-date".to_owned(), date),
        ("x-amz-content-sha256".to_owned(), payload),
    ];
    let request = RequestParts {
        method: "PUT",
        path: &path,
        query: &query,
        headers: &headers,
    };
    let keys = S3Keys::single("fuzz-key", "fuzz-secret-0123456789").expect("a valid key");
    let _ = verify(&request, &keys, "us-east-1", 1_796_198_221_000);
    for trailer in [false, true] {
        let mut decoded = Vec::new();
        let _ = AwsChunked::new(body, None, trailer).read_to_end(&mut decoded);
        assert!(decoded.len() <= body.len());
    }
    let _ = xml::parse(body);
    if let Some(bytes) = unbase64(&String::from_utf8_lossy(body)) {
        assert_eq!(unbase64(&base64(&bytes)), Some(bytes));
    }
});
