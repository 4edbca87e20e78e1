//! Runs seeds on a much harsher network than the default: `cargo run --release -p chum-sim
//! --example harsh -- COUNT`.
fn main() {
    let count: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let config = chum_sim::SimConfig {
        peers: 6,
        writes: 600,
        drop: 0.03,
        duplicate: 0.03,
        reorder: 0.03,
        partitions: 10,
        restarts: 10,
        ..chum_sim::SimConfig::default()
    };
    let (mut passed, mut failed) = (0, 0);
    for seed in 0..count {
        match chum_sim::run(seed, &config) {
            Ok(_) => passed += 1,
            Err(failure) => {
                failed += 1;
                println!("{failure}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
}
