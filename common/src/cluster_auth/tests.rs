#![allow(clippy::unwrap_used)]

use super::*;

const NOW: u64 = 1_764_633_600_000;

fn key() -> ClusterKey {
    ClusterKey::new("correct horse battery staple\n").unwrap()
}

fn signed(method: &str, target: &str, time_ms: u64, nonce: u128) -> String {
    key().authorization(method, target, time_ms, nonce)
}

#[test]
fn a_signed_request_verifies_and_says_its_time_and_nonce() {
    let header = signed("PUT", "/chunks", NOW, 7);
    assert!(
        header.starts_with("Harbour-Cluster t=1764633600000,n=00000000000000000000000000000007,s=")
    );
    assert_eq!(
        key().verify(Some(&header), "PUT", "/chunks", NOW + 10),
        Ok((NOW, 7))
    );
}

#[test]
fn a_short_secret_is_refused_and_the_key_never_shows_it() {
    assert!(ClusterKey::new(" too short \n").is_err());
    assert_eq!(format!("{:?}", key()), "ClusterKey(..)");
}

#[test]
fn any_change_to_method_target_time_nonce_or_key_breaks_the_signature() {
    let header = signed("DELETE", "/blobs/00000000000000aa?first=1&count=2", NOW, 9);
    let target = "/blobs/00000000000000aa?first=1&count=2";
    assert!(key().verify(Some(&header), "DELETE", target, NOW).is_ok());
    for (method, target) in [
        ("GET", target),
        ("DELETE", "/blobs/00000000000000ab?first=1&count=2"),
        ("DELETE", "/blobs/00000000000000aa?first=1&count=3"),
        ("DELETE", "/blobs/00000000000000aa"),
    ] {
        assert_eq!(
            key().verify(Some(&header), method, target, NOW),
            Err(AuthError::BadSignature),
            "{method} {target}"
        );
    }
    let other_time = header.replace("t=1764633600000", "t=1764633600001");
    let other_nonce = header.replace(",n=000", ",n=100");
    for forged in [other_time, other_nonce] {
        assert_eq!(
            key().verify(Some(&forged), "DELETE", target, NOW),
            Err(AuthError::BadSignature)
        );
    }
    let other_key = ClusterKey::new("another secret of enough bytes").unwrap();
    assert_eq!(
        other_key.verify(Some(&header), "DELETE", target, NOW),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn a_credential_outside_the_clock_window_is_refused_either_way() {
    let skew = CLUSTER_CLOCK_SKEW_MS;
    let early = signed("GET", "/status", NOW - skew - 1, 1);
    let late = signed("GET", "/status", NOW + skew + 1, 1);
    let edge = signed("GET", "/status", NOW - skew, 1);
    assert!(matches!(
        key().verify(Some(&early), "GET", "/status", NOW),
        Err(AuthError::Skewed { by_ms }) if by_ms < 0
    ));
    assert!(matches!(
        key().verify(Some(&late), "GET", "/status", NOW),
        Err(AuthError::Skewed { by_ms }) if by_ms > 0
    ));
    assert!(key().verify(Some(&edge), "GET", "/status", NOW).is_ok());
}

#[test]
fn malformed_or_missing_credentials_are_refused_without_a_panic() {
    let good = signed("GET", "/status", NOW, 3);
    let cases = [
        String::new(),
        "Bearer abc".to_owned(),
        "Harbour-Cluster".to_owned(),
        "Harbour-Cluster ".to_owned(),
        "Harbour-Cluster t=1,n=2".to_owned(),
        good.replace("t=", "t=+"),
        good.replace("t=", "t=99999999999999999999999"),
        good.replace(",n=", ",n=g"),
        good.replace(",n=0", ",n="),
        good.replace(",s=", ",s=0"),
        good.replace(",s=", ",s=Z"),
        format!("{good},t=1"),
        good.replace(",s=", ",s=é"),
        good.to_uppercase(),
    ];
    for header in &cases {
        let outcome = key().verify(Some(header), "GET", "/status", NOW);
        assert!(
            matches!(
                outcome,
                Err(AuthError::Missing | AuthError::Malformed(_) | AuthError::Skewed { .. })
            ),
            "{header:?}: {outcome:?}"
        );
    }
    assert_eq!(
        key().verify(None, "GET", "/status", NOW),
        Err(AuthError::Missing)
    );
}

#[test]
fn a_nonce_is_admitted_once_and_forgotten_only_after_the_window() {
    let guard = ReplayGuard::default();
    assert_eq!(guard.admit((NOW, 1), NOW), Ok(()));
    assert_eq!(guard.admit((NOW, 2), NOW), Ok(()));
    assert_eq!(guard.admit((NOW, 1), NOW + 1), Err(AuthError::Replayed));
    // Still remembered at the window's edge, when the credential would
    // still be accepted by its time.
    let edge = NOW + CLUSTER_CLOCK_SKEW_MS;
    assert_eq!(guard.admit((NOW, 1), edge), Err(AuthError::Replayed));
    // Later, its time alone refuses it; the guard has let it go.
    let later = NOW + CLUSTER_CLOCK_SKEW_MS + 2000;
    assert_eq!(guard.admit((later, 5), later), Ok(()));
    assert_eq!(guard.seen.lock().unwrap().count, 1);
}

#[test]
fn the_signer_makes_a_fresh_nonce_for_every_call() {
    let signer = Signer::new(key());
    let first = signer.authorization("GET", "/status");
    let second = signer.authorization("GET", "/status");
    assert_ne!(first, second);
    let verifier = Verifier::new(key());
    assert_eq!(verifier.check(Some(&first), "GET", "/status"), Ok(()));
    assert_eq!(verifier.check(Some(&second), "GET", "/status"), Ok(()));
    assert_eq!(
        verifier.check(Some(&first), "GET", "/status"),
        Err(AuthError::Replayed)
    );
}

#[test]
fn a_secret_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::testing::fresh_dir("cluster-auth");
    let path = dir.join("secret");
    fs::write(&path, "a secret long enough to use\n").unwrap();
    let path_text = path.to_str().unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let refused = crate::config::read_secret_file(path_text).unwrap_err();
    assert!(refused.contains("chmod 600"), "{refused}");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let text = crate::config::read_secret_file(path_text).unwrap();
    assert_eq!(text, "a secret long enough to use");
    fs::remove_dir_all(dir).unwrap();
}

/// A valid credential mutated at random (fixed seed) never verifies, and
/// never panics the parser.
#[test]
fn a_mutated_credential_never_verifies() {
    let mut rng = crate::rng::Rng::new(0xc0ff_ee11);
    let header = signed("PUT", "/chunks", NOW, 42);
    let mut accepted = 0;
    for _ in 0..5000 {
        let mut bytes = header.clone().into_bytes();
        let at = rng.below(bytes.len() as u64) as usize;
        match rng.below(3) {
            0 => bytes[at] = rng.below(128) as u8,
            1 => bytes.truncate(at),
            _ => bytes.insert(at, rng.below(128) as u8),
        }
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        if key().verify(Some(&text), "PUT", "/chunks", NOW).is_ok() {
            // Only the untouched credential (a byte replaced by itself).
            assert_eq!(text, header);
            accepted += 1;
        }
    }
    assert!(accepted < 5000);
}
