//! `hub_load`: hubs on PostgreSQL under load, as real processes on real ports.
//!
//! Starts a throwaway PostgreSQL cluster (fsync on), makes a hub identity in it (`chum init`),
//! starts two hub processes over it (`chum serve --hub`), and simulates devices in this
//! process: `PERSONS × DEVICES` instances (one identity per person, one instance per device),
//! each on its own in-memory store, each holding one encrypted session to a hub over
//! WebSocket on 127.0.0.1 (`connect_any` to both hubs, its own first: the devices of a person
//! are spread over both). Each person writes into its own conversation, granted to the hub
//! and to `GRANTS` other persons (default 0: a message reaches its person's other devices; 1
//! in the quick run); every device writes and receives. For `SECONDS` the devices write `RATE`
//! messages a second in all; half-way one hub process is killed (SIGKILL) and its devices
//! reconnect to the other.
//!
//! Reported: sessions held, objects/s written and deliveries/s through the hubs, live latency
//! from a device's write to its arrival at another device (p50/p99, by the harness's
//! clock — one process; before the kill, after it once every device was connected again, and
//! p99 by the second from the kill), acknowledgement latency (a device's write until its hub said it
//! stored it: the inbound half), reconnection after the kill, hub RSS, the CPU time the hubs, the
//! simulated devices (this process) and PostgreSQL used while writing (from `/proc`; per
//! message too: what tells whether the machine, not the hubs, is the limit), database size, acknowledged
//! objects missing from the database after the kill, deliveries missing once they stop
//! arriving after the run (none for 20 s, at most 180 s), and
//! the leak check: objects of a person at a device of a person it never granted them to.
//! Exits non-zero when a leak, a lost acknowledged object or a missing delivery is found.
//!
//! `hub_load --chum PATH [--quick] [--persons N] [--devices N] [--seconds N] [--rate N]
//! [--grants N] [--no-kill] [--hub-threads N] [--commit-gap-ms N]` (`cargo xtask load
//! [--quick]` builds and runs it). Each hub runs on `--hub-threads` threads (`chum serve
//! --threads`; default half the cores: the two hubs share the machine with the database and
//! the devices). `--commit-gap-ms` sets the hubs' store parameter `commit_gap_ms` (how long a
//! grouped commit waits after the last one while writes keep coming; default the store's).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chum::{Cid, Event, Identity, Instance, Link, LinkState, PersonId, Value, dagjson};
use chum_object::sign::SigningKey;
use chum_store_postgres::PostgresStore;
use chum_store_postgres::cluster::{ClusterOptions, TempCluster};

#[derive(Debug, Clone)]
struct Config {
    chum: PathBuf,
    persons: usize,
    devices: usize,
    seconds: u64,
    rate: f64,
    grants: usize,
    kill: bool,
    /// Session threads of each hub process (`chum serve --threads`).
    hub_threads: u16,
    /// The hubs' store URL parameter `commit_gap_ms` (`None`: the store's default).
    commit_gap_ms: Option<u64>,
}

impl Config {
    fn parse() -> Result<Config, String> {
        let mut config = Config {
            chum: PathBuf::new(),
            persons: 100,
            devices: 10,
            seconds: 40,
            rate: 1_000.0,
            grants: 0,
            kill: true,
            // The two hubs share this machine's cores with the database and the devices:
            // half the cores each.
            hub_threads: std::thread::available_parallelism()
                .map_or(1, |n| (n.get() / 2).max(1))
                .try_into()
                .unwrap_or(u16::MAX),
            commit_gap_ms: None,
        };
        let mut chum = None;
        let mut grants = None;
        let mut quick = false;
        let mut args = std::env::args().skip(1);
        let number = |value: Option<String>, what: &str| -> Result<f64, String> {
            value
                .as_deref()
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| format!("{what} needs a number"))
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--chum" => chum = args.next().map(PathBuf::from),
                "--quick" => {
                    quick = true;
                    config.persons = 8;
                    config.devices = 3;
                    config.seconds = 8;
                    config.rate = 40.0;
                }
                "--persons" => config.persons = number(args.next(), "--persons")? as usize,
                "--devices" => config.devices = number(args.next(), "--devices")? as usize,
                "--seconds" => config.seconds = number(args.next(), "--seconds")? as u64,
                "--rate" => config.rate = number(args.next(), "--rate")?,
                "--grants" => grants = Some(number(args.next(), "--grants")? as usize),
                "--no-kill" => config.kill = false,
                "--hub-threads" => {
                    config.hub_threads = number(args.next(), "--hub-threads")?.max(1.0) as u16;
                }
                "--commit-gap-ms" => {
                    config.commit_gap_ms = Some(number(args.next(), "--commit-gap-ms")? as u64);
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        // The full size is the scenario of the figures: each person's messages reach that
        // person's own devices. The quick run (CI's) also shares each conversation with the
        // next person, so that forwarding granted objects, and only those, is checked too.
        config.grants = grants.unwrap_or(usize::from(quick));
        config.chum = chum.ok_or("--chum PATH (the chum binary) is required")?;
        if config.persons < 2 || config.devices < 1 || config.grants >= config.persons {
            return Err("at least 2 persons, 1 device each, fewer grants than persons".into());
        }
        Ok(config)
    }
}

/// When a message was written, against the hub kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the kill, or in a run without one.
    Before,
    /// After the kill, before every device was connected again.
    Moving,
    /// Once every device was connected again.
    After,
}

/// A running hub process, killed on drop.
struct Hub {
    child: Child,
    url: String,
    peak_rss_mb: f64,
    /// CPU time used so far (clock ticks), as last sampled.
    cpu_ticks: u64,
}

impl Hub {
    fn start(chum: &PathBuf, store: &str, threads: u16) -> Result<Hub, String> {
        let mut child = Command::new(chum)
            .args([
                "serve",
                "--threads",
                &threads.to_string(),
                "--hub",
                "--store",
                store,
                "--listen",
                "ws://127.0.0.1:0",
                // Every simulated device connects from 127.0.0.1: one address with a
                // thousand peers behind it, as behind a load balancer.
                "--max-sessions",
                "4096",
                "--per-address",
                "2000",
            ])
            .env_remove("CHUM_STORE")
            .env(
                "RUST_LOG",
                std::env::var("CHUM_LOAD_HUB_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdout(Stdio::piped())
            .stderr(match std::env::var_os("CHUM_LOAD_HUB_LOG") {
                Some(_) => Stdio::inherit(),
                None => Stdio::null(),
            })
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", chum.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("no stdout")?)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if !line.starts_with("ws://") {
            return Err(format!("the hub did not start: {line:?}"));
        }
        Ok(Hub {
            child,
            url: line.trim().to_owned(),
            peak_rss_mb: 0.0,
            cpu_ticks: 0,
        })
    }

    /// Samples the process's peak resident memory (MiB) and CPU time.
    fn sample(&mut self) {
        if let Some(ticks) = cpu_ticks(self.child.id()) {
            self.cpu_ticks = ticks;
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        if let Some(kb) = status
            .lines()
            .find(|line| line.starts_with("VmHWM:"))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
        {
            self.peak_rss_mb = self.peak_rss_mb.max(kb / 1024.0);
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user and system, in clock ticks) process `pid` used so far, from `/proc`.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (in parentheses): state, ppid, …; utime and stime are the 12th
    // and 13th fields from the state.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Records, per process, the CPU time of the PostgreSQL cluster in `dir` (its postmaster and
/// every process it started) into `seen`; a process that exits keeps its last sample there.
fn sample_cluster_cpu(dir: &std::path::Path, seen: &mut HashMap<u32, u64>) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let dir = dir.display().to_string();
    let mut processes: Vec<(u32, u32)> = Vec::new(); // (pid, ppid) of postgres processes
    let mut postmaster = None;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if !stat.contains("(postgres)") {
            continue;
        }
        let ppid = stat
            .rfind(')')
            .and_then(|at| stat.get(at + 2..))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse::<u32>().ok())
            .unwrap_or(0);
        processes.push((pid, ppid));
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&dir) {
            postmaster = Some(pid);
        }
    }
    let Some(postmaster) = postmaster else {
        return;
    };
    for (pid, _) in processes
        .iter()
        .filter(|(pid, ppid)| *pid == postmaster || *ppid == postmaster)
    {
        if let Some(ticks) = cpu_ticks(*pid) {
            seen.insert(*pid, ticks);
        }
    }
}

struct Device {
    person: usize,
    instance: Instance,
    link: Option<Link>,
}

/// What devices received: (device, cid, when).
type Received = Arc<Mutex<Vec<(usize, Cid, Instant)>>>;

fn key(label: &str) -> SigningKey {
    SigningKey::from_bytes(blake3::hash(label.as_bytes()).as_bytes())
}

fn json(text: &str) -> Result<Value, String> {
    dagjson::from_str(text).map_err(|e| e.to_string())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The deliveries seen so far: (device, object).
fn arrived(received: &Received) -> Result<BTreeSet<(usize, Cid)>, String> {
    Ok(received
        .lock()
        .map_err(error)?
        .iter()
        .map(|(index, cid, _)| (*index, cid.clone()))
        .collect())
}

fn error(e: impl std::fmt::Display) -> String {
    e.to_string()
}

async fn run(config: Config) -> Result<bool, String> {
    let started = Instant::now();
    let cluster = TempCluster::start_with(&ClusterOptions {
        // CHUM_LOAD_FSYNC=off: what the disk's flushes cost (never for reported figures).
        fsync: std::env::var("CHUM_LOAD_FSYNC").as_deref() != Ok("off"),
        max_connections: 300,
        shared_buffers_mb: 256,
        // CHUM_LOAD_PG_STATS=1: what the hubs asked of the database, printed at the end.
        settings: if std::env::var_os("CHUM_LOAD_PG_STATS").is_some() {
            "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track_planning = on".into()
        } else {
            String::new()
        },
        tls: None,
    })?;
    if std::env::var_os("CHUM_LOAD_PG_STATS").is_some() {
        psql(&cluster, "CREATE EXTENSION pg_stat_statements")?;
    }
    let mut store = format!("{}&schema=hub", cluster.url("postgres"));
    if let Some(gap) = config.commit_gap_ms {
        store.push_str(&format!("&commit_gap_ms={gap}"));
    }
    let init = Command::new(&config.chum)
        .args(["init", "--store", &store])
        .output()
        .map_err(error)?;
    if !init.status.success() {
        return Err(format!(
            "chum init failed: {}",
            String::from_utf8_lossy(&init.stderr)
        ));
    }
    let hub_person = String::from_utf8_lossy(&init.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("person ").map(str::to_owned))
        .ok_or("chum init printed no person")?;
    let hub_person = PersonId(hub_person.trim().parse::<Cid>().map_err(error)?);
    let mut hubs = [
        Hub::start(&config.chum, &store, config.hub_threads)?,
        Hub::start(&config.chum, &store, config.hub_threads)?,
    ];
    let urls: Vec<String> = hubs.iter().map(|hub| hub.url.clone()).collect();
    eprintln!(
        "hub_load: PostgreSQL and 2 hubs up in {:.1} s ({} and {})",
        started.elapsed().as_secs_f64(),
        urls[0],
        urls[1]
    );

    // Persons and their devices; each person's conversation, granted to the hub and to the
    // next `grants` persons.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(error)?
        .as_millis() as u64;
    let person_keys: Vec<SigningKey> = (0..config.persons)
        .map(|p| key(&format!("person {p}")))
        .collect();
    let persons: Vec<PersonId> = person_keys
        .iter()
        .map(|k| PersonId::of_key(&k.verifying_key().to_bytes()))
        .collect();
    let mut devices: Vec<Device> = Vec::new();
    let mut feeds: Vec<Cid> = Vec::new();
    for (p, person_key) in person_keys.iter().enumerate() {
        let mut setup: Vec<(Cid, Vec<u8>)> = Vec::new();
        for d in 0..config.devices {
            let identity =
                Identity::from_keys(person_key.clone(), key(&format!("device {p} {d}")), now_ms)
                    .map_err(error)?;
            let instance = Instance::builder()
                .memory()
                .identity(identity)
                .use_hub(hub_person.clone())
                .open()
                .await
                .map_err(error)?;
            if d == 0 {
                let feed = instance
                    .put(&json(&format!(
                        r#"{{"$type":"Conversation","id":"feed {p}"}}"#
                    ))?)
                    .await
                    .map_err(error)?;
                let feed_id = feed.id().cloned().ok_or("a conversation has an ID")?;
                let mut written = vec![feed.cid().clone()];
                written.push(
                    instance
                        .grant(&feed_id, &hub_person)
                        .await
                        .map_err(error)?
                        .cid()
                        .clone(),
                );
                for g in 1..=config.grants {
                    let grantee = &persons[(p + g) % config.persons];
                    written.push(
                        instance
                            .grant(&feed_id, grantee)
                            .await
                            .map_err(error)?
                            .cid()
                            .clone(),
                    );
                }
                for cid in written {
                    let bytes = instance.store().get(&cid).await.map_err(error)?;
                    setup.push((cid, bytes));
                }
                feeds.push(feed_id);
            } else {
                // The person's other devices start with its conversation and grants.
                instance.store().put_many(&setup).await.map_err(error)?;
            }
            devices.push(Device {
                person: p,
                instance,
                link: None,
            });
        }
    }
    let feed_owner: HashMap<Cid, usize> = feeds
        .iter()
        .enumerate()
        .map(|(p, cid)| (cid.clone(), p))
        .collect();

    // Receivers: every device logs what arrives from peers.
    let received: Received = Arc::new(Mutex::new(Vec::new()));
    // Devices whose session with a hub finished its first sync.
    let synced: Arc<Mutex<BTreeSet<usize>>> = Arc::new(Mutex::new(BTreeSet::new()));
    for (index, device) in devices.iter().enumerate() {
        let mut events = device.instance.events();
        let received = Arc::clone(&received);
        let synced = Arc::clone(&synced);
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                if let Event::Synced { .. } = event
                    && let Ok(mut synced) = synced.lock()
                {
                    synced.insert(index);
                }
                if let Event::Stored {
                    cid,
                    origin: chum::Origin::Peer { .. },
                    ..
                } = event
                {
                    let at = Instant::now();
                    if let Ok(mut log) = received.lock() {
                        log.push((index, cid, at));
                    }
                }
            }
        });
    }

    // Sessions: first devices first (they bring the grants), then the rest.
    let connect_started = Instant::now();
    for first in [true, false] {
        for (index, device) in devices.iter_mut().enumerate() {
            let is_first = index % config.devices == 0;
            if is_first != first {
                continue;
            }
            let own = (device.person + index) % 2;
            let link = device
                .instance
                .connect_any(&[&urls[own], &urls[1 - own]])
                .map_err(error)?;
            device.link = Some(link);
        }
        wait_connected(&devices, Duration::from_secs(120)).await?;
        eprintln!(
            "hub_load: {} sessions connected after {:.1} s",
            connected(&devices),
            connect_started.elapsed().as_secs_f64()
        );
        if first {
            // Let the hub take the grants before the other devices ask for their views.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let sessions = connected(&devices);
    eprintln!(
        "hub_load: {sessions} sessions up in {:.1} s",
        connect_started.elapsed().as_secs_f64()
    );
    // Writing starts once every device holds its view (its first sync is done): latency is
    // measured on live traffic, not behind the initial syncs.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = synced.lock().map_err(error)?.len();
        if done == devices.len() {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {done} of {} devices finished their first sync within 120 s",
                devices.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "hub_load: every device synced its view {:.1} s after the first connection",
        connect_started.elapsed().as_secs_f64()
    );

    // Writing: `rate` messages a second, round the devices; the hub at index 0 is killed
    // half-way.
    let sent: Arc<Mutex<Vec<(usize, Cid, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    // Acknowledged writes: the object, written when, and how long its hub took to say it
    // stored it.
    let acknowledged: Arc<Mutex<Vec<(Cid, Instant, Duration)>>> = Arc::new(Mutex::new(Vec::new()));
    let total = (config.rate * config.seconds as f64).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / config.rate);
    for hub in hubs.iter_mut() {
        hub.sample();
    }
    let mut cluster_cpu: HashMap<u32, u64> = HashMap::new();
    sample_cluster_cpu(cluster.dir(), &mut cluster_cpu);
    let cpu_started = (
        hubs.iter().map(|hub| hub.cpu_ticks).sum::<u64>(),
        cpu_ticks(std::process::id()).unwrap_or(0),
        cluster_cpu.values().sum::<u64>(),
    );
    let write_started = Instant::now();
    let mut killed_at: Option<Instant> = None;
    let mut reconnected_after: Option<Duration> = None;
    let mut writers = tokio::task::JoinSet::new();
    for n in 0..total {
        let due = write_started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        if config.kill && killed_at.is_none() && n >= total / 2 {
            let hub = &mut hubs[0];
            hub.sample();
            // The database's CPU for the killed hub's connections, before they end.
            sample_cluster_cpu(cluster.dir(), &mut cluster_cpu);
            let _ = hub.child.kill();
            let _ = hub.child.wait();
            killed_at = Some(Instant::now());
            eprintln!("hub_load: hub 1 killed after {n} writes");
        }
        if let (Some(at), None) = (killed_at, reconnected_after)
            && connected(&devices) == devices.len()
            && at.elapsed() > Duration::from_millis(50)
        {
            reconnected_after = Some(at.elapsed());
        }
        if n % 200 == 0 {
            for hub in hubs.iter_mut().skip(usize::from(killed_at.is_some())) {
                hub.sample();
            }
            sample_cluster_cpu(cluster.dir(), &mut cluster_cpu);
        }
        let index = (n * 7919) % devices.len();
        let device = &devices[index];
        let instance = device.instance.clone();
        let feed = feeds[device.person].clone();
        let sent = Arc::clone(&sent);
        let acknowledged = Arc::clone(&acknowledged);
        writers.spawn(async move {
            let message = format!(
                r#"{{"$type":"Message","text":"message {n}","conversation":{{"/":"{feed}"}}}}"#
            );
            let Ok(value) = dagjson::from_str(&message) else {
                return;
            };
            let at = Instant::now();
            let Ok(written) = instance.create(&value).await else {
                return;
            };
            if let Ok(mut log) = sent.lock() {
                log.push((index, written.cid().clone(), at));
            }
            if tokio::time::timeout(Duration::from_secs(30), written.held_by_peer())
                .await
                .is_ok_and(|held| held.is_ok())
                && let Ok(mut log) = acknowledged.lock()
            {
                log.push((written.cid().clone(), at, at.elapsed()));
            }
        });
    }
    let writing = write_started.elapsed();
    for hub in hubs.iter_mut().skip(usize::from(killed_at.is_some())) {
        hub.sample();
    }
    // CPU seconds (Linux clock ticks are 1/100 s) while writing: hubs, this process (the
    // simulated devices), the database.
    let cpu_used = [
        hubs.iter()
            .map(|hub| hub.cpu_ticks)
            .sum::<u64>()
            .saturating_sub(cpu_started.0),
        cpu_ticks(std::process::id())
            .unwrap_or(0)
            .saturating_sub(cpu_started.1),
        {
            sample_cluster_cpu(cluster.dir(), &mut cluster_cpu);
            cluster_cpu
                .values()
                .sum::<u64>()
                .saturating_sub(cpu_started.2)
        },
    ]
    .map(|ticks| ticks as f64 / 100.0);
    // Every write's acknowledgement (or its 30 s timeout).
    while writers.join_next().await.is_some() {}
    if let (Some(at), None) = (killed_at, reconnected_after) {
        wait_connected(&devices, Duration::from_secs(60)).await?;
        reconnected_after = Some(at.elapsed());
    }

    // Deliveries: every device of the writer's person and of the persons it granted.
    let sent = sent.lock().map_err(error)?.clone();
    let mut expected: BTreeMap<(usize, Cid), Instant> = BTreeMap::new();
    for (writer, cid, at) in &sent {
        let owner = devices[*writer].person;
        for (index, device) in devices.iter().enumerate() {
            let granted =
                (1..=config.grants).any(|g| (owner + g) % config.persons == device.person);
            if index != *writer && (device.person == owner || granted) {
                expected.insert((index, cid.clone()), *at);
            }
        }
    }
    // Waits while deliveries still arrive (a saturated hub drains its queues after the
    // writing stops): done when none is missing, or none arrived for 20 s, or after 180 s.
    let settle = Instant::now();
    let mut progress = (usize::MAX, Instant::now());
    let missing = loop {
        let arrived = arrived(&received)?;
        let missing = expected
            .keys()
            .filter(|key| !arrived.contains(*key))
            .count();
        if missing < progress.0 {
            progress = (missing, Instant::now());
        }
        if missing == 0
            || progress.1.elapsed() > Duration::from_secs(20)
            || settle.elapsed() > Duration::from_secs(180)
        {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let settled_after = settle.elapsed();
    // Latency by when the object was written: before the kill (or the whole run without
    // one), while sessions moved to the other hub, and after every device was connected
    // again (the backlog of the move drains in these first seconds).
    let moving = killed_at.map(|at| (at, at + reconnected_after.unwrap_or_default()));
    let phase = |sent_at: Instant| match moving {
        Some((from, _)) if sent_at < from => Phase::Before,
        Some((_, to)) if sent_at <= to => Phase::Moving,
        Some(_) => Phase::After,
        None => Phase::Before,
    };
    let mut latencies: Vec<f64> = Vec::new();
    let mut before: Vec<f64> = Vec::new();
    let mut after: Vec<f64> = Vec::new();
    // p99 by the second (after the kill) the object was written in.
    let mut after_kill: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    let mut by_second: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for (index, cid, at) in received.lock().map_err(error)?.iter() {
        let Some(sent_at) = expected.get(&(*index, cid.clone())) else {
            continue;
        };
        let ms = at.saturating_duration_since(*sent_at).as_secs_f64() * 1e3;
        latencies.push(ms);
        match phase(*sent_at) {
            Phase::Before => before.push(ms),
            Phase::Moving => {}
            Phase::After => after.push(ms),
        }
        if let Some(kill) = killed_at
            && *sent_at >= kill
        {
            let second = sent_at.saturating_duration_since(kill).as_secs();
            after_kill.entry(second).or_default().push(ms);
        }
        let second = sent_at.saturating_duration_since(write_started).as_secs();
        by_second.entry(second).or_default().push(ms);
    }
    if std::env::var_os("CHUM_LOAD_TIMELINE").is_some() {
        for (second, mut ms) in by_second {
            ms.sort_by(f64::total_cmp);
            eprintln!(
                "hub_load: second {second:>3}: p50 {:>8.1} ms  p99 {:>8.1} ms  ({} deliveries)",
                percentile(&ms, 0.5),
                percentile(&ms, 0.99),
                ms.len()
            );
        }
    }
    // The first 8 seconds from the kill ("-": nothing written in that second).
    let after_kill: Vec<String> = (0..8u64)
        .map(|second| match after_kill.get_mut(&second) {
            Some(ms) => {
                ms.sort_by(f64::total_cmp);
                format!("{:.0}", percentile(ms, 0.99))
            }
            None => "-".to_owned(),
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    before.sort_by(f64::total_cmp);
    after.sort_by(f64::total_cmp);
    let deliveries = latencies.len();

    // Nothing acknowledged is missing from the database.
    let database = PostgresStore::open(&store).await.map_err(error)?;
    let (acknowledged, mut ack_ms): (Vec<Cid>, Vec<f64>) = acknowledged
        .lock()
        .map_err(error)?
        .iter()
        // Before the kill, as for deliveries.
        .map(|(cid, at, took)| {
            let before = phase(*at) == Phase::Before;
            (cid.clone(), before.then_some(took.as_secs_f64() * 1e3))
        })
        .fold(
            (Vec::new(), Vec::new()),
            |(mut cids, mut ms), (cid, took)| {
                cids.push(cid);
                ms.extend(took);
                (cids, ms)
            },
        );
    ack_ms.sort_by(f64::total_cmp);
    let mut lost = 0;
    for chunk in acknowledged.chunks(1_000) {
        let found = chum::Store::get_many(&database, chunk)
            .await
            .map_err(error)?;
        lost += found.iter().filter(|bytes| bytes.is_err()).count();
    }
    if missing > 0 {
        // What the missing deliveries have in common: who wrote them and when, who lacks
        // them, and whether the hubs hold them at all.
        let arrived = arrived(&received)?;
        let writers: HashMap<Cid, usize> = sent
            .iter()
            .map(|(writer, cid, _)| (cid.clone(), *writer))
            .collect();
        for ((device, cid), at) in expected
            .iter()
            .filter(|(key, _)| !arrived.contains(*key))
            .take(10)
        {
            let held = chum::Store::has(&database, cid).await.map_err(error)?;
            // Who the hubs recorded as its sender (their contribution records).
            let mut prefix = b"chum-access/hub/sender-of/".to_vec();
            prefix.push(u8::try_from(cid.as_bytes().len()).unwrap_or(u8::MAX));
            prefix.extend_from_slice(cid.as_bytes());
            let senders = chum::Store::local_keys(&database, &prefix)
                .await
                .map_err(error)?
                .len();
            eprintln!(
                "hub_load: missing at device {device} (person {}): {cid}, written by device {} \
                 {:.2} s into the writing{}; the database {}",
                devices[*device].person,
                writers.get(cid).copied().unwrap_or(usize::MAX),
                at.duration_since(write_started).as_secs_f64(),
                killed_at.map_or(String::new(), |kill| format!(
                    " (the kill: {:.2} s)",
                    kill.duration_since(write_started).as_secs_f64()
                )),
                if held { "holds it" } else { "does not hold it" },
            );
            let at_device = devices[*device].instance.has(cid).await.map_err(error)?;
            eprintln!(
                "hub_load:   senders recorded: {senders}; the device {} it",
                if at_device { "holds" } else { "does not hold" }
            );
        }
    }
    let database_mb = database.size_bytes().await.map_err(error)? as f64 / (1 << 20) as f64;
    if std::env::var_os("CHUM_LOAD_PG_STATS").is_some() {
        eprintln!(
            "{}",
            psql(
                &cluster,
                "SELECT calls, round(total_exec_time) AS ms, round(total_plan_time) AS plan_ms, \
                 rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query \
                 FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC LIMIT 30"
            )?
        );
    }

    // The leak check: every Message a device holds belongs to a conversation of its own
    // person or of a person that granted it that conversation.
    let mut leaks = 0;
    let mut checked = 0;
    for device in &devices {
        for cid in device.instance.of_type("Message").await.map_err(error)? {
            checked += 1;
            let value = device.instance.get(&cid).await.map_err(error)?;
            let conversation = value
                .as_map()
                .and_then(|map| map.get("conversation"))
                .and_then(Value::as_link)
                .and_then(|feed| feed_owner.get(feed).copied());
            let allowed = conversation.is_some_and(|owner| {
                owner == device.person
                    || (1..=config.grants).any(|g| (owner + g) % config.persons == device.person)
            });
            if !allowed {
                leaks += 1;
            }
        }
    }
    for hub in hubs.iter_mut().skip(usize::from(killed_at.is_some())) {
        hub.sample();
    }

    let written = sent.len();
    println!("# hubs on PostgreSQL under load");
    println!(
        "persons {} × devices {} = {} devices; {} grant(s) per person; 2 hub processes of {} thread(s); commit gap {}; fsync {}",
        config.persons,
        config.devices,
        devices.len(),
        config.grants,
        config.hub_threads,
        config
            .commit_gap_ms
            .map_or_else(|| "the default".to_owned(), |gap| format!("{gap} ms")),
        if std::env::var("CHUM_LOAD_FSYNC").as_deref() == Ok("off") {
            "OFF"
        } else {
            "on"
        }
    );
    println!("sessions held                 {sessions}");
    println!(
        "objects written               {written} in {:.1} s = {:.0} objects/s (asked {:.0}/s)",
        writing.as_secs_f64(),
        written as f64 / writing.as_secs_f64(),
        config.rate
    );
    println!(
        "deliveries through the hubs   {deliveries} = {:.0}/s over the writing time",
        deliveries as f64 / writing.as_secs_f64()
    );
    let part = if killed_at.is_some() {
        "before the kill"
    } else {
        "the whole run"
    };
    println!(
        "live latency device → device  {part}: p50 {:.1} ms, p99 {:.1} ms ({} deliveries)",
        percentile(&before, 0.5),
        percentile(&before, 0.99),
        before.len(),
    );
    if killed_at.is_some() {
        println!(
            "  after the kill               written once every device was connected again: \
             p50 {:.1} ms, p99 {:.1} ms ({} deliveries)",
            percentile(&after, 0.5),
            percentile(&after, 0.99),
            after.len(),
        );
        println!(
            "  p99 by second from the kill  {} ms",
            after_kill.join(", ")
        );
        println!(
            "  all, the kill included       p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or(f64::NAN)
        );
    }
    println!(
        "acknowledgement latency       {part}: p50 {:.1} ms, p99 {:.1} ms (a device's write \
         until its hub said it stored it)",
        percentile(&ack_ms, 0.5),
        percentile(&ack_ms, 0.99),
    );
    match reconnected_after {
        Some(after) => println!(
            "hub killed mid-run            every device connected again {:.2} s later",
            after.as_secs_f64()
        ),
        None => println!("hub killed mid-run            no (--no-kill)"),
    }
    println!(
        "hub peak RSS                  {}",
        hubs.iter()
            .map(|hub| format!("{:.0} MiB", hub.peak_rss_mb))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let per_message = |seconds: f64| seconds * 1000.0 / total.max(1) as f64;
    println!(
        "CPU while writing             hubs {:.1} s, devices {:.1} s, PostgreSQL {:.1} s of {:.1} s \
         on {} cores = {:.2} / {:.2} / {:.2} ms a message",
        cpu_used[0],
        cpu_used[1],
        cpu_used[2],
        writing.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        per_message(cpu_used[0]),
        per_message(cpu_used[1]),
        per_message(cpu_used[2]),
    );
    println!("database size                 {database_mb:.1} MiB");
    println!(
        "acknowledged objects lost     {lost} of {}",
        acknowledged.len()
    );
    println!(
        "deliveries missing            {missing} of {} (settled {:.1} s after the writing)",
        expected.len(),
        settled_after.as_secs_f64()
    );
    println!("leak check                    {leaks} leaks in {checked} messages held");
    for device in &devices {
        if let Some(link) = &device.link {
            link.close().await;
        }
    }
    Ok(leaks == 0 && lost == 0 && missing == 0)
}

fn connected(devices: &[Device]) -> usize {
    devices
        .iter()
        .filter(|device| {
            device
                .link
                .as_ref()
                .is_some_and(|link| matches!(link.state(), LinkState::Connected { .. }))
        })
        .count()
}

async fn wait_connected(devices: &[Device], within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let wanted = devices.iter().filter(|d| d.link.is_some()).count();
    loop {
        let up = connected(devices);
        if up == wanted {
            return Ok(());
        }
        if Instant::now() > deadline {
            let mut states: BTreeMap<String, usize> = BTreeMap::new();
            for device in devices {
                if let Some(link) = &device.link {
                    let state = match link.state() {
                        LinkState::Reconnecting { error, .. } => format!("reconnecting: {error}"),
                        other => format!("{other:?}").chars().take(40).collect(),
                    };
                    *states.entry(state).or_default() += 1;
                }
            }
            return Err(format!(
                "only {up} of {wanted} sessions connected within {within:?}: {states:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn main() -> std::process::ExitCode {
    let config = match Config::parse() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("hub_load: {message}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("hub_load: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(config));
    runtime.shutdown_timeout(Duration::from_millis(500));
    match outcome {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!(
                "hub_load: FAILED (a leak, a lost acknowledged object or a missing delivery)"
            );
            std::process::ExitCode::FAILURE
        }
        Err(message) => {
            eprintln!("hub_load: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs `sql` in the cluster's `postgres` database with `psql`; its output.
fn psql(cluster: &TempCluster, sql: &str) -> Result<String, String> {
    let bin = chum_store_postgres::cluster::find_bin()?;
    let output = Command::new(bin.join("psql"))
        .args(["-h", &cluster.dir().display().to_string()])
        .args([
            "-p",
            &cluster.port().to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-c", sql])
        .output()
        .map_err(error)?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
