//! File names and percent-encoding (`common::name`, `common::percent`):
//! any text is a name or a refusal; what is a name survives encoding.
#![no_main]

use common::name::FileName;
use common::percent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(decoded) = percent::decode(text) {
        assert_eq!(
            percent::decode(&percent::encode(&decoded, true)).unwrap(),
            decoded
        );
    }
    if let Ok(name) = FileName::parse(text) {
        let encoded = percent::encode(&name.to_string(), true);
        let back = percent::decode(&encoded).unwrap();
        assert_eq!(
            FileName::parse(&back).unwrap().to_string(),
            name.to_string()
        );
    }
});
