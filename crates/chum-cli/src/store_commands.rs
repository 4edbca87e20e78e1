//! The commands that work on a store, run against an open [`Instance`] — in this process, or
//! inside a running `chum serve` that holds the store (see `api.rs`).

use std::str::FromStr;
use std::time::Duration;

use chum::{Cid, Event, Instance, Origin, PersonId, Value, dagjson};

/// Where a command's output goes: this process's stdout/stderr, or a client's.
pub trait Sink: Send {
    /// Results (stdout).
    fn out(&mut self, bytes: &[u8]);
    /// Messages (stderr).
    fn err(&mut self, text: &str);
}

/// This process's stdout and stderr.
pub struct Terminal;

impl Sink for Terminal {
    fn out(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(bytes);
        let _ = stdout.flush();
    }
    fn err(&mut self, text: &str) {
        eprintln!("{text}");
    }
}

/// A store command, as parsed (and as forwarded to a running server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreCommand {
    Invite {
        ttl_s: u64,
        uses: u32,
        address: Option<String>,
    },
    Whoami,
    Put,
    Import,
    Get(String),
    Ls(Option<String>),
    Id,
    Show(String),
    Delete(String),
    Sync {
        url: String,
        timeout_s: u64,
    },
    Grant {
        target: String,
        to: String,
    },
    Revoke(String),
    Verify,
    Stats,
}

impl StoreCommand {
    /// Whether the command reads an input (FILE or stdin).
    pub fn takes_input(&self) -> bool {
        matches!(
            self,
            StoreCommand::Put | StoreCommand::Import | StoreCommand::Id
        )
    }

    /// The command as words, for forwarding to a server.
    pub fn to_words(&self) -> Vec<String> {
        let mut words: Vec<String> = Vec::new();
        let mut push = |word: &str| words.push(word.to_owned());
        match self {
            StoreCommand::Invite {
                ttl_s,
                uses,
                address,
            } => {
                push("invite");
                push(&ttl_s.to_string());
                push(&uses.to_string());
                if let Some(address) = address {
                    push(address);
                }
            }
            StoreCommand::Whoami => push("whoami"),
            StoreCommand::Put => push("put"),
            StoreCommand::Import => push("import"),
            StoreCommand::Get(cid) => {
                push("get");
                push(cid);
            }
            StoreCommand::Ls(type_name) => {
                push("ls");
                if let Some(type_name) = type_name {
                    push(type_name);
                }
            }
            StoreCommand::Id => push("id"),
            StoreCommand::Show(id) => {
                push("show");
                push(id);
            }
            StoreCommand::Delete(id) => {
                push("delete");
                push(id);
            }
            StoreCommand::Sync { url, timeout_s } => {
                push("sync");
                push(url);
                push(&timeout_s.to_string());
            }
            StoreCommand::Grant { target, to } => {
                push("grant");
                push(target);
                push(to);
            }
            StoreCommand::Revoke(grant) => {
                push("revoke");
                push(grant);
            }
            StoreCommand::Verify => push("verify"),
            StoreCommand::Stats => push("stats"),
        }
        words
    }

    /// Parses [`StoreCommand::to_words`].
    pub fn from_words(words: &[String]) -> Option<StoreCommand> {
        let word = |i: usize| words.get(i).cloned();
        let number = |i: usize| word(i)?.parse::<u64>().ok();
        Some(match words.first()?.as_str() {
            "invite" => StoreCommand::Invite {
                ttl_s: number(1)?,
                uses: u32::try_from(number(2)?).ok()?,
                address: word(3),
            },
            "whoami" => StoreCommand::Whoami,
            "put" => StoreCommand::Put,
            "import" => StoreCommand::Import,
            "get" => StoreCommand::Get(word(1)?),
            "ls" => StoreCommand::Ls(word(1)),
            "id" => StoreCommand::Id,
            "show" => StoreCommand::Show(word(1)?),
            "delete" => StoreCommand::Delete(word(1)?),
            "sync" => StoreCommand::Sync {
                url: word(1)?,
                timeout_s: number(2)?,
            },
            "grant" => StoreCommand::Grant {
                target: word(1)?,
                to: word(2)?,
            },
            "revoke" => StoreCommand::Revoke(word(1)?),
            "verify" => StoreCommand::Verify,
            "stats" => StoreCommand::Stats,
            _ => return None,
        })
    }
}

fn cid(text: &str) -> Result<Cid, String> {
    Cid::from_str(text.trim()).map_err(|error| format!("not a CID: {error}"))
}

fn parse_object(input: &[u8]) -> Result<Value, String> {
    dagjson::from_slice(input).map_err(|error| format!("not a DAG-JSON object: {error}"))
}

fn line(sink: &mut dyn Sink, text: impl std::fmt::Display) {
    sink.out(format!("{text}\n").as_bytes());
}

fn json(value: &Value) -> Result<String, String> {
    dagjson::to_string(value).map_err(|error| error.to_string())
}

/// Objects committed together by `import`.
const IMPORT_BATCH: usize = 1_000;

/// Runs a store command; returns the exit code (0 success, 1 failure).
pub async fn execute(
    instance: &Instance,
    command: StoreCommand,
    input: Option<Vec<u8>>,
    sink: &mut dyn Sink,
) -> u8 {
    match run(instance, command, input.unwrap_or_default(), sink).await {
        Ok(()) => 0,
        Err(message) => {
            sink.err(&format!("chum: error: {message}"));
            1
        }
    }
}

async fn run(
    instance: &Instance,
    command: StoreCommand,
    input: Vec<u8>,
    sink: &mut dyn Sink,
) -> Result<(), String> {
    let fail = |error: chum::Error| error.to_string();
    match command {
        StoreCommand::Whoami => {
            line(sink, format!("person {}", instance.person()));
            line(sink, format!("instance {}", instance.instance_id()));
            for url in instance.listening() {
                line(sink, format!("listening {url}"));
            }
        }
        StoreCommand::Invite {
            ttl_s,
            uses,
            address,
        } => {
            let address = address.or_else(|| instance.listening().into_iter().next());
            if address.is_none() {
                sink.err(
                    "chum: note: no server is running for this store and no --address was given: \
                     the invitation names no address (run `chum serve` and invite again, or join \
                     with --address)",
                );
            }
            let mut options = chum::InviteOptions::new(Duration::from_secs(ttl_s)).uses(uses);
            if let Some(address) = address {
                options = options.address(address);
            }
            let invitation = instance
                .invite_with(options)
                .await
                .map_err(|error| error.to_string())?;
            line(sink, invitation.to_text());
        }
        StoreCommand::Put => {
            let value = parse_object(&input)?;
            let written = instance.put(&value).await.map_err(fail)?;
            written.durable().await.map_err(fail)?;
            line(sink, written.cid());
        }
        StoreCommand::Import => {
            let text =
                String::from_utf8(input).map_err(|_| "the input is not UTF-8".to_string())?;
            let mut batch: Vec<Value> = Vec::new();
            for (number, raw) in text.lines().enumerate() {
                let raw = raw.trim();
                if raw.is_empty() {
                    continue;
                }
                let value = dagjson::from_str(raw)
                    .map_err(|error| format!("line {}: {error}", number + 1))?;
                let versioned = value
                    .type_name()
                    .and_then(|name| instance.recipe(name))
                    .is_some_and(|recipe| recipe.is_versioned());
                if versioned {
                    flush(instance, &mut batch, sink).await?;
                    let written = instance
                        .put(&value)
                        .await
                        .map_err(|error| format!("line {}: {error}", number + 1))?;
                    line(sink, written.cid());
                } else {
                    batch.push(value);
                    if batch.len() >= IMPORT_BATCH {
                        flush(instance, &mut batch, sink).await?;
                    }
                }
            }
            flush(instance, &mut batch, sink).await?;
        }
        StoreCommand::Get(text) => {
            let value = instance.get(&cid(&text)?).await.map_err(fail)?;
            line(sink, json(&value)?);
        }
        StoreCommand::Ls(type_name) => {
            let cids = match type_name {
                Some(type_name) => instance.of_type(&type_name).await,
                None => instance.list().await,
            }
            .map_err(fail)?;
            let mut out = String::with_capacity(cids.len() * 64);
            for cid in cids {
                out.push_str(&cid.to_string());
                out.push('\n');
            }
            sink.out(out.as_bytes());
        }
        StoreCommand::Id => {
            let value = parse_object(&input)?;
            line(sink, instance.id_of(&value).map_err(fail)?);
        }
        StoreCommand::Show(text) => match instance.state(&cid(&text)?).await.map_err(fail)? {
            Some(value) => line(sink, json(&value)?),
            None => {
                return Err(format!(
                    "{} has no current state (deleted, or no versions)",
                    text.trim()
                ));
            }
        },
        StoreCommand::Delete(text) => {
            let written = instance.delete(&cid(&text)?).await.map_err(fail)?;
            line(sink, written.cid());
        }
        StoreCommand::Sync { url, timeout_s } => {
            sync(instance, &url, timeout_s, sink).await?;
        }
        StoreCommand::Grant { target, to } => {
            let person =
                PersonId::from_str(to.trim().trim_start_matches("person ")).map_err(|error| {
                    format!("not a person id (as `chum whoami` prints it): {error}")
                })?;
            let written = instance
                .grant(&cid(&target)?, &person)
                .await
                .map_err(fail)?;
            line(sink, written.cid());
        }
        StoreCommand::Revoke(grant) => {
            let written = instance.revoke_grant(&cid(&grant)?).await.map_err(fail)?;
            line(sink, written.cid());
        }
        StoreCommand::Verify => {
            let mut corrupt = Vec::new();
            let all = instance.list().await.map_err(fail)?;
            for cid in &all {
                match instance.store().get(cid).await {
                    Ok(_) | Err(chum::StoreError::NotFound(_)) => {}
                    Err(_) => corrupt.push(cid.clone()),
                }
            }
            if corrupt.is_empty() {
                sink.err(&format!(
                    "chum: {} objects verified, none corrupt",
                    all.len()
                ));
            } else {
                for cid in &corrupt {
                    line(sink, cid);
                }
                return Err(format!(
                    "{} of {} objects are corrupt (listed on stdout)",
                    corrupt.len(),
                    all.len()
                ));
            }
        }
        StoreCommand::Stats => {
            let store = instance.store();
            let total = store.count().await.map_err(|error| error.to_string())?;
            let digest = store
                .sync_digest()
                .await
                .map_err(|error| error.to_string())?;
            line(sink, format!("objects {total}"));
            line(sink, format!("shared {}", digest.summary.count));
            line(
                sink,
                format!("local {}", total.saturating_sub(digest.summary.count)),
            );
            let mut types: Vec<(String, usize)> = Vec::new();
            for name in ["Message", "Conversation", "Contact", "Version", "Access"] {
                let count = instance.of_type(name).await.map_err(fail)?.len();
                if count > 0 {
                    types.push((name.to_owned(), count));
                }
            }
            for (name, count) in types {
                line(sink, format!("type {name} {count}"));
            }
            let peers = instance.peers().await.map_err(|error| error.to_string())?;
            line(sink, format!("peers {}", peers.len()));
            for url in instance.listening() {
                line(sink, format!("listening {url}"));
            }
        }
    }
    Ok(())
}

async fn flush(
    instance: &Instance,
    batch: &mut Vec<Value>,
    sink: &mut dyn Sink,
) -> Result<(), String> {
    if batch.is_empty() {
        return Ok(());
    }
    let values = std::mem::take(batch);
    let written = instance
        .put_many(&values)
        .await
        .map_err(|error| error.to_string())?;
    let mut out = String::new();
    for written in written {
        out.push_str(&written.cid().to_string());
        out.push('\n');
    }
    sink.out(out.as_bytes());
    Ok(())
}

async fn sync(
    instance: &Instance,
    url: &str,
    timeout_s: u64,
    sink: &mut dyn Sink,
) -> Result<(), String> {
    use std::io::IsTerminal;
    let mut events = instance.events();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(format!("syncing with {url}"));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let progress = async {
        let mut received = 0u64;
        let mut acknowledged = 0u64;
        while let Some(event) = events.next().await {
            match event {
                Event::Stored {
                    origin: Origin::Peer { .. } | Origin::Unknown,
                    ..
                } => received += 1,
                Event::HeldByPeer { count, .. } => acknowledged += count as u64,
                _ => continue,
            }
            if let Some(bar) = &bar {
                bar.set_message(format!(
                    "syncing with {url}: {received} received, {acknowledged} acknowledged by the peer"
                ));
            }
        }
    };
    let report = tokio::select! {
        report = instance.sync_once(url, Duration::from_secs(timeout_s)) => report,
        () = progress => return Err("the instance closed".into()),
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = report.map_err(|error| error.to_string())?;
    sink.err(&format!(
        "chum: synced with {url}: {} received, {} sent and acknowledged",
        report.received, report.sent
    ));
    Ok(())
}
