//! The cluster credential parser (`common::cluster_auth`): any header is
//! refused or accepted without a panic, and nothing but a credential made
//! with the key is ever accepted.
#![no_main]

use common::cluster_auth::ClusterKey;
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_764_633_600_000;

fuzz_target!(|data: &[u8]| {
    let key = ClusterKey::new("the fuzzing cluster's secret").unwrap();
    let text = String::from_utf8_lossy(data);
    let (method, target) = ("PUT", "/chunks");
    if let Ok((time_ms, nonce)) = key.verify(Some(&text), method, target, NOW) {
        assert_eq!(text, key.authorization(method, target, time_ms, nonce));
    }
    // A credential made for other bytes never verifies for these.
    let made = key.authorization("GET", &text, NOW, 7);
    assert!(
        key.verify(Some(&made), "GET", &format!("{text}x"), NOW)
            .is_err()
    );
});
