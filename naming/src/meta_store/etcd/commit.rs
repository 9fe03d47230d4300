//! How the etcd store commits changes: applied to the cache, written in
//! one transaction compared at the cache's revision (several changes a
//! transaction when they queue up, `batch.rs`), put back and tried again
//! on a fresher state when another naming server's change came first.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::batch::Slot;
use super::client::{Compare, Op, TxnOutcome};
use super::{CHANGE_ATTEMPTS_MAX, EtcdStore, Position, TXN_OPS_MAX, keys, unavailable};
use crate::meta_store::expect_valid;
use crate::metadata::change::{Applied, Change, Refusal};
use crate::metadata::{Entity, Metadata};

impl EtcdStore {
    /// Applies the change `make` builds from the state, retried on a
    /// fresher state while other naming servers' changes land first; the
    /// transaction it goes in may carry other changes too (`batch.rs`).
    pub(super) fn apply_with(
        &self,
        make: impl Fn(&Metadata) -> Change + Send + Sync + 'static,
    ) -> Result<(Change, Applied), Refusal> {
        self.batcher
            .submit(Slot::new(Box::new(make)), |batch| self.commit_batch(batch))
    }

    /// Commits every change of `batch`, in as few transactions as fit
    /// them, each retried while other naming servers' changes land first;
    /// settles every slot.
    fn commit_batch(&self, batch: &[Arc<Slot>]) {
        let mut pending: Vec<&Arc<Slot>> = batch.iter().collect();
        let mut attempts = 0;
        while !pending.is_empty() {
            if attempts == CHANGE_ATTEMPTS_MAX {
                for slot in pending {
                    slot.resolve(Err(Refusal::Unavailable(format!(
                        "{CHANGE_ATTEMPTS_MAX} tries of a change each lost to another naming server's"
                    ))));
                }
                return;
            }
            attempts += 1;
            let mut state = self.lock_state();
            let round = self.prepare(&mut state, &pending);
            pending = round.deferred;
            if round.accepted.is_empty() {
                continue;
            }
            match self.write(&mut state, round.before) {
                Ok(()) => {
                    for (slot, change, applied) in round.accepted {
                        slot.resolve(Ok((change, applied)));
                    }
                    attempts = 0;
                }
                Err(None) => pending.extend(round.accepted.into_iter().map(|(slot, ..)| slot)),
                Err(Some(refusal)) => {
                    for slot in pending
                        .drain(..)
                        .chain(round.accepted.into_iter().map(|(slot, ..)| slot))
                    {
                        slot.resolve(Err(refusal.clone()));
                    }
                }
            }
        }
    }

    /// Applies to the cache as many of `pending`'s changes as one
    /// transaction holds; settles the refused and the unchanged.
    fn prepare<'s>(&self, state: &mut Metadata, pending: &[&'s Arc<Slot>]) -> Round<'s> {
        let mut round = Round {
            // The sequence key.
            ops_bound: 1,
            ..Round::default()
        };
        for &slot in pending {
            if !round.deferred.is_empty() {
                round.deferred.push(slot);
                continue;
            }
            let change = (slot.make)(state);
            let touched = state.touched(&change);
            let before: Vec<(Entity, Option<Change>)> = touched
                .iter()
                .map(|entity| (entity.clone(), state.entity(entity)))
                .collect();
            let applied = match state.apply(&change) {
                Ok(Applied::Unchanged) => {
                    slot.resolve(Ok((change, Applied::Unchanged)));
                    continue;
                }
                Ok(applied) => applied,
                Err(refusal) => {
                    slot.resolve(Err(expect_valid(refusal)));
                    continue;
                }
            };
            let fresh = before
                .iter()
                .filter(|(entity, _)| !round.before.contains_key(entity));
            let grown = ops_bound(fresh) + round.ops_bound;
            if grown > TXN_OPS_MAX {
                if round.accepted.is_empty() {
                    undo(state, before);
                    slot.resolve(Err(Refusal::TooLarge(format!(
                        "the change touches {} keys; etcd takes at most {TXN_OPS_MAX} in one transaction",
                        touched.len()
                    ))));
                    continue;
                }
                // The next transaction takes it.
                undo(state, before);
                round.deferred.push(slot);
                continue;
            }
            round.ops_bound = grown;
            for (entity, old) in before {
                round.before.entry(entity).or_insert(old);
            }
            round.accepted.push((slot, change, applied));
        }
        round
    }

    /// Writes what the changes applied to the cache did to the entities of
    /// `before` (their values before the first) in one transaction. If
    /// another naming server's change came first: puts them back, catches
    /// up, `Err(None)` (try again); if etcd cannot be reached: puts them
    /// back, `Err(Some(_))`.
    fn write(
        &self,
        state: &mut Metadata,
        before: BTreeMap<Entity, Option<Change>>,
    ) -> Result<(), Option<Refusal>> {
        // An upload's parts are deleted with it, in one range deletion
        // (etcd refuses a transaction that names a key twice).
        let removed_uploads: Vec<u64> = before
            .keys()
            .filter_map(|entity| match entity {
                Entity::Upload(id) if state.upload(*id).is_none() => Some(*id),
                _ => None,
            })
            .collect();
        let mut ops = Vec::with_capacity(before.len() + 1);
        for (entity, old) in &before {
            let new = state.entity(entity);
            let deleted_with_upload = matches!(
                (entity, &new),
                (Entity::Part { upload, .. }, None) if removed_uploads.contains(upload)
            );
            if new == *old || deleted_with_upload {
                continue;
            }
            ops.extend(self.ops_for(entity, new.as_ref()));
        }
        let token = format!(
            "{}:{}",
            self.writer,
            self.writes.fetch_add(1, Ordering::Relaxed)
        );
        ops.push(Op::Put {
            key: self.keys.seq(),
            value: token.clone().into_bytes(),
            lease: None,
        });
        assert!(
            ops.len() <= TXN_OPS_MAX,
            "a batch is cut to fit one transaction"
        );
        let compare = Compare::ModRevision {
            key: self.keys.seq(),
            revision: self.position().seq_revision,
        };
        let started = Instant::now();
        let outcome = self.client.txn(
            &[compare],
            &ops,
            &[Op::Get {
                key: self.keys.seq(),
            }],
        );
        self.txn_latency.observe(started.elapsed());
        match outcome {
            Ok(TxnOutcome {
                succeeded: true,
                revision,
                ..
            }) => {
                self.set_position(Position {
                    seq_revision: revision,
                    revision,
                });
                Ok(())
            }
            Ok(TxnOutcome { reads, .. }) => {
                undo(state, before.into_iter().collect());
                let latest = reads
                    .first()
                    .and_then(|kvs| kvs.first())
                    .map_or(0, |kv| kv.mod_revision);
                // An earlier send of this very transaction whose answer was
                // lost (a member that timed out) may be what came first.
                match self.catch_up(state, latest, &token) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(None),
                    Err(err) => Err(Some(unavailable(err))),
                }
            }
            Err(err) => {
                undo(state, before.into_iter().collect());
                Err(Some(unavailable(err)))
            }
        }
    }

    /// The operations that make `entity`'s key hold `value`.
    fn ops_for(&self, entity: &Entity, value: Option<&Change>) -> Vec<Op> {
        match (entity, value) {
            (_, Some(change)) => vec![Op::Put {
                key: self.keys.entity(entity),
                value: keys::encode(change),
                lease: None,
            }],
            // An upload's parts go with it, in one range deletion.
            (Entity::Upload(id), None) => {
                let (start, end) = self.keys.parts_of(*id);
                vec![
                    Op::Delete {
                        key: self.keys.entity(entity),
                        range_end: None,
                    },
                    Op::Delete {
                        key: start,
                        range_end: Some(end),
                    },
                ]
            }
            (_, None) => vec![Op::Delete {
                key: self.keys.entity(entity),
                range_end: None,
            }],
        }
    }
}

/// The changes of one transaction: applied to the cache, with the values
/// before the first of every entity they touched; and those left for the
/// next transaction.
#[derive(Default)]
struct Round<'s> {
    accepted: Vec<(&'s Arc<Slot>, Change, Applied)>,
    before: BTreeMap<Entity, Option<Change>>,
    /// `ops_bound` of `before`'s entities, and the sequence key.
    ops_bound: usize,
    deferred: Vec<&'s Arc<Slot>>,
}

/// The most operations writing `entities` takes: one each, one more for
/// an upload (deleted, its parts go in a range).
fn ops_bound<'e>(entities: impl Iterator<Item = &'e (Entity, Option<Change>)>) -> usize {
    entities
        .map(|(entity, _)| match entity {
            Entity::Upload(_) => 2,
            _ => 1,
        })
        .sum()
}

/// Puts back the entities a change touched, as they were before it.
fn undo(state: &mut Metadata, before: Vec<(Entity, Option<Change>)>) {
    if let Err(err) = state.replace(before) {
        panic!("a change could not be undone: {err}");
    }
}
