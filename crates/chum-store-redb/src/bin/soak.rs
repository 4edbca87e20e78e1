//! `chum-store-soak`: kill -9 durability rounds for the redb store.
//!
//! - `chum-store-soak writer DIR SEED` writes batches of objects into `DIR/store.redb` forever,
//!   printing `acked <cid>` for each object once its batch has committed.
//! - `chum-store-soak soak N` runs N rounds: start a writer, kill it with SIGKILL at a random
//!   moment, reopen the store, and check that every acknowledged object is there and verifies,
//!   the store opens cleanly, and its count and indexes agree with its contents. It ends with
//!   the line `N passed, M failed`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chum_crdt::{InstanceId, Timestamp, Version};
use chum_object::{Cid, Map, Object, Value};
use chum_store::{Query, Store};
use chum_store_redb::{RedbStore, count_by_scan};
use futures::executor::block_on;

fn next(rng: &mut u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

fn writer(dir: &str, seed: u64) -> Result<(), String> {
    let store =
        RedbStore::open(std::path::Path::new(dir).join("store.redb")).map_err(|e| e.to_string())?;
    let mut rng = seed | 1;
    let of = Object::from_value(&Value::Map(
        [("$type", "Contact"), ("email", "soak@example.org")].into(),
    ))
    .map_err(|e| e.to_string())?
    .cid()
    .clone();
    let mut heads: Vec<Cid> = Vec::new();
    let stdout = std::io::stdout();
    for batch_number in 0u64.. {
        let size = 1 + next(&mut rng) % 20;
        let mut batch = Vec::new();
        for i in 0..size {
            let object = if next(&mut rng).is_multiple_of(5) {
                let body: Map =
                    [("name", Value::Text(format!("v{batch_number}.{i}").into()))].into();
                let version = Version::new(
                    of.clone(),
                    heads.clone(),
                    Timestamp::new(batch_number, i as u32),
                    InstanceId([7; 32]),
                    body,
                );
                let object = version.to_object().map_err(|e| e.to_string())?;
                heads = vec![object.cid().clone()];
                object
            } else {
                let mut map = Map::new();
                map.insert("$type", "Message");
                map.insert(
                    "text",
                    format!(
                        "seed {seed} batch {batch_number} item {i} {}",
                        next(&mut rng)
                    ),
                );
                Object::from_value(&Value::Map(map)).map_err(|e| e.to_string())?
            };
            batch.push((object.cid().clone(), object.into_bytes()));
        }
        block_on(store.put_many(&batch)).map_err(|e| e.to_string())?;
        let mut out = stdout.lock();
        for (cid, _) in &batch {
            writeln!(out, "acked {cid}").map_err(|e| e.to_string())?;
        }
        out.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// One round; `Ok(acknowledged count)` when every check passes.
fn round(seed: u64) -> Result<usize, String> {
    let dir = std::env::temp_dir().join(format!("chum-soak-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["writer", &dir.display().to_string(), &seed.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = {
        let acked = Arc::clone(&acked);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(cid) = line.strip_prefix("acked ") {
                    acked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(cid.to_owned());
                }
            }
        })
    };
    // Wait for the first acknowledgement (a slow machine may take a while to start the writer),
    // then kill at a random moment after it.
    let started = std::time::Instant::now();
    while acked.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the writer acknowledged nothing within 30 s".to_owned());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the writer stopped by itself before acknowledging anything ({status})"
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    std::thread::sleep(Duration::from_millis(next(&mut rng) % 400));
    if let Ok(Some(status)) = child.try_wait() {
        return Err(format!(
            "the writer stopped by itself before the kill ({status})"
        ));
    }
    child.kill().map_err(|e| e.to_string())?; // SIGKILL on Unix
    let _ = child.wait();
    let _ = reader.join();
    let acked = acked.lock().unwrap_or_else(|p| p.into_inner()).clone();

    let result = if acked.is_empty() {
        Err("the writer acknowledged nothing before the kill".to_owned())
    } else {
        check(&dir, &acked)
    };
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|()| acked.len())
}

fn check(dir: &std::path::Path, acked: &[String]) -> Result<(), String> {
    let store =
        RedbStore::open(dir.join("store.redb")).map_err(|e| format!("reopen failed: {e}"))?;
    for text in acked {
        let cid: Cid = text
            .parse()
            .map_err(|e| format!("bad acked line {text}: {e}"))?;
        let bytes =
            block_on(store.get(&cid)).map_err(|e| format!("acknowledged {cid} lost: {e}"))?;
        if !cid.verify(&bytes).unwrap_or(false) {
            return Err(format!("{cid} does not verify"));
        }
    }
    let count = block_on(store.count()).map_err(|e| e.to_string())?;
    let scanned = count_by_scan(&store).map_err(|e| e.to_string())?;
    if count != scanned {
        return Err(format!("stored count {count} but {scanned} objects"));
    }
    if (count as usize) < acked.len() {
        return Err(format!("{count} objects but {} acknowledged", acked.len()));
    }
    let messages = block_on(store.query(Query::ByType {
        type_name: "Message",
        after: None,
        limit: usize::MAX,
    }))
    .map_err(|e| e.to_string())?;
    let versions = block_on(store.query(Query::ByType {
        type_name: "Version",
        after: None,
        limit: usize::MAX,
    }))
    .map_err(|e| e.to_string())?;
    if messages.len() + versions.len() != count as usize {
        return Err(format!(
            "type index holds {} entries for {count} objects",
            messages.len() + versions.len()
        ));
    }
    Ok(())
}

fn soak(rounds: u64) -> ExitCode {
    let (mut passed, mut failed) = (0u64, 0u64);
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    for n in 0..rounds {
        let seed = base.wrapping_add(n.wrapping_mul(7919)) | 1;
        match round(seed) {
            Ok(acked) => {
                passed += 1;
                eprintln!("round {n} (seed {seed}): ok, {acked} acknowledged objects all present");
            }
            Err(error) => {
                failed += 1;
                eprintln!("round {n} (seed {seed}): FAILED: {error}");
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["writer", dir, seed] => match seed
            .parse::<u64>()
            .map_err(|e| e.to_string())
            .and_then(|seed| writer(dir, seed))
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("writer: {error}");
                ExitCode::FAILURE
            }
        },
        ["soak", rounds] => match rounds.parse() {
            Ok(rounds) => soak(rounds),
            Err(_) => {
                eprintln!("usage: chum-store-soak soak N");
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!("usage: chum-store-soak soak N | chum-store-soak writer DIR SEED");
            ExitCode::from(2)
        }
    }
}
