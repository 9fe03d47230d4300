//! A naming server's session in etcd: one lease, kept alive by its
//! maintenance tick, under which it publishes the lowest blob id it may be
//! writing (`P writers/ID`) and, if it is the upkeep leader, holds
//! `P leader`. When the server dies or freezes, the lease expires after
//! `LEADER_LEASE`, both keys go, and another server takes the lead.
//!
//! A server counts itself the leader only until `sent + TTL` of the last
//! renewal it sent (etcd measures the lease from when the renewal arrived,
//! later): a frozen leader that wakes up past its lease finds itself no
//! longer leading before it does anything, and must win the key again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::client::{Compare, EtcdClient, EtcdError, Op};
use super::keys::Keys;

/// How long a lease lives without renewal: how long a dead leader's
/// upkeep waits for another to take over.
pub const LEADER_LEASE: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Session {
    lease: Mutex<Option<Lease>>,
}

struct Lease {
    id: i64,
    /// Until when etcd surely still holds it.
    valid_until: Instant,
    leader: bool,
    /// The floor last published under it.
    published_floor: Option<u64>,
}

impl Session {
    /// Renews (or takes) the lease, publishes `floor` (the lowest blob id
    /// this server may be writing) and tries to lead if no one does.
    pub fn tick(
        &self,
        client: &EtcdClient,
        keys: &Keys,
        writer: &str,
        floor: u64,
    ) -> Result<(), EtcdError> {
        let mut held = self.lease.lock().unwrap_or_else(|p| p.into_inner());
        let sent = Instant::now();
        let renewed = match &*held {
            Some(lease) if sent < lease.valid_until => client.lease_keep_alive(lease.id)?,
            _ => 0,
        };
        if renewed > 0 {
            let lease = held.as_mut().expect("renewed a lease");
            lease.valid_until = sent + Duration::from_secs(renewed.unsigned_abs());
        } else {
            if held.as_ref().is_some_and(|lease| lease.leader) {
                log::warn!("etcd: the upkeep lease expired; this server no longer leads upkeep");
            }
            let ttl = LEADER_LEASE.as_secs();
            let id = client.lease_grant(ttl)?;
            *held = Some(Lease {
                id,
                valid_until: sent + LEADER_LEASE,
                leader: false,
                published_floor: None,
            });
        }
        let lease = held.as_mut().expect("a lease is held");
        if lease.published_floor != Some(floor) {
            let put = Op::Put {
                key: keys.writer(writer),
                value: floor.to_string().into_bytes(),
                lease: Some(lease.id),
            };
            client.txn(&[], &[put], &[])?;
            lease.published_floor = Some(floor);
        }
        if !lease.leader {
            let take = Op::Put {
                key: keys.leader(),
                value: writer.as_bytes().to_vec(),
                lease: Some(lease.id),
            };
            let free = Compare::ModRevision {
                key: keys.leader(),
                revision: 0,
            };
            let outcome = client.txn(&[free], &[take], &[])?;
            if outcome.succeeded {
                lease.leader = true;
                log::info!(
                    "etcd: this server leads upkeep (reconciliation, re-replication, expiry)"
                );
            }
        }
        Ok(())
    }

    /// Whether this server leads upkeep now: it won the leader key under a
    /// lease that has surely not expired.
    pub fn leads(&self) -> bool {
        let held = self.lease.lock().unwrap_or_else(|p| p.into_inner());
        held.as_ref()
            .is_some_and(|lease| lease.leader && Instant::now() < lease.valid_until)
    }

    /// Gives the lease back at a clean shutdown: another server takes the
    /// lead at once instead of after `LEADER_LEASE`.
    pub fn end(&self, client: &EtcdClient) {
        let mut held = self.lease.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lease) = held.take()
            && let Err(err) = client.lease_revoke(lease.id)
        {
            log::warn!("etcd: the session lease was not revoked ({err}); it expires by itself");
        }
    }
}

/// The lowest blob id another naming server may be writing: the least of
/// the floors they publish (`u64::MAX` if none); 0 if etcd cannot say, so
/// that nothing is taken for an orphan.
pub fn floor_of_others(client: &EtcdClient, keys: &Keys, writer: &str) -> u64 {
    let (start, end) = keys.writers();
    let own = keys.writer(writer);
    match client.range(&start, Some(&end), 0, 0) {
        Ok((kvs, _, _)) => kvs
            .iter()
            .filter(|kv| kv.key != own)
            .map(|kv| {
                std::str::from_utf8(&kv.value)
                    .ok()
                    .and_then(|text| text.parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .min()
            .unwrap_or(u64::MAX),
        Err(err) => {
            log::warn!("etcd: cannot read what other naming servers are writing: {err}");
            0
        }
    }
}
