//! Zipf popularity: of n items ranked by popularity, the k-th (from 1) is picked with a
//! probability proportional to 1/k^s. With s = 1.1 over 10 000 posts, the top 1% of posts draw
//! about half of the reads — the shape that makes caching pay off.
//!
//! The items are a finite, known list (the posts the site listed), so the sampler is an exact
//! cumulative table searched by bisection: O(n) memory, O(log n) per draw, no approximation.

use rand::Rng;

/// A sampler of ranks `0..n` (0 is the most popular).
#[derive(Debug, Clone)]
pub struct Zipf {
    /// `cumulative[k]` = sum of the weights of ranks `0..=k`.
    cumulative: Vec<f64>,
}

impl Zipf {
    /// A sampler over `n` ranks with exponent `s`; `None` when there is nothing to pick.
    pub fn new(n: usize, s: f64) -> Option<Self> {
        if n == 0 {
            return None;
        }
        let cumulative = (1..=n)
            .scan(0.0, |total, rank| {
                *total += (rank as f64).powf(-s);
                Some(*total)
            })
            .collect();
        Some(Zipf { cumulative })
    }

    /// How many ranks there are.
    pub fn len(&self) -> usize {
        self.cumulative.len()
    }

    /// Never true: a sampler always has at least one rank.
    pub fn is_empty(&self) -> bool {
        self.cumulative.is_empty()
    }

    /// The probability of rank `k`.
    pub fn probability(&self, k: usize) -> f64 {
        let below = if k == 0 { 0.0 } else { self.cumulative[k - 1] };
        (self.cumulative[k] - below) / self.total()
    }

    /// Draws one rank.
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let point = rng.random::<f64>() * self.total();
        self.cumulative
            .partition_point(|&upto| upto <= point)
            .min(self.len() - 1)
    }

    fn total(&self) -> f64 {
        self.cumulative[self.len() - 1]
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn probabilities_follow_the_power_law_and_sum_to_one() {
        let zipf = Zipf::new(1000, 1.1).unwrap();
        let sum: f64 = (0..1000).map(|k| zipf.probability(k)).sum();
        assert!((sum - 1.0).abs() < 1e-9);
        let ratio = zipf.probability(0) / zipf.probability(9);
        assert!((ratio - 10f64.powf(1.1)).abs() < 1e-6, "{ratio}");
    }

    #[test]
    fn draws_match_the_probabilities() {
        let zipf = Zipf::new(100, 1.1).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let draws = 200_000;
        let mut counts = [0u32; 100];
        for _ in 0..draws {
            counts[zipf.sample(&mut rng)] += 1;
        }
        for k in [0, 1, 9, 99] {
            let expected = zipf.probability(k) * draws as f64;
            let tolerance = 5.0 * expected.sqrt() + 5.0;
            assert!(
                (f64::from(counts[k]) - expected).abs() < tolerance,
                "rank {k}: {} draws, expected {expected:.0}",
                counts[k]
            );
        }
    }

    #[test]
    fn a_single_item_is_always_picked_and_none_is_refused() {
        let zipf = Zipf::new(1, 1.1).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        assert!((0..100).all(|_| zipf.sample(&mut rng) == 0));
        assert!(Zipf::new(0, 1.1).is_none());
    }
}
