//! `chum-sim N [--from SEED]` runs N seeds and ends with `N passed, M failed`;
//! `chum-sim --seed SEED` replays one seed and prints what it did. `--access` first runs the
//! access scenario instead (four peers of three persons, 10,000 private objects, one grant).

use std::process::ExitCode;

use chum_sim::{SimConfig, run};

fn usage() -> ExitCode {
    eprintln!("usage: chum-sim [--access] COUNT [--from SEED] | chum-sim [--access] --seed SEED");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut config = SimConfig::default();
    if args.first().is_some_and(|arg| arg == "--access") {
        args.remove(0);
        config = SimConfig {
            peers: 5,
            writes: 200,
            access: Some(chum_sim::AccessTest {
                private: 10_000,
                granted: 300,
                check_grants: true,
            }),
            ..SimConfig::default()
        };
    }
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
            let (mut private, mut leaked, mut granted) = (0usize, 0usize, 0usize);
            let (mut sessions, mut resumes, mut checkpoints) = (0u64, 0u64, 0u64);
            let mut total = chum_sim::SimReport::default();
            for seed in from..from + count {
                match run(seed, &config) {
                    Ok(report) => {
                        passed += 1;
                        private += report.private;
                        leaked += report.leaked;
                        granted += report.granted_received;
                        sessions += report.sessions;
                        resumes += report.resumes;
                        checkpoints += report.checkpoints;
                        total.admitted += report.admitted;
                        total.announced += report.announced;
                        total.waited += report.waited;
                        total.waited_foreign += report.waited_foreign;
                        total.misfits += report.misfits;
                        total.refused += report.refused;
                        total.revoked += report.revoked;
                    }
                    Err(failure) => {
                        failed += 1;
                        println!("{failure} (replay: cargo xtask sim --seed {seed})");
                    }
                }
            }
            if config.access.is_some() {
                println!(
                    "access: {private} private objects written by P, {leaked} reached Q or R; \
                     Q received all {granted} granted objects"
                );
            }
            println!(
                "{sessions} sessions ({} admitted an authenticated peer), {resumes} took the journal \
                 fast path, {checkpoints} journal positions learned",
                total.admitted
            );
            println!(
                "{} objects announced, each with its link targets stored; {} waited for link targets \
                 ({} of them from another person)",
                total.announced, total.waited, total.waited_foreign
            );
            println!(
                "{} objects written against their recipe, refused {} times by receiving hosts; \
                 {} sessions ended by a revocation",
                total.misfits, total.refused, total.revoked
            );
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
