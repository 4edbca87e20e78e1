//! Many seeds of the simulation, and its determinism.

use chum_sim::{SimConfig, run};

#[test]
fn seeds_converge() {
    let config = SimConfig::default();
    let failures: Vec<String> = (0..12u64)
        .filter_map(|seed| run(seed, &config).err().map(|f| f.to_string()))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_seed_replays_exactly() {
    let config = SimConfig::default();
    assert_eq!(run(42, &config), run(42, &config));
}

#[test]
fn a_harsh_network_still_converges() {
    let config = SimConfig {
        peers: 5,
        drop: 0.02,
        duplicate: 0.02,
        reorder: 0.02,
        partitions: 6,
        restarts: 6,
        ..SimConfig::default()
    };
    for seed in 100..103 {
        let report = run(seed, &config).unwrap_or_else(|failure| panic!("{failure}"));
        assert!(report.faults > 0 && report.objects > 0, "{report:?}");
    }
}
