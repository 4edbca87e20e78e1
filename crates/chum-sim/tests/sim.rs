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
fn reconnecting_peers_take_the_journal_fast_path_and_still_converge() {
    let config = SimConfig {
        partitions: 6,
        restarts: 4,
        ..SimConfig::default()
    };
    let (mut resumes, mut checkpoints) = (0, 0);
    for seed in 200..206 {
        let report = run(seed, &config).unwrap_or_else(|failure| panic!("{failure}"));
        resumes += report.resumes;
        checkpoints += report.checkpoints;
    }
    assert!(checkpoints > 0, "positions are learned");
    assert!(resumes > 0, "and used after reconnects");
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

fn access_config(check_grants: bool) -> SimConfig {
    SimConfig {
        peers: 4,
        writes: 200,
        access: Some(chum_sim::AccessTest {
            private: 10_000,
            granted: 300,
            check_grants,
        }),
        ..SimConfig::default()
    }
}

#[test]
fn grants_decide_what_other_persons_receive() {
    let config = access_config(true);
    for seed in 0..4u64 {
        let report = run(seed, &config).unwrap_or_else(|failure| panic!("{failure}"));
        assert_eq!(report.leaked, 0);
        assert!(report.private >= 10_000, "{report:?}");
        // Q holds every object P's grant covers (the conversation, its messages, the grant,
        // P's public identity): at least the 300 starting messages.
        assert!(report.granted_received > 300, "{report:?}");
    }
}

#[test]
fn the_leak_check_fails_when_grants_are_not_enforced() {
    let failure = run(0, &access_config(false)).expect_err("private objects leak");
    assert!(failure.reason.contains("outside P's grant"), "{failure}");
}
