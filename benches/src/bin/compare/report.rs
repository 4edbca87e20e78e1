//! `compare report`: runs every measurement in its own process, takes medians, fits how each
//! cost grows, and writes the report, its plots and the raw results.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Measure;

/// A scenario: its peers and sizes.
pub struct Scenario {
    pub name: &'static str,
    pub title: &'static str,
    /// What the size is ("N", "d", "documents", "MiB").
    pub param: &'static str,
    pub what: &'static str,
    pub peers: &'static [&'static str],
    full: &'static [u64],
    quick: &'static [u64],
    /// For `reconcile`: the replicas' size (full, quick).
    n: (u64, u64),
}

impl Scenario {
    fn sizes(&self, quick: bool) -> &'static [u64] {
        if quick { self.quick } else { self.full }
    }

    fn n(&self, quick: bool) -> u64 {
        if quick { self.n.1 } else { self.n.0 }
    }
}

/// The largest size (for `reconcile`, the replicas' size) a peer is run at, where it does not cope with more in reasonable time
/// or memory on this machine (said in the report).
fn cap(scenario: &str, peer: &str) -> Option<u64> {
    match (scenario, peer) {
        // 100,000 took 60 s and a 15.9 GB peak here (3.4 s of it measured): not a size to
        // run three times on a 24 GiB machine.
        ("concurrent", "automerge") => Some(10_000),
        _ => None,
    }
}

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "empty",
        title: "1. Sync from empty, in memory",
        param: "N",
        what: "N records of ~100 B (a chat message as JSON text; for chum its DAG-CBOR object) \
               from a replica holding them into an empty one, both in memory. chum-engine is \
               the sans-IO session over in-memory sets, both sides on one thread in turn (so \
               each side's work is measured); chum-node is the path an app runs \
               (`chum_net::Node` over `MemoryStore`, verifying every object and checking it \
               against its recipe), chum-node-noise the same between two paired instances in \
               Noise sessions. yrs and Loro hold the records in one map and sync with a state \
               (version) vector and one update; automerge holds them in its root map and runs \
               its sync protocol. Floor: the records' bytes, and BLAKE3 over them on one core.",
        peers: &[
            "chum-engine",
            "chum-node",
            "chum-node-noise",
            "yrs",
            "loro",
            "automerge",
            "floor",
        ],
        full: &[1_000, 10_000, 100_000, 1_000_000],
        quick: &[1_000, 4_000],
        n: (0, 0),
    },
    Scenario {
        name: "empty-disk",
        title: "1b. Sync from empty, into an on-disk store",
        param: "N",
        what: "The same records into an empty replica on disk: chum's node path over two redb \
               files (durable commits). yrs, Loro and automerge have no store of their own \
               (an app saves their documents itself), so only chum runs. Floor: the same \
               objects inserted into an empty redb table keyed by CID in batches of 10,000 \
               in arrival order (a naive baseline, not a lower bound: chum's store writes \
               each batch's keys in sorted order and beats it at 100k and above).",
        peers: &["chum-redb", "floor"],
        full: &[1_000, 10_000, 100_000, 1_000_000],
        quick: &[1_000, 4_000],
        n: (0, 0),
    },
    Scenario {
        name: "reconcile",
        title: "2. Reconciliation of two large replicas differing by d",
        param: "d",
        what: "Two replicas of N records, one lacking d of the other's, until both hold the \
               same (the d records sent). chum-journal: the replicas synced before and hold \
               each other's journal position; chum-sketch: they did not (sketches). \
               negentropy reconciles the 32-byte ids only. yrs and Loro: the lacking replica \
               sends its state (version) vector and applies the update. automerge: its sync \
               protocol from fresh sync states. Floor: the d records' bytes; their ids for \
               the metadata.",
        peers: &[
            "chum-journal",
            "chum-sketch",
            "negentropy",
            "yrs",
            "loro",
            "automerge",
            "floor",
        ],
        full: &[0, 1, 1_000, 100_000],
        quick: &[0, 1, 100, 1_000],
        n: (1_000_000, 10_000),
    },
    Scenario {
        name: "concurrent",
        title: "3. Concurrent edits of the same fields, then a merge",
        param: "N",
        what: "Two replicas share N records; each changes the same field of every record \
               concurrently; they sync both ways and merge. chum: a field-merge version per \
               record and side over a shared base version, synced by the journal fast path, \
               every record resolved on both sides (versions decoded from bytes). yrs and \
               Loro: one map of N keys, each side sets every key, state vectors both ways. \
               automerge: the keys at its root, its sync protocol. Both replicas end equal \
               (checked).",
        peers: &["chum", "yrs", "loro", "automerge"],
        full: &[1_000, 10_000, 100_000, 1_000_000],
        quick: &[1_000, 4_000],
        n: (0, 0),
    },
    Scenario {
        name: "docs",
        title: "4. Many small documents, synced in one pass",
        param: "documents",
        what: "Documents of 10 text fields into an empty replica. chum: each document as the \
               Instance API writes it (an ID object and a version with the ten fields), all \
               in one session. yrs, Loro, automerge: one document each, each synced as its \
               docs recommend, all in one pass (pipelined: the round trips are the most one \
               document took).",
        peers: &["chum", "yrs", "loro", "automerge"],
        full: &[100, 1_000, 10_000],
        quick: &[100, 1_000],
        n: (0, 0),
    },
    Scenario {
        name: "bulk",
        title: "5. Bulk bytes, encrypted, over loopback TCP",
        param: "MiB",
        what: "1 MiB blob chunks from one node to an empty one over TCP on 127.0.0.1: two \
               paired instances in Noise sessions (chum-noise) and plaintext (chum-plain); \
               the receiver checks every chunk against its CID. Floor: sealing the bytes \
               with the sessions' AEAD (ChaCha20-Poly1305) and hashing them with BLAKE3, one \
               core each. iroh-blobs (built with the `iroh` feature, which `cargo xtask \
               bench-report` turns on): the same bytes as one blob, fetched over a QUIC \
               connection between two iroh endpoints on 127.0.0.1 into a `MemStore`, \
               verified by BLAKE3 streaming.",
        peers: &["chum-noise", "chum-plain", "iroh-blobs", "floor"],
        full: &[64, 256, 1_024],
        quick: &[8, 32],
        n: (0, 0),
    },
    Scenario {
        name: "resume",
        title: "6. A dropped connection at 50 % of an initial sync, and a restart",
        param: "N",
        what: "Sync from empty cut once the source has sent half of a whole sync's bytes; a \
               new session finishes. chum: frames in flight are lost, the receiver keeps what \
               it stored, a fresh session (sketches) sends the rest. yrs and Loro send the \
               state as one update, which a cut leaves unusable: the restart sends it whole. \
               Bytes are both attempts'; the time is the restart's.",
        peers: &["chum", "yrs", "loro"],
        full: &[10_000, 100_000, 1_000_000],
        quick: &[1_000, 4_000],
        n: (0, 0),
    },
];

/// A figure read from a cell (its median, or its first run's).
pub type Figure = Box<dyn Fn(&Cell) -> Option<f64>>;

/// The runs of one peer at one size.
pub struct Cell {
    pub peer: &'static str,
    pub size: u64,
    pub runs: Vec<Measure>,
    pub error: Option<String>,
}

impl Cell {
    pub fn stat(&self, f: impl Fn(&Measure) -> f64) -> Option<(f64, f64, f64)> {
        let mut values: Vec<f64> = self.runs.iter().map(f).filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        let median = if values.len().is_multiple_of(2) {
            (values[mid - 1] + values[mid]) / 2.0
        } else {
            values[mid]
        };
        Some((values[0], median, values[values.len() - 1]))
    }

    pub fn median(&self, f: impl Fn(&Measure) -> f64) -> Option<f64> {
        self.stat(f).map(|(_, median, _)| median)
    }

    fn first(&self) -> Option<&Measure> {
        self.runs.first()
    }

    pub fn total_bytes(&self) -> Option<f64> {
        self.first().map(|m| (m.bytes[0] + m.bytes[1]) as f64)
    }
}

/// Runs one measurement in a child process, with a time limit.
fn run_one(
    scenario: &Scenario,
    peer: &str,
    size: u64,
    quick: bool,
    limit: Duration,
) -> Result<Measure, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let mut child = Command::new(exe)
        .args([
            "measure",
            scenario.name,
            peer,
            &size.to_string(),
            &scenario.n(quick).to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start a measurement: {e}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("did not finish in {} s", limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("measurement: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(format!(
            "failed ({}): {}",
            output.status,
            last.unwrap_or("no message")
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or("no result printed")?;
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("unreadable result: {e}"))?;
    Ok(Measure::from_json(&value))
}

struct Options {
    /// The commit measured (read before anything is written: the report's own files are
    /// tracked).
    commit: String,
    quick: bool,
    runs: usize,
    out: PathBuf,
    command: String,
}

fn options(args: &[&str]) -> Result<Options, String> {
    let mut quick = false;
    let mut runs = None;
    let mut out = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match *arg {
            "--quick" => quick = true,
            "--runs" => {
                runs = Some(
                    rest.next()
                        .and_then(|r| r.parse::<usize>().ok())
                        .filter(|&r| r > 0)
                        .ok_or("--runs takes a number of runs")?,
                )
            }
            "--out" => out = Some(PathBuf::from(rest.next().ok_or("--out takes a folder")?)),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let out = out.unwrap_or_else(|| {
        if quick {
            root.join("target/bench-report-quick")
        } else {
            root.join("docs")
        }
    });
    let command = format!(
        "cargo xtask bench-report{}",
        if quick { " --quick" } else { "" }
    );
    let mut commit = shell("git", &["rev-parse", "--short", "HEAD"]);
    if !shell("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        commit.push_str(" with uncommitted changes");
    }
    Ok(Options {
        commit,
        quick,
        runs: runs.unwrap_or(if quick { 1 } else { 3 }),
        out,
        command,
    })
}

pub fn run(args: &[&str]) -> Result<(), String> {
    let options = options(args)?;
    let limit = Duration::from_secs(if options.quick { 120 } else { 600 });
    let mut results: Vec<(&Scenario, Vec<Cell>)> = Vec::new();
    for scenario in SCENARIOS {
        let mut cells = Vec::new();
        for &size in scenario.sizes(options.quick) {
            for &peer in scenario.peers {
                let mut cell = Cell {
                    peer,
                    size,
                    runs: Vec::new(),
                    error: None,
                };
                let work = if scenario.name == "reconcile" {
                    scenario.n(options.quick)
                } else {
                    size
                };
                if peer == "iroh-blobs" && !cfg!(feature = "iroh") {
                    cell.error = Some("not run: built without the `iroh` feature".into());
                    cells.push(cell);
                    continue;
                }
                if cap(scenario.name, peer).is_some_and(|cap| work > cap) {
                    cell.error = Some("not run at this size (see the note)".into());
                    cells.push(cell);
                    continue;
                }
                for _ in 0..options.runs {
                    match run_one(scenario, peer, size, options.quick, limit) {
                        Ok(measure) => cell.runs.push(measure),
                        Err(error) => {
                            cell.error = Some(error);
                            break;
                        }
                    }
                }
                eprintln!(
                    "compare: {} {peer} {} {size}: {}",
                    scenario.name,
                    scenario.param,
                    match (&cell.error, cell.median(|m| m.wall)) {
                        (Some(error), _) => error.clone(),
                        (None, Some(wall)) => format!("{wall:.4} s"),
                        (None, None) => "done".into(),
                    }
                );
                cells.push(cell);
            }
        }
        results.push((scenario, cells));
    }
    let failures: Vec<String> = results
        .iter()
        .flat_map(|(scenario, cells)| {
            cells.iter().filter_map(move |cell| {
                cell.error
                    .as_ref()
                    .filter(|e| !e.starts_with("not run"))
                    .map(|e| format!("{} {} {}: {e}", scenario.name, cell.peer, cell.size))
            })
        })
        .collect();
    let figures = options.out.join("benchmarks");
    std::fs::create_dir_all(&figures)
        .map_err(|e| format!("cannot create {}: {e}", figures.display()))?;
    for (scenario, cells) in &results {
        crate::plot::scenario(&figures, scenario, cells)?;
    }
    let markdown = write_report(&results, &options);
    let path = options.out.join("benchmarks.md");
    std::fs::write(&path, markdown).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let json = results_json(&results);
    std::fs::write(figures.join("results.json"), json)
        .map_err(|e| format!("cannot write results.json: {e}"))?;
    eprintln!("compare: wrote {}", path.display());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("measurements failed:\n{}", failures.join("\n")))
    }
}

fn results_json(results: &[(&Scenario, Vec<Cell>)]) -> String {
    let value: Vec<serde_json::Value> = results
        .iter()
        .flat_map(|(scenario, cells)| {
            cells.iter().map(move |cell| {
                serde_json::json!({
                    "scenario": scenario.name,
                    "peer": cell.peer,
                    "size": cell.size,
                    "error": cell.error,
                    "runs": cell.runs.iter().map(Measure::to_json).collect::<Vec<_>>(),
                })
            })
        })
        .collect();
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// The exponent k of `y ∝ x^k` fitted by least squares on logs (points with x, y > 0).
pub fn exponent(points: &[(f64, f64)]) -> Option<f64> {
    let logs: Vec<(f64, f64)> = points
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0 && y.is_finite())
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    if logs.len() < 2 {
        return None;
    }
    let n = logs.len() as f64;
    let mx = logs.iter().map(|p| p.0).sum::<f64>() / n;
    let my = logs.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = logs.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = logs.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

fn shell(command: &str, args: &[&str]) -> String {
    Command::new(command)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("?".into(), |kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0));
    format!("{model}, {cores} cores available, {memory} RAM")
}

fn seconds(s: f64) -> String {
    if !s.is_finite() {
        "–".into()
    } else if s >= 10.0 {
        format!("{s:.1} s")
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 0.001 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

fn bytes(b: f64) -> String {
    if !b.is_finite() {
        "–".into()
    } else if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e4 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}

fn ratio(x: f64, to: f64) -> String {
    if x.is_finite() && to.is_finite() && to > 0.0 {
        format!("{:.2}×", x / to)
    } else {
        "–".into()
    }
}

fn is_peer(name: &str) -> bool {
    name != "floor" && !name.starts_with("chum")
}

/// The best (least) median of `f` among the other projects' peers at this size.
fn best_peer(cells: &[&Cell], f: impl Fn(&Cell) -> Option<f64>) -> Option<(f64, &'static str)> {
    cells
        .iter()
        .filter(|c| is_peer(c.peer) && c.error.is_none())
        .filter_map(|c| f(c).map(|v| (v, c.peer)))
        .filter(|(v, _)| v.is_finite() && *v > 0.0)
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

fn write_report(results: &[(&Scenario, Vec<Cell>)], options: &Options) -> String {
    let mut md = String::new();
    let date = shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let commit = &options.commit;
    let rustc = shell("rustc", &["--version"]);
    let _ = writeln!(
        md,
        "# Benchmarks: chum beside automerge, yrs, Loro, negentropy and iroh-blobs\n"
    );
    let _ = writeln!(
        md,
        "Generated by `{}` — do not edit by hand. {} on {}; commit `{commit}`; {rustc}; \
         {} run(s) per figure (median, with min–max of wall time); every measurement in its \
         own process; peak memory is the process's during the measured phase (what set-up \
         left resident, the replicas' data, counts). Records are ~100 B chat messages whose \
         text is 40 pseudo-random letters (they do not compress into each other). Peers: automerge \
         0.12, yrs 0.28, Loro 1.17, negentropy 0.5, iroh-blobs 0.104, each driven the way its \
         documentation recommends (automerge's sync states are fresh in every exchange: \
         replicas that kept theirs from an earlier sync would send less); bytes are counted at the boundary between the two replicas. Ratios \
         compare a figure with the best other project's at the same size (\"vs best\") and \
         with the floor where there is one.\n",
        options.command,
        date,
        machine(),
        options.runs,
    );
    if options.quick {
        let _ = writeln!(
            md,
            "**Quick mode**: small sizes, one run, possibly a debug build — this checks that \
             the report still runs; its figures mean nothing.\n"
        );
    }
    let _ = writeln!(
        md,
        "Raw results: `benchmarks/results.json`. Plots: `benchmarks/*.svg`.\n"
    );
    headline(&mut md, results);
    behind(&mut md, results);
    for (scenario, cells) in results {
        section(&mut md, scenario, cells, options.quick);
    }
    let _ = writeln!(
        md,
        "## Not in this run\n\n- Peers are not run where \
         they do not cope in reasonable time or memory on this machine: automerge above \
         10,000 records in scenario 3 (at 100,000 one run took 60 s and peaked at 15.9 GB: \
         3.4 s measured, the rest its set-up).\n- yrs, Loro and \
         automerge have no on-disk store of their own: scenario 1b is chum against raw \
         redb only."
    );
    md
}

fn headline(md: &mut String, results: &[(&Scenario, Vec<Cell>)]) {
    let Some((scenario, cells)) = results.iter().find(|(s, _)| s.name == "empty") else {
        return;
    };
    let Some(size) = cells.iter().map(|c| c.size).max() else {
        return;
    };
    let _ = writeln!(
        md,
        "## Headline: sync {} records of ~100 B from empty (in memory)\n",
        size
    );
    let _ = writeln!(
        md,
        "| peer | wall | CPU | bytes | peak memory |\n|---|---|---|---|---|"
    );
    for cell in cells.iter().filter(|c| c.size == size && c.peer != "floor") {
        match &cell.error {
            Some(error) => {
                let _ = writeln!(md, "| {} | {error} | | | |", cell.peer);
            }
            None => {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {:.0} MB |",
                    cell.peer,
                    seconds(cell.median(|m| m.wall).unwrap_or(f64::NAN)),
                    seconds(cell.median(|m| m.cpu).unwrap_or(f64::NAN)),
                    bytes(cell.total_bytes().unwrap_or(f64::NAN)),
                    cell.median(|m| m.peak_mb).unwrap_or(f64::NAN),
                );
            }
        }
    }
    let _ = writeln!(md, "\n(Scenario {}.)\n", scenario.title);
}

/// Peers that reconcile ids only (they send no records): compared on metadata bytes alone.
fn ids_only(peer: &str) -> bool {
    peer == "negentropy"
}

/// Every size where chum's best variant is behind the best other project on time, bytes,
/// metadata bytes or memory.
fn behind(md: &mut String, results: &[(&Scenario, Vec<Cell>)]) {
    let mut lines = Vec::new();
    for (scenario, cells) in results {
        let mut sizes: Vec<u64> = cells.iter().map(|c| c.size).collect();
        sizes.dedup();
        for size in sizes {
            let at: Vec<&Cell> = cells.iter().filter(|c| c.size == size).collect();
            let whole: Vec<&Cell> = at.iter().copied().filter(|c| !ids_only(c.peer)).collect();
            let metrics: [(&str, Figure, &[&Cell]); 6] = [
                ("time", Box::new(|c: &Cell| c.median(|m| m.wall)), &whole),
                ("CPU", Box::new(|c: &Cell| c.median(|m| m.cpu)), &whole),
                (
                    "round trips",
                    Box::new(|c: &Cell| c.first().map(|m| m.round_trips)),
                    &whole,
                ),
                ("bytes", Box::new(|c: &Cell| c.total_bytes()), &whole),
                (
                    "metadata bytes",
                    // Only where reconciling is the work: elsewhere it is a hello's few bytes.
                    if scenario.name == "reconcile" {
                        Box::new(|c: &Cell| c.first().map(|m| m.meta_bytes))
                    } else {
                        Box::new(|_: &Cell| None)
                    },
                    &at,
                ),
                (
                    "memory",
                    Box::new(|c: &Cell| c.median(|m| m.peak_mb)),
                    &whole,
                ),
            ];
            for (metric, f, among) in &metrics {
                let Some((peer_best, peer)) = best_peer(among, f) else {
                    continue;
                };
                // chum-plain is a baseline (no encryption): encrypted peers are compared
                // with chum-noise.
                let chum_best = among
                    .iter()
                    .filter(|c| c.peer.starts_with("chum") && c.peer != "chum-plain")
                    .filter(|c| c.error.is_none())
                    .filter_map(|c| f(c).map(|v| (v, c.peer)))
                    .filter(|(v, _)| v.is_finite())
                    .min_by(|a, b| a.0.total_cmp(&b.0));
                // Behind: by more than 10 %, and (for timings) beyond the runs' spread.
                let spread_apart = |chum_peer: &str| {
                    let range = |name: &str| {
                        among
                            .iter()
                            .find(|c| c.peer == name)
                            .and_then(|c| c.stat(|m| m.wall))
                    };
                    match (range(chum_peer), range(peer)) {
                        (Some((chum_min, _, _)), Some((_, _, peer_max))) if *metric == "time" => {
                            chum_min > peer_max
                        }
                        _ => true,
                    }
                };
                if let Some((chum, chum_peer)) = chum_best
                    && chum > peer_best * 1.1
                    && spread_apart(chum_peer)
                {
                    lines.push(format!(
                        "- {} at {} = {size}: **{metric}** — {chum_peer} {:.2}× {peer}",
                        scenario.title,
                        scenario.param,
                        chum / peer_best
                    ));
                }
            }
        }
    }
    let _ = writeln!(md, "## Where chum is behind\n");
    if lines.is_empty() {
        let _ = writeln!(md, "Nowhere in this run.\n");
    } else {
        let _ = writeln!(
            md,
            "Each line: chum's best variant against the best other project at that size, \
             where it is behind by more than 10 % (times: also beyond the runs' min–max) \
             (negentropy, which reconciles ids only, only on metadata bytes; in the bulk \
             scenario, encrypted chum against iroh-blobs, which always encrypts).\n"
        );
        for line in lines {
            let _ = writeln!(md, "{line}");
        }
        let _ = writeln!(md);
    }
}

fn section(md: &mut String, scenario: &Scenario, cells: &[Cell], quick: bool) {
    let _ = writeln!(md, "## {}\n\n{}\n", scenario.title, scenario.what);
    if scenario.name == "reconcile" {
        let _ = writeln!(md, "Replicas of N = {} records.\n", scenario.n(quick));
    }
    let _ = writeln!(
        md,
        "| {} | peer | wall (min–max) | vs best | vs floor | CPU | side A / side B | A→B | B→A | metadata | round trips | peak memory | note |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        scenario.param
    );
    let mut sizes: Vec<u64> = cells.iter().map(|c| c.size).collect();
    sizes.dedup();
    for size in &sizes {
        let at: Vec<&Cell> = cells.iter().filter(|c| c.size == *size).collect();
        let whole: Vec<&Cell> = at.iter().copied().filter(|c| !ids_only(c.peer)).collect();
        let best = best_peer(&whole, |c| c.median(|m| m.wall)).map(|b| b.0);
        let floor = at
            .iter()
            .find(|c| c.peer == "floor")
            .and_then(|c| c.median(|m| m.wall));
        for cell in &at {
            if let Some(error) = &cell.error {
                let _ = writeln!(
                    md,
                    "| {size} | {} | {error} | | | | | | | | | | |",
                    cell.peer
                );
                continue;
            }
            let Some((min, wall, max)) = cell.stat(|m| m.wall) else {
                let first = cell.first();
                let _ = writeln!(
                    md,
                    "| {size} | {} | – | | | | | {} | | {} | | | {} |",
                    cell.peer,
                    bytes(first.map_or(f64::NAN, |m| m.bytes[0] as f64)),
                    bytes(first.map_or(f64::NAN, |m| m.meta_bytes)),
                    first.map_or("", |m| m.note.as_str()),
                );
                continue;
            };
            let first = cell.first();
            let sides = match (cell.median(|m| m.sides[0]), cell.median(|m| m.sides[1])) {
                (Some(a), Some(b)) => format!("{} / {}", seconds(a), seconds(b)),
                _ => "–".into(),
            };
            let _ = writeln!(
                md,
                "| {size} | {} | {} ({}–{}) | {} | {} | {} | {sides} | {} | {} | {} | {} | {:.0} MB | {} |",
                cell.peer,
                seconds(wall),
                seconds(min),
                seconds(max),
                if cell.peer == "floor" {
                    "".into()
                } else {
                    best.map_or("–".into(), |b| ratio(wall, b))
                },
                if cell.peer == "floor" {
                    "".into()
                } else {
                    floor.map_or("–".into(), |f| ratio(wall, f))
                },
                seconds(cell.median(|m| m.cpu).unwrap_or(f64::NAN)),
                bytes(first.map_or(f64::NAN, |m| m.bytes[0] as f64)),
                bytes(first.map_or(f64::NAN, |m| m.bytes[1] as f64)),
                bytes(first.map_or(f64::NAN, |m| m.meta_bytes)),
                first.map_or("–".into(), |m| if m.round_trips.is_finite() {
                    format!("{}", m.round_trips)
                } else {
                    "–".into()
                }),
                cell.median(|m| m.peak_mb).unwrap_or(f64::NAN),
                first.map_or("", |m| m.note.as_str()),
            );
        }
    }
    let _ = writeln!(md);
    // Cost curves.
    let _ = writeln!(
        md,
        "How each cost grows with {} (least-squares fit of log cost on log {}, sizes ≥ 1{}):\n",
        scenario.param,
        scenario.param,
        if scenario.name == "reconcile" {
            "; of the cost above d = 0's"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "| peer | time ∝ | bytes ∝ | memory ∝ |\n|---|---|---|---|"
    );
    for &peer in scenario.peers {
        let of = |f: &dyn Fn(&Cell) -> Option<f64>| {
            // Reconciliation: the cost above d = 0's (the fixed cost of comparing).
            let base = if scenario.name == "reconcile" {
                cells
                    .iter()
                    .find(|c| c.peer == peer && c.size == 0 && c.error.is_none())
                    .and_then(f)
                    .unwrap_or(0.0)
            } else {
                0.0
            };
            let points: Vec<(f64, f64)> = cells
                .iter()
                .filter(|c| c.peer == peer && c.error.is_none() && c.size >= 1)
                .filter_map(|c| f(c).map(|v| (c.size as f64, v - base)))
                .collect();
            let few = if points.len() < 3 { " (2 sizes)" } else { "" };
            exponent(&points).map_or("–".into(), |k| format!("{}^{k:.2}{few}", scenario.param))
        };
        let _ = writeln!(
            md,
            "| {peer} | {} | {} | {} |",
            of(&|c| c.median(|m| m.wall)),
            of(&|c| c.total_bytes()),
            of(&|c| c.median(|m| m.peak_mb)),
        );
    }
    let _ = writeln!(
        md,
        "\n![time](benchmarks/{0}-time.svg) ![bytes](benchmarks/{0}-bytes.svg) ![memory](benchmarks/{0}-memory.svg)\n",
        scenario.name
    );
}

#[cfg(test)]
mod tests {
    use super::exponent;

    #[test]
    fn exponents_of_power_laws() {
        let linear: Vec<(f64, f64)> = [1e3, 1e4, 1e5].iter().map(|&x| (x, 3.0 * x)).collect();
        assert!((exponent(&linear).unwrap_or(0.0) - 1.0).abs() < 1e-9);
        let square: Vec<(f64, f64)> = [10.0, 100.0].iter().map(|&x| (x, x * x)).collect();
        assert!((exponent(&square).unwrap_or(0.0) - 2.0).abs() < 1e-9);
        assert_eq!(exponent(&[(10.0, 1.0)]), None);
        assert_eq!(exponent(&[(10.0, 1.0), (10.0, 2.0)]), None);
    }
}
