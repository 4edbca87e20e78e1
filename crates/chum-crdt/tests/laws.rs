//! The CRDT laws, written once and run for every strategy: merge is commutative, associative and
//! idempotent; any permutation and duplication of deliveries converges; versions that arrive
//! before their parents converge once the parents arrive. Append-only collections too.
#![allow(clippy::unwrap_used)]

mod support;

use chum_crdt::{Collection, Timestamp, Version, preset};
use chum_object::recipe::{Recipe, Strategy as MergeStrategy};
use chum_object::{Cid, Codec};
use proptest::prelude::*;
use support::{Replica, edit_body, object_id, observe, resolve};

/// One step of a random history: replica `who` edits (choice, value) or syncs from `from`.
#[derive(Debug, Clone)]
enum Step {
    Edit { who: usize, choice: u8, value: u8 },
    Sync { who: usize, from: usize },
}

fn arb_steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            3 => (0..3usize, any::<u8>(), any::<u8>()).prop_map(|(who, choice, value)| Step::Edit { who, choice, value }),
            1 => (0..3usize, 0..3usize).prop_map(|(who, from)| Step::Sync { who, from }),
        ],
        1..40,
    )
}

/// Plays a history on three replicas with skewed clocks; returns every version written.
fn play(recipe: &Recipe, steps: &[Step]) -> Vec<(Cid, Version)> {
    let of = object_id(recipe);
    let mut replicas: Vec<Replica> = [(1, 0), (2, 3_600_000), (3, -5_000)]
        .into_iter()
        .map(|(n, skew)| Replica::new(recipe, n, skew))
        .collect();
    let mut all = Vec::new();
    for (t, step) in steps.iter().enumerate() {
        let now = 1_000_000 + t as u64 * 10;
        match *step {
            Step::Edit { who, choice, value } => {
                let (body, deleted) = edit_body(recipe.strategy, &replicas[who], choice, value);
                all.push(replicas[who].write(&of, body, deleted, now));
            }
            Step::Sync { who, from } if who != from => {
                let source = replicas[from].clone();
                replicas[who].sync_from(&source, now);
            }
            Step::Sync { .. } => {}
        }
    }
    all
}

fn versioned_recipes() -> [Recipe; 3] {
    // Conversation is last-write; Settings is instance-local (resolved like last-write); Contact
    // is field-merge with a set field.
    [
        preset::conversation(),
        preset::contact(),
        preset::settings(),
    ]
}

fn shuffle<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut items = items.to_vec();
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
    items
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_order_and_duplication_converges(steps in arb_steps(), seed in any::<u64>(), dup in any::<u64>()) {
        for recipe in versioned_recipes() {
            let versions = play(&recipe, &steps);
            let reference = observe(&resolve(&recipe, &versions));
            let mut delivered = shuffle(&versions, seed);
            // Duplicate some deliveries.
            let extra: Vec<_> = delivered.iter().filter(|(cid, _)| cid.as_bytes()[20] as u64 % 3 == dup % 3).cloned().collect();
            delivered.extend(extra);
            prop_assert_eq!(&observe(&resolve(&recipe, &delivered)), &reference, "{}", recipe.name);
            // Children before parents: the reverse of the write order.
            let reversed: Vec<_> = versions.iter().rev().cloned().collect();
            prop_assert_eq!(&observe(&resolve(&recipe, &reversed)), &reference, "{}", recipe.name);
        }
    }

    #[test]
    fn merge_is_commutative_associative_idempotent(steps in arb_steps(), split in any::<u64>()) {
        for recipe in versioned_recipes() {
            let versions = play(&recipe, &steps);
            // Three overlapping subsets.
            let pick = |k: u64| -> Vec<_> {
                versions.iter().enumerate().filter(|(i, _)| (split >> ((*i as u64 * 3 + k) % 64)) & 1 == 1 || *i as u64 % 5 == k).map(|(_, v)| v.clone()).collect()
            };
            let (a, b, c) = (resolve(&recipe, &pick(0)), resolve(&recipe, &pick(1)), resolve(&recipe, &pick(2)));
            let merged = |x: &chum_crdt::Resolver, y: &chum_crdt::Resolver| { let mut m = x.clone(); m.merge(y).unwrap(); m };
            prop_assert_eq!(observe(&merged(&a, &b)), observe(&merged(&b, &a)), "commutative {}", recipe.name);
            prop_assert_eq!(observe(&merged(&merged(&a, &b), &c)), observe(&merged(&a, &merged(&b, &c))), "associative {}", recipe.name);
            prop_assert_eq!(observe(&merged(&a, &a)), observe(&a), "idempotent {}", recipe.name);
            // Merging equals adding the union.
            let mut union = pick(0);
            union.extend(pick(1));
            prop_assert_eq!(observe(&merged(&a, &b)), observe(&resolve(&recipe, &union)), "merge = union {}", recipe.name);
        }
    }

    #[test]
    fn replicas_that_exchanged_everything_agree(steps in arb_steps()) {
        for recipe in versioned_recipes() {
            let versions = play(&recipe, &steps);
            let mut one = resolve(&recipe, &versions);
            let mut two = resolve(&recipe, &shuffle(&versions, 7));
            let before = observe(&one);
            one.merge(&two.clone()).unwrap();
            two.merge(&resolve(&recipe, &versions)).unwrap();
            prop_assert_eq!(observe(&one), before.clone());
            prop_assert_eq!(observe(&two), before);
        }
    }

    #[test]
    fn append_only_collections_obey_the_laws(entries in proptest::collection::vec((0u64..50, any::<u8>()), 0..60), seed in any::<u64>()) {
        let items: Vec<(Timestamp, Cid)> = entries.iter().map(|(ms, n)| (Timestamp::new(*ms, 0), Cid::hash(Codec::DagCbor, &[*n]))).collect();
        let build = |items: &[(Timestamp, Cid)]| { let mut c = Collection::new(); for (t, cid) in items { c.insert(*t, cid.clone()); } c };
        let reference = build(&items);
        prop_assert_eq!(&build(&shuffle(&items, seed)), &reference);
        let (left, right) = items.split_at(items.len() / 2);
        let (a, b) = (build(left), build(right));
        let mut ab = a.clone(); ab.merge(&b);
        let mut ba = b.clone(); ba.merge(&a);
        prop_assert_eq!(&ab, &ba);
        prop_assert_eq!(&ab, &reference);
        let mut aa = a.clone(); aa.merge(&a);
        prop_assert_eq!(&aa, &a);
        let order: Vec<_> = reference.iter().map(|(t, c)| (*t, c.clone())).collect();
        let mut sorted = order.clone();
        sorted.sort();
        prop_assert_eq!(order, sorted);
    }
}

#[test]
fn strategies_under_test_cover_every_versioned_strategy() {
    let strategies: Vec<MergeStrategy> = versioned_recipes().iter().map(|r| r.strategy).collect();
    assert_eq!(
        strategies,
        [
            MergeStrategy::LastWrite,
            MergeStrategy::FieldMerge,
            MergeStrategy::InstanceLocal
        ]
    );
}
