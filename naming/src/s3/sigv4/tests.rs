//! The verifier against the worked examples of AWS's SigV4 documentation
//! for S3 (header, presigned URL, aws-chunked), and each way a request is
//! refused.

#![allow(clippy::unwrap_used)]

use sha2::{Digest, Sha256};

use super::*;

const ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// 2013-05-24T00:00:00Z, the examples' time.
const EXAMPLE_MS: u64 = 1_369_353_600_000;

fn keys() -> S3Keys {
    S3Keys::single(ID, SECRET).unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

fn get_object_headers(signature: &str) -> Vec<(String, String)> {
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={ID}/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature={signature}"
    );
    headers(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("range", "bytes=0-9"),
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("x-amz-date", "20130524T000000Z"),
        ("authorization", &authorization),
    ])
}

const GET_OBJECT_SIGNATURE: &str =
    "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";

fn get_object(headers: &[(String, String)]) -> RequestParts<'_> {
    RequestParts {
        method: "GET",
        path: "/test.txt",
        query: "",
        headers,
    }
}

#[test]
fn the_documented_get_object_verifies() {
    let headers = get_object_headers(GET_OBJECT_SIGNATURE);
    let keys = keys();
    let verified = verify(
        &get_object(&headers),
        &keys,
        "us-east-1",
        EXAMPLE_MS + 60_000,
    )
    .unwrap();
    assert_eq!(verified.key.access_key_id, ID);
    assert!(matches!(verified.payload, Payload::Sha256(hash) if hex(&hash) == EMPTY_SHA256));
}

#[test]
fn a_changed_byte_a_wrong_secret_or_region_or_time_is_refused() {
    let keys = keys();
    let code = |headers: &[(String, String)], keys: &S3Keys, region: &str, now_ms: u64| {
        verify(&get_object(headers), keys, region, now_ms)
            .err()
            .map(|err| err.code)
    };
    let good = get_object_headers(GET_OBJECT_SIGNATURE);
    let mut other_range = good.clone();
    other_range[1].1 = "bytes=0-10".to_owned();
    assert_eq!(
        code(&other_range, &keys, "us-east-1", EXAMPLE_MS),
        Some(Code::SignatureDoesNotMatch)
    );
    let wrong_secret = S3Keys::single(ID, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEX").unwrap();
    assert_eq!(
        code(&good, &wrong_secret, "us-east-1", EXAMPLE_MS),
        Some(Code::SignatureDoesNotMatch)
    );
    let stranger = S3Keys::single("SOMEONEELSE", SECRET).unwrap();
    assert_eq!(
        code(&good, &stranger, "us-east-1", EXAMPLE_MS),
        Some(Code::InvalidAccessKeyId)
    );
    assert_eq!(
        code(&good, &keys, "eu-west-1", EXAMPLE_MS),
        Some(Code::AuthorizationHeaderMalformed)
    );
    let late = EXAMPLE_MS + CLOCK_SKEW_MS_MAX + 1000;
    assert_eq!(
        code(&good, &keys, "us-east-1", late),
        Some(Code::RequestTimeTooSkewed)
    );
    let early = EXAMPLE_MS - CLOCK_SKEW_MS_MAX - 1000;
    assert_eq!(
        code(&good, &keys, "us-east-1", early),
        Some(Code::RequestTimeTooSkewed)
    );
    let garbled = get_object_headers("not-hex");
    assert_eq!(
        code(&garbled, &keys, "us-east-1", EXAMPLE_MS),
        Some(Code::SignatureDoesNotMatch)
    );
    let anonymous = headers(&[("host", "examplebucket.s3.amazonaws.com")]);
    assert_eq!(
        code(&anonymous, &keys, "us-east-1", EXAMPLE_MS),
        Some(Code::AccessDenied)
    );
}

const PRESIGNED_QUERY: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

#[test]
fn the_documented_presigned_url_verifies_until_it_expires() {
    let headers = headers(&[("host", "examplebucket.s3.amazonaws.com")]);
    let request = |query| RequestParts {
        method: "GET",
        path: "/test.txt",
        query,
        headers: &headers,
    };
    let keys = keys();
    let verified = verify(&request(PRESIGNED_QUERY), &keys, "us-east-1", EXAMPLE_MS).unwrap();
    assert!(matches!(verified.payload, Payload::Unsigned));
    // Valid for the day it names, long past the clock skew...
    let in_the_day = EXAMPLE_MS + 86_000_000;
    assert!(verify(&request(PRESIGNED_QUERY), &keys, "us-east-1", in_the_day).is_ok());
    // ...and not after.
    let after = EXAMPLE_MS + 86_401_000;
    let err = verify(&request(PRESIGNED_QUERY), &keys, "us-east-1", after)
        .err()
        .unwrap();
    assert_eq!(
        (err.code, err.message.as_str()),
        (Code::AccessDenied, "request has expired")
    );
    let longer = PRESIGNED_QUERY.replace("X-Amz-Expires=86400", "X-Amz-Expires=86401");
    let err = verify(&request(&longer), &keys, "us-east-1", EXAMPLE_MS)
        .err()
        .unwrap();
    assert_eq!(err.code, Code::SignatureDoesNotMatch);
}

#[test]
fn the_documented_chunk_signatures_chain() {
    let mut signer = ChunkSigner {
        signing_key: signing_key(SECRET, "20130524", "us-east-1"),
        amz_date: "20130524T000000Z".to_owned(),
        scope: "20130524/us-east-1/s3/aws4_request".to_owned(),
        previous: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9".to_owned(),
    };
    let first = Sha256::digest(vec![b'a'; 65_536]);
    let second = Sha256::digest(vec![b'a'; 1024]);
    let last = Sha256::digest(b"");
    // A chunk signed out of turn is refused, and the chain stays put.
    assert!(!signer.check_chunk(
        &second,
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
    ));
    assert!(signer.check_chunk(
        &first,
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
    ));
    assert!(signer.check_chunk(
        &second,
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
    ));
    assert!(signer.check_chunk(
        &last,
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
    ));
}

#[test]
fn amz_dates_parse_strictly() {
    assert_eq!(parse_amz_date("20130524T000000Z"), Some(EXAMPLE_MS));
    for bad in [
        "20130524T000000",
        "2013-05-24T00:00:00Z",
        "20131324T000000Z",
        "2013052AT000000Z",
    ] {
        assert_eq!(parse_amz_date(bad), None, "{bad}");
    }
}
