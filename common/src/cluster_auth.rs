//! Cluster authentication: every call to a storage server (and a storage
//! server's registration with the naming server) carries a credential made
//! from the cluster secret, never the secret itself:
//!
//! ```text
//! Authorization: Harbour-Cluster t=<unix ms>,n=<nonce, 32 hex>,s=<HMAC, 64 hex>
//! HMAC-SHA256(secret, "harbour-cluster-v1\n" METHOD "\n" TARGET "\n" t "\n" n)
//! ```
//!
//! TARGET is the request target as sent (path and query, still
//! percent-encoded). A receiver accepts a credential whose time is within
//! `CLUSTER_CLOCK_SKEW_MS` of its own clock, whose MAC matches (checked in
//! constant time), and whose nonce it has not seen within that window (a
//! `ReplayGuard`); so a captured request cannot be sent again, and one
//! cannot be altered (method, path, query) without the secret. The body is
//! not covered: chunks carry their own CRC32C, and a peer able to rewrite
//! bytes on the wire is what TLS is for (SECURITY.md).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::limits::{CLUSTER_CLOCK_SKEW_MS, CLUSTER_SECRET_BYTES_MIN, REPLAY_NONCES_MAX};

/// The scheme word of the `Authorization` header.
pub const SCHEME: &str = "Harbour-Cluster";

const DOMAIN: &[u8] = b"harbour-cluster-v1\n";
const NONCE_HEX_CHARS: usize = 32;
const MAC_BYTES: usize = 32;

/// The cluster secret, ready to sign and check. Cloning copies the keyed
/// HMAC state, not the secret's text; `Debug` never shows it.
#[derive(Clone)]
pub struct ClusterKey {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

/// Why a credential was refused. The detail goes back to the caller in the
/// 401's JSON error; it says what is wrong, never anything of the secret.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Malformed(&'static str),
    /// The credential's time is this far from the receiver's clock.
    Skewed {
        by_ms: i64,
    },
    BadSignature,
    Replayed,
    /// More fresh nonces than the guard holds: refused, not forgotten.
    TooMany,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Missing => write!(f, "cluster credentials required ({SCHEME})"),
            AuthError::Malformed(what) => write!(f, "malformed cluster credentials: {what}"),
            AuthError::Skewed { by_ms } => write!(
                f,
                "cluster credentials {by_ms} ms away from this server's clock (at most {CLUSTER_CLOCK_SKEW_MS} ms)"
            ),
            AuthError::BadSignature => write!(f, "cluster credentials do not match"),
            AuthError::Replayed => write!(f, "cluster credentials already used"),
            AuthError::TooMany => write!(f, "too many fresh cluster credentials; try again"),
        }
    }
}

impl ClusterKey {
    /// The key of `secret` (surrounding whitespace ignored, so a file
    /// ending in a newline works); refused when shorter than
    /// `CLUSTER_SECRET_BYTES_MIN`.
    pub fn new(secret: &str) -> Result<ClusterKey, String> {
        let secret = secret.trim();
        if secret.len() < CLUSTER_SECRET_BYTES_MIN {
            return Err(format!(
                "the cluster secret is {} bytes; at least {CLUSTER_SECRET_BYTES_MIN} are needed (make one with: head -c 32 /dev/urandom | base64)",
                secret.len()
            ));
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .map_err(|_| "the cluster secret cannot key an HMAC".to_owned())?;
        Ok(ClusterKey { mac })
    }

    fn mac_of(&self, method: &str, target: &str, time_ms: u64, nonce: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(DOMAIN);
        for part in [method.as_bytes(), b"\n", target.as_bytes(), b"\n"] {
            mac.update(part);
        }
        mac.update(time_ms.to_string().as_bytes());
        mac.update(b"\n");
        mac.update(nonce.as_bytes());
        mac
    }

    /// The `Authorization` value for `method target` at `time_ms`.
    pub fn authorization(&self, method: &str, target: &str, time_ms: u64, nonce: u128) -> String {
        let nonce = format!("{nonce:032x}");
        let tag = self
            .mac_of(method, target, time_ms, &nonce)
            .finalize()
            .into_bytes();
        let mut header = format!("{SCHEME} t={time_ms},n={nonce},s=");
        for byte in tag {
            header.push_str(&format!("{byte:02x}"));
        }
        header
    }

    /// Checks `header` (the `Authorization` value, if any) for `method
    /// target` against the clock `now_ms`; on success returns the
    /// credential's time and nonce, which the caller still has to check
    /// against replays.
    pub fn verify(
        &self,
        header: Option<&str>,
        method: &str,
        target: &str,
        now_ms: u64,
    ) -> Result<(u64, u128), AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let fields = header
            .strip_prefix(SCHEME)
            .and_then(|rest| rest.strip_prefix(' '))
            .ok_or(AuthError::Missing)?;
        let mut time = None;
        let mut nonce = None;
        let mut tag = None;
        // One spelling only: no spaces, no leading zeros, lower-case hex;
        // a credential is the exact text `authorization` makes.
        for field in fields.split(',') {
            match field.split_once('=') {
                Some(("t", value)) if time.is_none() => time = Some(value),
                Some(("n", value)) if nonce.is_none() => nonce = Some(value),
                Some(("s", value)) if tag.is_none() => tag = Some(value),
                _ => return Err(AuthError::Malformed("expected t=, n= and s= once each")),
            }
        }
        let (Some(time), Some(nonce), Some(tag)) = (time, nonce, tag) else {
            return Err(AuthError::Malformed("expected t=, n= and s= once each"));
        };
        let time_ms = match time.parse::<u64>() {
            Ok(time_ms) if time_ms.to_string() == time => time_ms,
            _ => return Err(AuthError::Malformed("t is not a time in milliseconds")),
        };
        let by_ms = i64::try_from(i128::from(time_ms) - i128::from(now_ms)).unwrap_or(i64::MAX);
        if by_ms.unsigned_abs() > CLUSTER_CLOCK_SKEW_MS {
            return Err(AuthError::Skewed { by_ms });
        }
        if nonce.len() != NONCE_HEX_CHARS || !nonce.bytes().all(is_lower_hex) {
            return Err(AuthError::Malformed("n is not 32 hex digits"));
        }
        let nonce_value = u128::from_str_radix(nonce, 16)
            .map_err(|_| AuthError::Malformed("n is not 32 hex digits"))?;
        let tag =
            decode_hex::<MAC_BYTES>(tag).ok_or(AuthError::Malformed("s is not 64 hex digits"))?;
        self.mac_of(method, target, time_ms, nonce)
            .verify_slice(&tag)
            .map_err(|_| AuthError::BadSignature)?;
        Ok((time_ms, nonce_value))
    }
}

fn is_lower_hex(byte: u8) -> bool {
    byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)
}

fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N || !bytes.iter().copied().all(is_lower_hex) {
        return None;
    }
    let mut out = [0u8; N];
    for (k, pair) in bytes.chunks_exact(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[k] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// The nonces seen within the skew window, by the second of their
/// credential's time: a nonce is remembered until its credential would be
/// refused as too old anyway. Bounded by `REPLAY_NONCES_MAX`.
#[derive(Default)]
pub struct ReplayGuard {
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    by_second: BTreeMap<u64, HashSet<u128>>,
    count: usize,
}

impl ReplayGuard {
    /// Admits the credential `(time_ms, nonce)` once; a second time it is
    /// `Replayed`.
    pub fn admit(&self, (time_ms, nonce): (u64, u128), now_ms: u64) -> Result<(), AuthError> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Seconds whose credentials are all past the window now.
        let oldest_kept = now_ms.saturating_sub(CLUSTER_CLOCK_SKEW_MS) / 1000;
        while let Some(entry) = seen.by_second.first_entry() {
            if *entry.key() >= oldest_kept {
                break;
            }
            let forgotten = entry.remove().len();
            seen.count -= forgotten;
        }
        let second = time_ms / 1000;
        if seen
            .by_second
            .get(&second)
            .is_some_and(|nonces| nonces.contains(&nonce))
        {
            return Err(AuthError::Replayed);
        }
        if seen.count >= REPLAY_NONCES_MAX {
            return Err(AuthError::TooMany);
        }
        seen.by_second.entry(second).or_default().insert(nonce);
        seen.count += 1;
        Ok(())
    }
}

/// What a storage server checks every request with (but `/health` and
/// `/metrics`): the key and the nonces it has admitted.
pub struct Verifier {
    key: ClusterKey,
    replays: ReplayGuard,
}

impl Verifier {
    pub fn new(key: ClusterKey) -> Verifier {
        Verifier {
            key,
            replays: ReplayGuard::default(),
        }
    }

    /// Admits a request with this `Authorization` header once.
    pub fn check(&self, header: Option<&str>, method: &str, target: &str) -> Result<(), AuthError> {
        let now_ms = unix_ms();
        let credential = self.key.verify(header, method, target, now_ms)?;
        self.replays.admit(credential, now_ms)
    }
}

/// Signs outgoing calls: each gets the time and a nonce unique to this
/// process (a random prefix and a counter).
pub struct Signer {
    key: ClusterKey,
    nonce_prefix: u64,
    counter: AtomicU64,
}

impl Signer {
    pub fn new(key: ClusterKey) -> Signer {
        Signer {
            key,
            nonce_prefix: random_u64(),
            counter: AtomicU64::new(0),
        }
    }

    /// The `Authorization` value for `method target`, now.
    pub fn authorization(&self, method: &str, target: &str) -> String {
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let nonce = (u128::from(self.nonce_prefix) << 64) | u128::from(count);
        self.key.authorization(method, target, unix_ms(), nonce)
    }
}

/// The signer as a ureq middleware: every request of an agent built with
/// it carries fresh credentials.
impl ureq::middleware::Middleware for Signer {
    fn handle(
        &self,
        mut request: ureq::http::Request<ureq::SendBody>,
        next: ureq::middleware::MiddlewareNext,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let target = request
            .uri()
            .path_and_query()
            .map_or("/", |target| target.as_str())
            .to_owned();
        let value = self.authorization(request.method().as_str(), &target);
        let value = ureq::http::HeaderValue::from_str(&value)
            .map_err(|_| ureq::Error::BadUri("credentials are not a header value".to_owned()))?;
        request
            .headers_mut()
            .insert(ureq::http::header::AUTHORIZATION, value);
        next.handle(request)
    }
}

/// Milliseconds since the Unix epoch (0 for a clock set before it).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// 64 random bits from the kernel, or, if it cannot give them, from the
/// clock and the process id (enough for a nonce prefix: uniqueness, not
/// secrecy, is what it needs).
fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    let from_kernel = fs::File::open("/dev/urandom")
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut bytes));
    match from_kernel {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos() as u64);
            nanos ^ (u64::from(std::process::id()) << 32)
        }
    }
}

#[cfg(test)]
mod tests;
