//! AWS Signature Version 4, checked: in the `Authorization` header or in a
//! presigned URL's query, the canonical request rebuilt from what arrived
//! (path and query decoded and encoded again SigV4's way, the signed
//! headers, the payload's hash as claimed), the signing key derived from
//! the key's secret, and the signature compared in constant time (`hmac`'s
//! `verify_slice`). What the body must then prove (its SHA-256, or each
//! aws-chunked chunk's signature) is the `Payload` returned: `body.rs` and
//! `chunked.rs` check it as the bytes stream. Written on `hmac` and `sha2`,
//! as Garage does; the AWS SDK's signer only signs, and needs a runtime.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use common::percent;

use crate::s3::encoding::{hex, unhex};
use crate::s3::error::{Code, S3Error};
use crate::s3::keys::{S3Key, S3Keys};

type HmacSha256 = Hmac<Sha256>;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SERVICE: &str = "s3";
const TERMINATOR: &str = "aws4_request";

/// How far a request's `x-amz-date` may be from this server's clock, as
/// S3 allows (`RequestTimeTooSkewed` past it).
pub const CLOCK_SKEW_MS_MAX: u64 = 15 * 60 * 1000;

/// The longest a presigned URL may live (S3's limit: seven days).
pub const PRESIGNED_EXPIRES_SECS_MAX: u64 = 7 * 24 * 3600;

pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
const STREAMING_SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// What SigV4 looks at in a request.
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The path as sent, still percent-encoded.
    pub path: &'a str,
    /// The query as sent, without its `?`.
    pub query: &'a str,
    /// Every header, names lower-cased, in arrival order.
    pub headers: &'a [(String, String)],
}

impl RequestParts<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every `(name, value)` of the query, percent-decoded.
    pub fn query_pairs(&self) -> Result<Vec<(String, String)>, S3Error> {
        let decode = |text: &str| {
            percent::decode(text)
                .map_err(|err| S3Error::new(Code::InvalidArgument, format!("query: {err}")))
        };
        self.query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                Ok((decode(key)?, decode(value)?))
            })
            .collect()
    }
}

/// What the body of a verified request must still prove.
#[derive(Debug)]
pub enum Payload {
    /// Its SHA-256 is this (signed).
    Sha256([u8; 32]),
    /// Nothing (`UNSIGNED-PAYLOAD`, and presigned URLs).
    Unsigned,
    /// An aws-chunked body: each chunk signed, chained from the request's
    /// signature, when `signer` is given; a trailer after the last chunk
    /// when `trailer`.
    Chunked {
        signer: Option<ChunkSigner>,
        trailer: bool,
    },
}

/// The signatures of an aws-chunked body: each chunk's (and the
/// trailer's) signs the one before it, from the request's.
pub struct ChunkSigner {
    signing_key: [u8; 32],
    amz_date: String,
    scope: String,
    previous: String,
}

impl std::fmt::Debug for ChunkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkSigner").finish_non_exhaustive()
    }
}

impl ChunkSigner {
    /// Whether `claimed` signs a chunk whose data hashes to `data_sha256`;
    /// the chain moves on only when it does.
    pub fn check_chunk(&mut self, data_sha256: &[u8], claimed: &str) -> bool {
        let to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            self.previous,
            hex(&Sha256::digest(b"")),
            hex(data_sha256)
        );
        self.check(&to_sign, claimed)
    }

    /// Whether `claimed` signs the trailer whose header lines (each
    /// `name:value\n`) hash to `trailer_sha256`.
    pub fn check_trailer(&mut self, trailer_sha256: &[u8], claimed: &str) -> bool {
        let to_sign = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            self.previous,
            hex(trailer_sha256)
        );
        self.check(&to_sign, claimed)
    }

    fn check(&mut self, to_sign: &str, claimed: &str) -> bool {
        let good = signature_matches(&self.signing_key, to_sign, claimed);
        if good {
            self.previous = claimed.to_ascii_lowercase();
        }
        good
    }
}

/// A request whose signature is good: who sent it and what its body owes.
pub struct Verified<'k> {
    pub key: &'k S3Key,
    pub payload: Payload,
    /// The request's query, percent-decoded (as the signature saw it).
    pub query: Vec<(String, String)>,
}

/// The fields a signature names, from the header or from the query.
struct Claim {
    access_key_id: String,
    date: String,
    region: String,
    signed_headers: Vec<String>,
    signature: String,
    amz_date: String,
    presigned: bool,
}

/// Checks the request's signature against `keys` at `now_ms`.
pub fn verify<'k>(
    request: &RequestParts<'_>,
    keys: &'k S3Keys,
    region: &str,
    now_ms: u64,
) -> Result<Verified<'k>, S3Error> {
    let query = request.query_pairs()?;
    let query_value = |key: &str| {
        query
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    };
    let claim = match (
        request.header("authorization"),
        query_value("X-Amz-Algorithm"),
    ) {
        (Some(header), _) if header.starts_with("AWS ") => return Err(signature_v2()),
        (Some(header), _) => claim_of_header(request, header)?,
        (None, Some(algorithm)) => claim_of_query(&query_value, algorithm, now_ms)?,
        (None, None) if query_value("AWSAccessKeyId").is_some() => return Err(signature_v2()),
        (None, None) => {
            return Err(S3Error::new(
                Code::AccessDenied,
                "anonymous requests are refused: sign them with an S3 access key",
            ));
        }
    };
    let key = keys.find(&claim.access_key_id).ok_or_else(|| {
        S3Error::new(
            Code::InvalidAccessKeyId,
            "the access key id is not one of this server's",
        )
    })?;
    if claim.region != region {
        return Err(S3Error::new(
            Code::AuthorizationHeaderMalformed,
            format!(
                "the region {:?} is wrong; this server is {region:?}",
                claim.region
            ),
        ));
    }
    let request_ms = parse_amz_date(&claim.amz_date).ok_or_else(|| {
        S3Error::new(
            Code::AccessDenied,
            "x-amz-date is not a time like 20261202T083000Z",
        )
    })?;
    if !claim.amz_date.starts_with(&claim.date) {
        return Err(S3Error::new(
            Code::SignatureDoesNotMatch,
            "the credential's date is not the request's",
        ));
    }
    if !claim.presigned && request_ms.abs_diff(now_ms) > CLOCK_SKEW_MS_MAX {
        return Err(S3Error::new(
            Code::RequestTimeTooSkewed,
            format!(
                "the request's time is more than {} minutes from the server's",
                CLOCK_SKEW_MS_MAX / 60_000
            ),
        ));
    }
    if !claim.signed_headers.iter().any(|name| name == "host") {
        return Err(S3Error::new(
            Code::AuthorizationHeaderMalformed,
            "the host header must be signed",
        ));
    }
    let payload_claim = match claim.presigned {
        true => query_value("X-Amz-Content-Sha256").unwrap_or(UNSIGNED_PAYLOAD),
        false => request.header("x-amz-content-sha256").ok_or_else(|| {
            S3Error::new(
                Code::InvalidRequest,
                "missing required header for this request: x-amz-content-sha256",
            )
        })?,
    }
    .to_owned();
    let canonical = canonical_request(request, &query, &claim, &payload_claim)?;
    let scope = format!("{}/{region}/{SERVICE}/{TERMINATOR}", claim.date);
    let to_sign = format!(
        "{ALGORITHM}\n{}\n{scope}\n{}",
        claim.amz_date,
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let signing_key = signing_key(key.secret(), &claim.date, region);
    if !signature_matches(&signing_key, &to_sign, &claim.signature) {
        return Err(S3Error::new(
            Code::SignatureDoesNotMatch,
            "the request signature we calculated does not match the signature you provided; check your key and signing method",
        ));
    }
    let payload = match payload_claim.as_str() {
        UNSIGNED_PAYLOAD => Payload::Unsigned,
        STREAMING_SIGNED | STREAMING_SIGNED_TRAILER => Payload::Chunked {
            signer: Some(ChunkSigner {
                signing_key,
                amz_date: claim.amz_date.clone(),
                scope,
                previous: claim.signature.to_ascii_lowercase(),
            }),
            trailer: payload_claim == STREAMING_SIGNED_TRAILER,
        },
        STREAMING_UNSIGNED_TRAILER => Payload::Chunked {
            signer: None,
            trailer: true,
        },
        hash => match unhex(hash).and_then(|bytes| <[u8; 32]>::try_from(bytes).ok()) {
            Some(sha256) => Payload::Sha256(sha256),
            None => {
                return Err(S3Error::new(
                    Code::InvalidArgument,
                    format!("x-amz-content-sha256 {hash:?} is neither a SHA-256 nor a known mode"),
                ));
            }
        },
    };
    Ok(Verified {
        key,
        payload,
        query,
    })
}

/// A request signed the older way (Signature Version 2), which this
/// server does not accept.
fn signature_v2() -> S3Error {
    S3Error::new(
        Code::AccessDenied,
        "only AWS Signature Version 4 is accepted, and this request is signed with version 2 (boto3: Config(signature_version=\"s3v4\"))",
    )
}

/// `AWS4-HMAC-SHA256 Credential=ID/DATE/REGION/s3/aws4_request,
/// SignedHeaders=a;b, Signature=HEX`.
fn claim_of_header(request: &RequestParts<'_>, header: &str) -> Result<Claim, S3Error> {
    let malformed = |what: &str| S3Error::new(Code::AuthorizationHeaderMalformed, what.to_owned());
    let fields = header
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| malformed("only AWS4-HMAC-SHA256 (SigV4) signatures are accepted"))?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for field in fields.split(',').map(str::trim) {
        match field.split_once('=') {
            Some(("Credential", value)) => credential = Some(value),
            Some(("SignedHeaders", value)) => signed_headers = Some(value),
            Some(("Signature", value)) => signature = Some(value),
            _ => return Err(malformed("unexpected field in the Authorization header")),
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(malformed(
            "the Authorization header needs Credential, SignedHeaders and Signature",
        ));
    };
    let amz_date = request
        .header("x-amz-date")
        .ok_or_else(|| malformed("a signed request needs an x-amz-date header"))?;
    claim(credential, signed_headers, signature, amz_date, false).map_err(|what| malformed(&what))
}

/// The `X-Amz-*` parameters of a presigned URL; refuses an expired one.
fn claim_of_query<'q>(
    value: &impl Fn(&str) -> Option<&'q str>,
    algorithm: &str,
    now_ms: u64,
) -> Result<Claim, S3Error> {
    let malformed =
        |what: &str| S3Error::new(Code::AuthorizationQueryParametersError, what.to_owned());
    if algorithm != ALGORITHM {
        return Err(malformed("X-Amz-Algorithm must be AWS4-HMAC-SHA256"));
    }
    let get = |key: &str| value(key).ok_or_else(|| malformed(&format!("{key} is missing")));
    let (credential, signed_headers, signature, amz_date) = (
        get("X-Amz-Credential")?,
        get("X-Amz-SignedHeaders")?,
        get("X-Amz-Signature")?,
        get("X-Amz-Date")?,
    );
    let expires: u64 = get("X-Amz-Expires")?
        .parse()
        .ok()
        .filter(|secs| (1..=PRESIGNED_EXPIRES_SECS_MAX).contains(secs))
        .ok_or_else(|| {
            malformed(&format!(
                "X-Amz-Expires must be 1 to {PRESIGNED_EXPIRES_SECS_MAX} seconds"
            ))
        })?;
    let claim = claim(credential, signed_headers, signature, amz_date, true)
        .map_err(|what| malformed(&what))?;
    let signed_ms =
        parse_amz_date(amz_date).ok_or_else(|| malformed("X-Amz-Date is not a time"))?;
    if signed_ms > now_ms + CLOCK_SKEW_MS_MAX {
        return Err(S3Error::new(
            Code::AccessDenied,
            "the presigned URL is not valid yet",
        ));
    }
    if signed_ms + expires * 1000 < now_ms {
        return Err(S3Error::new(Code::AccessDenied, "request has expired"));
    }
    Ok(claim)
}

fn claim(
    credential: &str,
    signed_headers: &str,
    signature: &str,
    amz_date: &str,
    presigned: bool,
) -> Result<Claim, String> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts[..] else {
        return Err("the credential is not ID/DATE/REGION/s3/aws4_request".to_owned());
    };
    if service != SERVICE || terminator != TERMINATOR || date.len() != 8 {
        return Err("the credential is not ID/DATE/REGION/s3/aws4_request".to_owned());
    }
    let signed_headers: Vec<String> = signed_headers.split(';').map(str::to_owned).collect();
    let sorted = signed_headers.windows(2).all(|pair| pair[0] < pair[1]);
    let lower = signed_headers
        .iter()
        .all(|name| !name.is_empty() && *name == name.to_ascii_lowercase());
    if !sorted || !lower {
        return Err("SignedHeaders must be lower-case names, sorted, once each".to_owned());
    }
    Ok(Claim {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        signed_headers,
        signature: signature.to_owned(),
        amz_date: amz_date.to_owned(),
        presigned,
    })
}

fn canonical_request(
    request: &RequestParts<'_>,
    query: &[(String, String)],
    claim: &Claim,
    payload_claim: &str,
) -> Result<String, S3Error> {
    let path = percent::decode(request.path)
        .map_err(|err| S3Error::new(Code::InvalidArgument, format!("path: {err}")))?;
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(key, _)| !(claim.presigned && key == "X-Amz-Signature"))
        .map(|(key, value)| (percent::encode(key, false), percent::encode(value, false)))
        .collect();
    pairs.sort();
    let query_text: Vec<String> = pairs
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    let mut headers = String::new();
    for name in &claim.signed_headers {
        let values: Vec<String> = request
            .headers
            .iter()
            .filter(|(field, _)| field == name)
            .map(|(_, value)| value.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(S3Error::new(
                Code::AuthorizationHeaderMalformed,
                format!("the signed header {name} is not in the request"),
            ));
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    Ok(format!(
        "{}\n{}\n{}\n{headers}\n{}\n{payload_claim}",
        request.method,
        percent::encode(&path, true),
        query_text.join("&"),
        claim.signed_headers.join(";"),
    ))
}

fn hmac(key: &[u8], data: &str) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().into()
}

fn signing_key(secret: &str, date: &str, region: &str) -> [u8; 32] {
    let date_key = hmac(format!("AWS4{secret}").as_bytes(), date);
    let region_key = hmac(&date_key, region);
    let service_key = hmac(&region_key, SERVICE);
    hmac(&service_key, TERMINATOR)
}

/// Whether `claimed` (hex) is the signature of `to_sign`, compared in
/// constant time.
fn signature_matches(signing_key: &[u8; 32], to_sign: &str, claimed: &str) -> bool {
    let Some(claimed) = unhex(claimed) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(signing_key).expect("HMAC takes keys of any length");
    mac.update(to_sign.as_bytes());
    mac.verify_slice(&claimed).is_ok()
}

/// Milliseconds since the epoch of `20261202T083000Z`.
pub fn parse_amz_date(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<&str> {
        let part = text.get(range)?;
        part.bytes()
            .all(|byte| byte.is_ascii_digit())
            .then_some(part)
    };
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        digits(0..4)?,
        digits(4..6)?,
        digits(6..8)?,
        digits(9..11)?,
        digits(11..13)?,
        digits(13..15)?
    );
    common::time::parse_unix_ms(&rfc3339)
}

#[cfg(test)]
mod tests;
