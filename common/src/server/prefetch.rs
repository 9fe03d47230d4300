//! A streamed answer whose next piece is produced while the current one is
//! sent: a large read fetches batch k+1 from storage while batch k crosses
//! the client's socket, instead of one after the other. The producer is a
//! scoped thread of the request's worker, so the answer's end (sent, or the
//! client gone) ends it: at most one piece more is produced. Two buffers
//! only, reused: the one being sent and the one being filled.

use std::io::{self, Read};
use std::thread;

use crossbeam_channel::{Receiver, Sender};

/// What a prefetched answer is made of, piece by piece.
pub trait Pieces: Send {
    /// Fills `out` (empty, its capacity kept from earlier pieces) with the
    /// next piece; `Ok(false)` when the answer is complete. An error cuts
    /// the answer short (the client sees a body shorter than announced).
    fn next_piece(&mut self, out: &mut Vec<u8>) -> io::Result<bool>;
}

/// Runs `send` with a reader of `pieces` while a scoped thread produces
/// the next piece ahead of it; returns once `send` has returned and the
/// producer has stopped.
pub fn with_prefetch<R>(
    mut pieces: Box<dyn Pieces + '_>,
    send: impl FnOnce(&mut (dyn Read + Send)) -> R,
) -> R {
    // Capacity 1 and two buffers in all: the producer runs one piece ahead.
    let (full_tx, full_rx) = crossbeam_channel::bounded::<io::Result<Vec<u8>>>(1);
    let (empty_tx, empty_rx) = crossbeam_channel::bounded::<Vec<u8>>(2);
    thread::scope(|scope| {
        scope.spawn(move || produce(pieces.as_mut(), &full_tx, &empty_rx));
        let mut reader = PrefetchReader {
            full: full_rx,
            empty: empty_tx,
            current: Vec::new(),
            sent: 0,
            ended: false,
        };
        // The second buffer; the first is `current`, handed over at the
        // first read.
        reader
            .empty
            .send(Vec::new())
            .expect("the producer holds the receiver");
        let outcome = send(&mut reader);
        // Dropping the reader closes both channels: a producer waiting on
        // either returns, one mid-piece returns after it.
        drop(reader);
        outcome
    })
}

fn produce(pieces: &mut dyn Pieces, full: &Sender<io::Result<Vec<u8>>>, empty: &Receiver<Vec<u8>>) {
    while let Ok(mut buffer) = empty.recv() {
        buffer.clear();
        let outcome = match pieces.next_piece(&mut buffer) {
            Ok(true) => Ok(buffer),
            Ok(false) => return,
            Err(err) => Err(err),
        };
        let failed = outcome.is_err();
        if full.send(outcome).is_err() || failed {
            return;
        }
    }
}

struct PrefetchReader {
    full: Receiver<io::Result<Vec<u8>>>,
    empty: Sender<Vec<u8>>,
    current: Vec<u8>,
    sent: usize,
    ended: bool,
}

impl Read for PrefetchReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.sent == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            // The piece just sent goes back to be filled again.
            let done = std::mem::take(&mut self.current);
            let _ = self.empty.send(done);
            match self.full.recv() {
                Ok(Ok(piece)) => {
                    self.current = piece;
                    self.sent = 0;
                }
                Ok(Err(err)) => {
                    self.ended = true;
                    return Err(err);
                }
                // The producer returned: every piece was sent.
                Err(_) => {
                    self.ended = true;
                    return Ok(0);
                }
            }
        }
        let available = &self.current[self.sent..];
        let copied = available.len().min(out.len());
        out[..copied].copy_from_slice(&available[..copied]);
        self.sent += copied;
        Ok(copied)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::{Pieces, with_prefetch};

    struct Counting {
        pieces: usize,
        produced: Arc<AtomicUsize>,
        fail_at: Option<usize>,
    }

    impl Pieces for Counting {
        fn next_piece(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
            let index = self.produced.fetch_add(1, Ordering::SeqCst);
            if Some(index) == self.fail_at {
                return Err(io::Error::other("replica gone"));
            }
            if index >= self.pieces {
                return Ok(false);
            }
            out.extend((0..1000).map(|at| (index * 7 + at) as u8));
            Ok(true)
        }
    }

    /// A source of `pieces` pieces of 1000 bytes that fails at piece
    /// `fail_at`, and the count of pieces asked of it.
    fn counting(pieces: usize, fail_at: Option<usize>) -> (Box<Counting>, Arc<AtomicUsize>) {
        let produced = Arc::new(AtomicUsize::new(0));
        let source = Counting {
            pieces,
            produced: Arc::clone(&produced),
            fail_at,
        };
        (Box::new(source), produced)
    }

    fn expected(pieces: usize) -> Vec<u8> {
        (0..pieces)
            .flat_map(|index| (0..1000).map(move |at| (index * 7 + at) as u8))
            .collect()
    }

    #[test]
    fn every_piece_arrives_in_order() {
        let (pieces, _) = counting(50, None);
        let mut body = Vec::new();
        with_prefetch(pieces, |reader| reader.read_to_end(&mut body)).unwrap();
        assert!(body == expected(50));
    }

    #[test]
    fn a_failed_piece_cuts_the_answer_after_what_came_before() {
        let (pieces, _) = counting(50, Some(3));
        let mut body = Vec::new();
        let outcome = with_prefetch(pieces, |reader| reader.read_to_end(&mut body));
        assert!(outcome.is_err());
        assert!(body == expected(3));
    }

    #[test]
    fn a_reader_that_stops_early_stops_the_producer_within_a_piece() {
        let (pieces, produced) = counting(1000, None);
        let mut first = [0u8; 1500];
        with_prefetch(pieces, |reader| reader.read_exact(&mut first)).unwrap();
        // Two pieces read, at most one being filled and one waiting.
        assert!(produced.load(Ordering::SeqCst) <= 4, "{produced:?}");
    }
}
