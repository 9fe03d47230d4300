//! The whole state at once: read from etcd at start-up (or when the
//! history a server needed was compacted away), and written into an empty
//! prefix by `--migrate-to-etcd`.

use super::client::{EtcdClient, EtcdError, Op, RANGE_PAGE_KEYS};
use super::keys::{self, Keys};
use super::{Position, TXN_OPS_MAX};
use crate::metadata::Metadata;

/// Writes every entity of `state` under `keys`, in transactions of at
/// most `TXN_OPS_MAX` keys; refused if the prefix holds a state already.
pub fn migrate(
    client: &EtcdClient,
    keys: &Keys,
    prefix: &str,
    state: &Metadata,
) -> Result<u64, String> {
    let (existing, _, _) = client
        .range(&keys.state_start(), Some(&keys.state_end()), 0, 1)
        .map_err(|err| err.to_string())?;
    if !existing.is_empty() {
        return Err(format!(
            "{prefix} in etcd holds a namespace already: --migrate-to-etcd copies only into an empty prefix"
        ));
    }
    let mut written = 0;
    let entities = state.entities();
    for batch in entities.chunks(TXN_OPS_MAX - 1) {
        let ops: Vec<Op> = batch
            .iter()
            .map(|entity| Op::Put {
                key: keys.entity(entity),
                value: keys::encode(&state.entity(entity).expect("a listed entity")),
                lease: None,
            })
            .collect();
        client.txn(&[], &ops, &[]).map_err(|err| err.to_string())?;
        written += batch.len() as u64;
    }
    let seq = Op::Put {
        key: keys.seq(),
        value: b"migrated".to_vec(),
        lease: None,
    };
    client
        .txn(&[], &[seq], &[])
        .map_err(|err| err.to_string())?;
    Ok(written)
}

/// Reads every entity under the prefix, a page at a time, all at one
/// revision.
pub fn load(client: &EtcdClient, keys: &Keys) -> Result<(Metadata, Position), EtcdError> {
    let end = keys.state_end();
    let seq = keys.seq();
    let mut start = keys.state_start();
    let mut revision = 0;
    let mut seq_revision = 0;
    let mut group = Vec::new();
    loop {
        let (kvs, more, read_at) = client.range(&start, Some(&end), revision, RANGE_PAGE_KEYS)?;
        if revision == 0 {
            revision = read_at;
        }
        for kv in &kvs {
            if kv.key == seq {
                seq_revision = kv.mod_revision;
                continue;
            }
            let entity = keys
                .entity_of(&kv.key)
                .map_err(EtcdError::Refused)?
                .ok_or_else(|| EtcdError::Refused("a second sequence key".to_owned()))?;
            let value = keys::decode(&kv.value).map_err(EtcdError::Refused)?;
            group.push((entity, Some(value)));
        }
        match (more, kvs.last()) {
            (true, Some(last)) => {
                start = last.key.clone();
                start.push(0);
            }
            _ => break,
        }
    }
    let mut state = Metadata::default();
    state
        .replace(group)
        .map_err(|err| EtcdError::Refused(format!("the state in etcd is damaged: {err}")))?;
    state.check_invariants().map_err(|err| {
        EtcdError::Refused(format!("the state in etcd breaks an invariant: {err}"))
    })?;
    Ok((
        state,
        Position {
            seq_revision,
            revision,
        },
    ))
}
