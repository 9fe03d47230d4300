//! Reusable large buffers, so the data path neither allocates nor zeroes a
//! batch-sized buffer per request (each fresh one cost a memset and page
//! faults), without every worker thread holding one forever: a buffer is
//! taken for one request and comes back when dropped, and at most
//! `spares_max` wait between requests. Memory is bounded by the requests
//! in progress plus the spares.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};

pub struct BufferPool {
    spares: Mutex<Vec<Vec<u8>>>,
    spares_max: usize,
}

/// A buffer taken from a pool; goes back when dropped. Its length is what
/// it holds; its capacity stays, so reusing it allocates nothing.
pub struct Pooled<'a> {
    pool: &'a BufferPool,
    buffer: Vec<u8>,
}

impl BufferPool {
    pub const fn new(spares_max: usize) -> BufferPool {
        BufferPool {
            spares: Mutex::new(Vec::new()),
            spares_max,
        }
    }

    /// An empty buffer, with the capacity of the last one given back.
    pub fn take(&self) -> Pooled<'_> {
        let mut buffer = self.lock().pop().unwrap_or_default();
        buffer.clear();
        Pooled { pool: self, buffer }
    }

    /// `take`, as a plain vector: for a buffer that changes hands (through
    /// an encoder, or to another thread) before it comes back by `give`.
    pub fn take_owned(&self) -> Vec<u8> {
        let mut buffer = self.lock().pop().unwrap_or_default();
        buffer.clear();
        buffer
    }

    /// Keeps `buffer` for a later `take`, if fewer than `spares_max` wait.
    pub fn give(&self, buffer: Vec<u8>) {
        if buffer.capacity() == 0 {
            return;
        }
        let mut spares = self.lock();
        if spares.len() < self.spares_max {
            spares.push(buffer);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        // A list of buffers: a poisoned lock still holds a usable one.
        self.spares
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Deref for Pooled<'_> {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.buffer
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::BufferPool;

    #[test]
    fn buffers_come_back_emptied_with_their_capacity_and_spares_are_bounded() {
        let pool = BufferPool::new(1);
        {
            let mut first = pool.take();
            first.extend_from_slice(&[1; 5000]);
            let mut second = pool.take();
            second.extend_from_slice(&[2; 10]);
        }
        let again = pool.take();
        assert!(again.is_empty());
        assert!(again.capacity() >= 10);
        assert_eq!(pool.lock().len(), 0);
        drop(again);
        assert_eq!(pool.lock().len(), 1);
    }
}
