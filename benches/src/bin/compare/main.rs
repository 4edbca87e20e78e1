//! chum beside automerge, yrs, Loro and negentropy on the same work, in the same run: the
//! comparison behind `docs/benchmarks.md`.
//!
//! - `compare measure SCENARIO PEER SIZE [N]`: one measurement, in this process (so its peak
//!   memory is the scenario's), printed as one JSON line.
//! - `compare report [--quick] [--runs R] [--out DIR]`: every scenario × peer × size, each
//!   measurement in its own process, R runs each (medians, min and max); writes the report
//!   (`benchmarks.md`), the plots (`benchmarks/*.svg`) and the raw results
//!   (`benchmarks/results.json`) under DIR. Without `--quick` and `--out`, DIR is the
//!   repository's `docs/`. `cargo xtask bench-report [--quick]` runs this in release.
//!
//! Scenarios and what each peer does are in `docs/benchmarks.md` and in `peers.rs`.

mod peers;
mod plot;
mod report;

use std::process::ExitCode;

/// What one measurement cost. `NaN` where a figure does not apply to a peer.
#[derive(Debug, Clone)]
pub struct Measure {
    /// Seconds of the measured phase (set-up excluded).
    pub wall: f64,
    /// CPU seconds of the whole process in that phase (its CPU-time clock).
    pub cpu: f64,
    /// Seconds each side worked (the replica with the data first), where the two sides run
    /// in turn on one thread; `NaN` for the node paths, whose sides run concurrently.
    pub sides: [f64; 2],
    /// Bytes each side sent (the replica with the data first).
    pub bytes: [u64; 2],
    /// Of those, bytes that are not content: ids, sketches, state vectors (`NaN` where the
    /// protocol does not separate them).
    pub meta_bytes: f64,
    /// Round trips (flights both ways, halved and rounded up), `NaN` where not counted.
    pub round_trips: f64,
    /// Peak resident memory of the process during the measured phase, MB (what set-up left
    /// resident counts: the replicas' data is held).
    pub peak_mb: f64,
    /// Anything the reader needs to read the figures right.
    pub note: String,
}

impl Default for Measure {
    fn default() -> Self {
        Measure {
            wall: f64::NAN,
            cpu: f64::NAN,
            sides: [f64::NAN; 2],
            bytes: [0; 2],
            meta_bytes: f64::NAN,
            round_trips: f64::NAN,
            peak_mb: f64::NAN,
            note: String::new(),
        }
    }
}

fn number(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

impl Measure {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "wall": number(self.wall),
            "cpu": number(self.cpu),
            "sides": [number(self.sides[0]), number(self.sides[1])],
            "bytes": self.bytes,
            "meta_bytes": number(self.meta_bytes),
            "round_trips": number(self.round_trips),
            "peak_mb": number(self.peak_mb),
            "note": self.note,
        })
    }

    fn from_json(value: &serde_json::Value) -> Measure {
        let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
        Measure {
            wall: f(&value["wall"]),
            cpu: f(&value["cpu"]),
            sides: [f(&value["sides"][0]), f(&value["sides"][1])],
            bytes: [
                value["bytes"][0].as_u64().unwrap_or(0),
                value["bytes"][1].as_u64().unwrap_or(0),
            ],
            meta_bytes: f(&value["meta_bytes"]),
            round_trips: f(&value["round_trips"]),
            peak_mb: f(&value["peak_mb"]),
            note: value["note"].as_str().unwrap_or_default().to_owned(),
        }
    }
}

/// One measurement of `peer` on `scenario` at `size` (for `reconcile`, `size` is d and `n`
/// the replicas' size).
fn measure(scenario: &str, peer: &str, size: u64, n: u64) -> Result<Measure, String> {
    use peers::*;
    let measure = match (scenario, peer) {
        ("empty", "chum-engine") => empty_chum_engine(size),
        ("empty", "chum-node") => empty_chum_node(size, false, false),
        ("empty", "chum-node-noise") => empty_chum_node(size, false, true),
        ("empty", "yrs") => empty_yrs(size),
        ("empty", "loro") => empty_loro(size),
        ("empty", "automerge") => empty_automerge(size),
        ("empty", "floor") => empty_floor(size),
        ("empty-disk", "chum-redb") => empty_chum_node(size, true, false),
        ("empty-disk", "floor") => empty_disk_floor(size),
        ("reconcile", "chum-journal") => reconcile_chum(n, size, true),
        ("reconcile", "chum-sketch") => reconcile_chum(n, size, false),
        ("reconcile", "negentropy") => reconcile_negentropy(n, size),
        ("reconcile", "yrs") => reconcile_yrs(n, size),
        ("reconcile", "loro") => reconcile_loro(n, size),
        ("reconcile", "automerge") => reconcile_automerge(n, size),
        ("reconcile", "floor") => reconcile_floor(n, size),
        ("concurrent", "chum") => concurrent_chum(size),
        ("concurrent", "yrs") => concurrent_yrs(size),
        ("concurrent", "loro") => concurrent_loro(size),
        ("concurrent", "automerge") => concurrent_automerge(size),
        ("docs", "chum") => docs_chum(size),
        ("docs", "yrs") => docs_yrs(size),
        ("docs", "loro") => docs_loro(size),
        ("docs", "automerge") => docs_automerge(size),
        ("bulk", "chum-noise") => bulk_chum(size, true),
        ("bulk", "chum-plain") => bulk_chum(size, false),
        ("bulk", "floor") => bulk_floor(size),
        #[cfg(feature = "iroh")]
        ("bulk", "iroh-blobs") => bulk_iroh(size),
        ("resume", "chum") => resume_chum(size),
        ("resume", "yrs") => resume_yrs(size),
        ("resume", "loro") => resume_loro(size),
        _ => return Err(format!("no peer {peer:?} in scenario {scenario:?}")),
    };
    Ok(Measure {
        peak_mb: chum_benches::process::peak_rss_mb(),
        ..measure
    })
}

const USAGE: &str = "usage: compare measure SCENARIO PEER SIZE [N]
       compare report [--quick] [--runs R] [--out DIR]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["measure", scenario, peer, size, rest @ ..] => {
            let parse = |s: &str| s.parse::<u64>().map_err(|_| format!("not a number: {s}"));
            parse(size)
                .and_then(|size| {
                    let n = rest.first().map_or(Ok(0), |n| parse(n))?;
                    measure(scenario, peer, size, n)
                })
                .map(|measure| println!("{}", measure.to_json()))
        }
        ["report", rest @ ..] => report::run(rest),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("compare: {message}");
            ExitCode::FAILURE
        }
    }
}
