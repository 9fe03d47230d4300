//! What the etcd store reads back (`naming::meta_store::etcd::keys`): any
//! bytes as a key of the state and as a value, and any sequence of keys and
//! values as a group put in an empty state (`Metadata::replace`), without a
//! panic; a key that reads as an entity is that entity's key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use naming::meta_store::etcd::keys::{self, Keys};
use naming::metadata::Metadata;

fuzz_target!(|data: &[u8]| {
    let keys = Keys::new("/harbour/");
    if let Ok(Some(entity)) = keys.entity_of(data) {
        assert_eq!(keys.entity(&entity), data);
    }
    let _ = keys::decode(data);
    // A group: `len u16 | key | len u16 | value` pairs, each key under the
    // prefix.
    let mut group = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
        let Some((field, tail)) = rest.split_at_checked(len.min(rest.len())) else {
            break;
        };
        rest = tail;
        let mut key = b"/harbour/m/".to_vec();
        key.extend_from_slice(field);
        let Ok(Some(entity)) = keys.entity_of(&key) else {
            continue;
        };
        if rest.len() < 2 {
            break;
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
        let (value, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        group.push((entity, keys::decode(value).ok()));
    }
    let mut state = Metadata::default();
    if state.replace(group).is_ok() {
        let _ = state.check_invariants();
    }
});
