//! Where the state lives in etcd, under the cluster's prefix `P`
//! (`ETCD_PREFIX`): one key per entity of the metadata, its value the
//! journal's framed record of the change that rebuilds it (CRC-checked).
//!
//! ```text
//! P m/f/NAME                 a file: its version (Commit)
//! P m/d/PATH/                an explicit directory (MakeDir)
//! P m/s/ID                   a storage server, ID 5 digits (AddServer)
//! P m/r/ID                   a drained server (Drain)
//! P m/b                      the blob reservation (ReserveBlobs)
//! P m/u/ID                   an S3 multipart upload, ID 16 hex digits (BeginUpload)
//! P m/p/ID/NUMBER            one of its parts, NUMBER 5 digits (AddPart)
//! P m/~seq                   bumped by every change: the order of changes
//! P leader                   the upkeep leader's id, under its lease
//! P writers/ID               the lowest blob id naming server ID may be writing, under its lease
//! ```
//!
//! Everything under `P m/` is the state: watching that range sees every
//! change, and each change is one transaction that ends by writing
//! `P m/~seq`. Files sort by name, so a listing is one range read.

use common::name::FileName;

use crate::journal::record::{self, Record};
use crate::metadata::Entity;
use crate::metadata::change::Change;

pub struct Keys {
    prefix: Vec<u8>,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.as_bytes().to_vec(),
        }
    }

    /// The first key of the state's range.
    pub fn state_start(&self) -> Vec<u8> {
        self.key("m/")
    }

    /// The first key past the state's range.
    pub fn state_end(&self) -> Vec<u8> {
        self.key("m0")
    }

    pub fn seq(&self) -> Vec<u8> {
        self.key("m/~seq")
    }

    pub fn leader(&self) -> Vec<u8> {
        self.key("leader")
    }

    pub fn writer(&self, writer: &str) -> Vec<u8> {
        self.key(&format!("writers/{writer}"))
    }

    /// The range of every naming server's `writer` key.
    pub fn writers(&self) -> (Vec<u8>, Vec<u8>) {
        (self.key("writers/"), self.key("writers0"))
    }

    pub fn entity(&self, entity: &Entity) -> Vec<u8> {
        self.key(&match entity {
            Entity::Server(id) => format!("m/s/{id:05}"),
            Entity::Drain(id) => format!("m/r/{id:05}"),
            Entity::Reservation => "m/b".to_owned(),
            Entity::Dir(path) => format!("m/d/{path}"),
            Entity::File(name) => format!("m/f/{name}"),
            Entity::Upload(id) => format!("m/u/{id:016x}"),
            Entity::Part { upload, number } => format!("m/p/{upload:016x}/{number:05}"),
        })
    }

    /// The range of every part of upload `id`, deleted in one operation
    /// with the upload.
    pub fn parts_of(&self, id: u64) -> (Vec<u8>, Vec<u8>) {
        (
            self.key(&format!("m/p/{id:016x}/")),
            self.key(&format!("m/p/{id:016x}0")),
        )
    }

    /// The entity a key of the state's range holds; `None` for the
    /// sequence key. An unknown key is a damaged store or a newer release.
    pub fn entity_of(&self, key: &[u8]) -> Result<Option<Entity>, String> {
        let shown = || String::from_utf8_lossy(key).into_owned();
        let rest = key
            .strip_prefix(self.prefix.as_slice())
            .and_then(|rest| std::str::from_utf8(rest).ok())
            .and_then(|rest| rest.strip_prefix("m/"))
            .ok_or_else(|| format!("{} is not a key of the state", shown()))?;
        if rest == "~seq" {
            return Ok(None);
        }
        let (kind, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let number = |text: &str, radix: u32| u64::from_str_radix(text, radix).ok();
        let entity = match kind {
            "s" => number(tail, 10)
                .and_then(|id| u16::try_from(id).ok())
                .map(Entity::Server),
            "r" => number(tail, 10)
                .and_then(|id| u16::try_from(id).ok())
                .map(Entity::Drain),
            "b" if tail.is_empty() => Some(Entity::Reservation),
            "d" if tail.ends_with('/') => Some(Entity::Dir(tail.to_owned())),
            "f" => FileName::parse(tail).ok().map(Entity::File),
            "u" => number(tail, 16).map(Entity::Upload),
            "p" => tail.split_once('/').and_then(|(upload, part)| {
                Some(Entity::Part {
                    upload: number(upload, 16)?,
                    number: u32::try_from(number(part, 10)?).ok()?,
                })
            }),
            _ => None,
        };
        match entity {
            // One entity, one key: a number written otherwise ("7" for
            // "00007") would be a second key of the same entity.
            Some(entity) if self.entity(&entity) == key => Ok(Some(entity)),
            _ => Err(format!("{} is not a key this release knows", shown())),
        }
    }

    fn key(&self, rest: &str) -> Vec<u8> {
        let mut key = self.prefix.clone();
        key.extend_from_slice(rest.as_bytes());
        key
    }
}

/// An entity's value as stored: the framed record of its change.
pub fn encode(change: &Change) -> Vec<u8> {
    record::frame(&Record::Change(change.clone()))
}

pub fn decode(value: &[u8]) -> Result<Change, String> {
    let payload = record::read_frame(&mut &value[..])
        .map_err(|err| format!("a damaged value: {err:?}"))?
        .ok_or("an empty value")?;
    match record::parse(&payload).map_err(|err| format!("a damaged value: {err:?}"))? {
        Record::Change(change) => Ok(change),
        Record::End { .. } => Err("a checkpoint's end where a change was expected".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;
    use crate::metadata::Entity;
    use common::name::FileName;

    #[test]
    fn every_entity_key_reads_back_as_its_entity() {
        let keys = Keys::new("/harbour/");
        let entities = [
            Entity::Server(7),
            Entity::Drain(65535),
            Entity::Reservation,
            Entity::Dir("a/b c/".to_owned()),
            Entity::File(FileName::parse("a/b/c.txt").expect("a name")),
            Entity::Upload(u64::MAX),
            Entity::Part {
                upload: 12,
                number: 10_000,
            },
        ];
        for entity in entities {
            let key = keys.entity(&entity);
            assert!(key >= keys.state_start() && key < keys.state_end());
            assert_eq!(keys.entity_of(&key), Ok(Some(entity)));
        }
        assert_eq!(keys.entity_of(&keys.seq()), Ok(None));
        assert!(keys.entity_of(b"/harbour/m/x/1").is_err());
        assert!(keys.entity_of(b"/other/m/b").is_err());
        assert!(keys.entity_of(b"/harbour/m/s/7").is_err(), "not canonical");
        assert!(keys.entity_of(b"/harbour/m/u/0c").is_err(), "not canonical");
        let (start, end) = keys.parts_of(12);
        let part = keys.entity(&Entity::Part {
            upload: 12,
            number: 1,
        });
        assert!(part >= start && part < end);
    }
}
