//! The placement bounds the issue asks for, as properties over random node sets: adding or
//! removing one node of N moves at most 1/N + 2% of 100 000 keys, and every node holds within
//! ±10% of an even share.

use cache::pool::rendezvous::Rendezvous;
use proptest::prelude::*;

const KEYS: usize = 100_000;

fn keys() -> Vec<String> {
    (0..KEYS)
        .map(|i| format!("leanstack:v1:post:{i}"))
        .collect()
}

/// The owner's name of every key.
fn owners(names: &[String], keys: &[String]) -> Vec<String> {
    let placement = Rendezvous::new(names);
    keys.iter()
        .map(|key| names[placement.node_for(key.as_bytes()).unwrap()].clone())
        .collect()
}

fn moved(before: &[String], after: &[String]) -> usize {
    before.iter().zip(after).filter(|(b, a)| b != a).count()
}

/// 2 to 12 distinct `ip:port` names, as DNS discovery produces them.
fn node_names() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::btree_set((any::<[u8; 4]>(), 1024u16..), 2..=12).prop_map(|set| {
        set.into_iter()
            .map(|([a, b, c, d], port)| format!("{a}.{b}.{c}.{d}:{port}"))
            .collect()
    })
}

proptest! {
    // Each case places 100 000 keys three times; a handful of cases covers the sizes.
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn one_node_more_or_less_moves_at_most_its_share(names in node_names(), removed in any::<prop::sample::Index>()) {
        let keys = keys();
        let all = owners(&names, &keys);
        let n = names.len() as f64;
        let bound = ((1.0 / n + 0.02) * KEYS as f64) as usize;

        let mut fewer = names.clone();
        let gone = fewer.remove(removed.index(names.len()));
        let without = owners(&fewer, &keys);
        let moved_on_removal = moved(&all, &without);
        prop_assert!(moved_on_removal <= bound, "removing 1 of {n}: {moved_on_removal} keys moved, bound {bound}");
        // Only the removed node's keys moved.
        for (before, after) in all.iter().zip(&without) {
            prop_assert!(before == after || *before == gone);
        }

        // Adding the node back (N-1 → N) moves at most 1/N of the keys, all onto it.
        let moved_on_addition = moved(&without, &all);
        prop_assert!(moved_on_addition <= bound, "adding 1 to {}: {moved_on_addition} keys moved", n - 1.0);
    }

    #[test]
    fn load_is_within_ten_percent_of_even(names in node_names()) {
        let keys = keys();
        let all = owners(&names, &keys);
        let even = KEYS as f64 / names.len() as f64;
        for name in &names {
            let held = all.iter().filter(|owner| *owner == name).count() as f64;
            prop_assert!((held - even).abs() <= 0.10 * even, "{name} holds {held} keys, even is {even}");
        }
    }
}
