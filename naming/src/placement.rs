//! Where a batch's replicas go: `replication` distinct live servers with
//! room for it, rotating the starting server from batch to batch so chunks
//! spread over the whole cluster. Pure: no IO, no clock, tested by tables.

use crate::metadata::version::ServerId;

/// A live server and how many bytes it can still take.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    pub id: ServerId,
    pub free_bytes: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PlacementError {
    /// Fewer live servers than the replication factor.
    NotEnoughServers { live: usize, needed: usize },
    /// Enough live servers, but fewer of them with room than needed.
    NotEnoughSpace { with_room: usize, needed: usize },
}

/// Chooses `replication` distinct servers among `live` for a batch of
/// `batch_bytes`. `rotation` picks the starting point among the servers with
/// room; callers advance it by one per batch.
pub fn choose(
    live: &[Candidate],
    replication: usize,
    batch_bytes: u64,
    rotation: usize,
) -> Result<Vec<ServerId>, PlacementError> {
    assert!(replication >= 1);
    if live.len() < replication {
        return Err(PlacementError::NotEnoughServers {
            live: live.len(),
            needed: replication,
        });
    }
    let mut with_room: Vec<ServerId> = live
        .iter()
        .filter(|candidate| candidate.free_bytes >= batch_bytes)
        .map(|candidate| candidate.id)
        .collect();
    with_room.sort_unstable();
    with_room.dedup();
    if with_room.len() < replication {
        return Err(PlacementError::NotEnoughSpace {
            with_room: with_room.len(),
            needed: replication,
        });
    }
    let start = rotation % with_room.len();
    let chosen: Vec<ServerId> = with_room
        .iter()
        .cycle()
        .skip(start)
        .take(replication)
        .copied()
        .collect();
    assert_eq!(chosen.len(), replication);
    assert!(
        chosen
            .iter()
            .enumerate()
            .all(|(idx, id)| !chosen[..idx].contains(id))
    );
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{Candidate, PlacementError, choose};

    fn live(free: &[u64]) -> Vec<Candidate> {
        free.iter()
            .enumerate()
            .map(|(id, &free_bytes)| Candidate {
                id: id as u16,
                free_bytes,
            })
            .collect()
    }

    #[test]
    fn rotates_over_every_server_without_repeating_one() {
        let servers = live(&[u64::MAX; 3]);
        let table = [
            (0, vec![0, 1]),
            (1, vec![1, 2]),
            (2, vec![2, 0]),
            (3, vec![0, 1]),
        ];
        for (rotation, expected) in table {
            assert_eq!(
                choose(&servers, 2, 1024, rotation).unwrap(),
                expected,
                "rotation {rotation}"
            );
        }
        assert_eq!(choose(&servers, 3, 1024, 1).unwrap(), vec![1, 2, 0]);
    }

    #[test]
    fn skips_servers_without_room() {
        let servers = live(&[100, u64::MAX, 5000, 4096]);
        assert_eq!(choose(&servers, 2, 4096, 0).unwrap(), vec![1, 2]);
        assert_eq!(choose(&servers, 2, 4096, 2).unwrap(), vec![3, 1]);
    }

    #[test]
    fn says_why_it_cannot_place() {
        assert_eq!(
            choose(&live(&[u64::MAX]), 2, 1, 0),
            Err(PlacementError::NotEnoughServers { live: 1, needed: 2 })
        );
        assert_eq!(
            choose(&live(&[10, u64::MAX]), 2, 11, 0),
            Err(PlacementError::NotEnoughSpace {
                with_room: 1,
                needed: 2
            })
        );
    }
}
