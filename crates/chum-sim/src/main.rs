//! `chum-sim N [--from SEED]` runs N seeds and ends with `N passed, M failed`;
//! `chum-sim --seed SEED` replays one seed and prints what it did.

use std::process::ExitCode;

use chum_sim::{SimConfig, run};

fn usage() -> ExitCode {
    eprintln!("usage: chum-sim COUNT [--from SEED] | chum-sim --seed SEED");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = SimConfig::default();
    let number = |text: &str| text.parse::<u64>().ok();
    match args.as_slice() {
        [flag, seed] if flag == "--seed" => {
            let Some(seed) = number(seed) else {
                return usage();
            };
            match run(seed, &config) {
                Ok(report) => {
                    println!("seed {seed} passed: {report:?}");
                    ExitCode::SUCCESS
                }
                Err(failure) => {
                    println!("{failure}");
                    ExitCode::FAILURE
                }
            }
        }
        [count, rest @ ..] => {
            let Some(count) = number(count) else {
                return usage();
            };
            let from = match rest {
                [] => 0,
                [flag, seed] if flag == "--from" => match number(seed) {
                    Some(seed) => seed,
                    None => return usage(),
                },
                _ => return usage(),
            };
            let (mut passed, mut failed) = (0u64, 0u64);
            for seed in from..from + count {
                match run(seed, &config) {
                    Ok(_) => passed += 1,
                    Err(failure) => {
                        failed += 1;
                        println!("{failure} (replay: cargo xtask sim --seed {seed})");
                    }
                }
            }
            println!("{passed} passed, {failed} failed");
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        _ => usage(),
    }
}
