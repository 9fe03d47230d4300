//! A small deterministic pseudo-random generator (xorshift64*): the same
//! seed gives the same sequence everywhere, so property tests, generated
//! test data and benchmarks reproduce. Not for anything secret.

pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Any seed works, zero included: xorshift must not start at zero.
        Rng {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound >= 1);
        self.next_u64() % bound
    }

    /// True with probability `percent` in 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let idx = usize::try_from(self.below(items.len() as u64)).expect("below a usize length");
        &items[idx]
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for piece in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            piece.copy_from_slice(&word[..piece.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn a_seed_fixes_the_sequence() {
        let first: Vec<u64> = (0..4)
            .map({
                let mut rng = Rng::new(7);
                move |_| rng.next_u64()
            })
            .collect();
        let mut again = Rng::new(7);
        assert!(first.iter().all(|&value| value == again.next_u64()));
        assert_ne!(Rng::new(8).next_u64(), first[0]);
        let mut rng = Rng::new(0);
        assert!((0..1000).all(|_| rng.below(10) < 10));
    }
}
