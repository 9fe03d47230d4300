//! The configuration parsers (`common::config`) and the API tokens file
//! (`naming::tokens`): any text is a value or a refusal, and a refusal of
//! a tokens file never repeats a token.
#![no_main]

use common::config::{parse_base_url, parse_millis, parse_positive, parse_workers};
use libfuzzer_sys::fuzz_target;
use naming::tokens::TokenSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = parse_base_url(text) {
        assert_eq!(parse_base_url(&url).unwrap(), url);
    }
    let _ = parse_millis(text);
    let _ = parse_positive(text, "bytes");
    let _ = parse_workers(text);
    if let Err(err) = TokenSet::parse(text) {
        for line in text.lines() {
            if let Some(token) = line.split_whitespace().next()
                && token.len() >= 16
                && !line.trim_start().starts_with('#')
            {
                assert!(!err.contains(token), "{err}");
            }
        }
    }
});
