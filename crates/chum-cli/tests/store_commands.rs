//! The store commands as real processes on 127.0.0.1 ports: init and pairing, put/get/ls,
//! versioned objects, serve + sync, a server killed mid-sync, another person, garbage.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{chum, ok};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("chum-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn store(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `chum serve`, killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(store: &str, listen: &str) -> Server {
        let (child, url) = common::serve(store, listen, &[]);
        Server { child, url }
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn messages(from: &str, range: std::ops::Range<usize>) -> Vec<u8> {
    let mut out = String::new();
    for i in range {
        out.push_str(&format!(
            "{{\"$type\":\"Message\",\"text\":\"message {i} from {from}\"}}\n"
        ));
    }
    out.into_bytes()
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

#[test]
fn put_get_ls_and_versioned_objects_on_one_store() {
    let dir = TempDir::new("one");
    let store = dir.store("a");
    let whoami = ok(&["init", "--store", &store], b"");
    assert!(
        whoami.starts_with("person b") && whoami.contains("\ninstance b"),
        "{whoami}"
    );
    assert!(
        !chum(&["init", "--store", &store], b"").status.success(),
        "init twice"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&store).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the store (and its keys) is private: {mode:o}"
        );
    }
    // --store after the command, or in CHUM_STORE.
    let message = br#"{"$type":"Message","text":"hello"}"#;
    let cid = ok(&["put", "--store", &store], message);
    assert_eq!(
        cid,
        ok(&["object", "hash"], message),
        "stored exactly as given"
    );
    let via_env = Command::new(env!("CARGO_BIN_EXE_chum"))
        .args(["get", cid.trim()])
        .env("CHUM_STORE", &store)
        .output()
        .unwrap();
    assert!(via_env.status.success());
    assert_eq!(
        String::from_utf8(via_env.stdout).unwrap().trim(),
        r#"{"$type":"Message","text":"hello"}"#
    );
    assert!(ok(&["--store", &store, "ls"], b"").contains(cid.trim()));
    assert_eq!(
        ok(&["--store", &store, "ls", "--type", "Message"], b""),
        cid
    );
    // An unknown CID and a malformed one exit non-zero with a message.
    let unknown = chum(
        &[
            "get",
            "bafyr4ihhu7ye7ffavepke4we236iykkruow542gksayxfz6ic2c7fwcthq",
            "--store",
            &store,
        ],
        b"",
    );
    assert!(!unknown.status.success() && unknown.stdout.is_empty());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not found"));
    assert!(
        !chum(&["get", "nonsense", "--store", &store], b"")
            .status
            .success()
    );
    // Versioned: put makes versions, show gives the merged object, delete tombstones it.
    let contact = br#"{"$type":"Contact","email":"ann@example.org","name":"Ann"}"#;
    ok(&["put", "--store", &store], contact);
    ok(
        &["put", "--store", &store],
        br#"{"$type":"Contact","email":"ann@example.org","phone":"555"}"#,
    );
    let id = ok(
        &["id", "--store", &store],
        br#"{"$type":"Contact","email":"ann@example.org"}"#,
    );
    let shown = ok(&["show", id.trim(), "--store", &store], b"");
    assert_eq!(
        shown.trim(),
        r#"{"$type":"Contact","email":"ann@example.org","name":"Ann","phone":"555"}"#
    );
    ok(&["delete", id.trim(), "--store", &store], b"");
    assert!(
        !chum(&["show", id.trim(), "--store", &store], b"")
            .status
            .success()
    );
    // import: one CID a line; bad lines are named.
    let imported = ok(&["import", "--store", &store], &messages("import", 0..50));
    assert_eq!(imported.lines().count(), 50);
    let bad = chum(
        &["import", "--store", &store],
        b"{\"$type\":\"Message\",\"text\":\"ok\"}\n{nope\n",
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("line 2"));
    assert!(ok(&["verify", "--store", &store], b"").is_empty());
    // A store that does not exist is a clear error, not a new store.
    let missing = chum(&["ls", "--store", &dir.store("missing")], b"");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("chum init"));
}

#[test]
fn serve_and_sync_pair_and_converge_while_commands_keep_working() {
    let dir = TempDir::new("pair");
    let (main, laptop) = (dir.store("main"), dir.store("laptop"));
    ok(&["init", "--store", &main], b"");
    ok(&["import", "--store", &main], &messages("main", 0..300));
    let server = Server::start(&main, "ws://127.0.0.1:0");
    // The server holds the store; other commands go through it.
    let during = ok(
        &["put", "--store", &main],
        br#"{"$type":"Message","text":"during serve"}"#,
    );
    assert!(ok(&["ls", "--store", &main], b"").contains(during.trim()));
    let whoami = ok(&["whoami", "--store", &main], b"");
    assert!(
        whoami.contains(&format!("listening {}", server.url)),
        "{whoami}"
    );
    let invitation = ok(&["invite", "--store", &main], b"");
    let invitation = invitation.lines().last().unwrap();
    let joined = ok(&["init", "--store", &laptop, "--join", invitation], b"");
    assert_eq!(joined.lines().next(), whoami.lines().next(), "same person");
    ok(&["import", "--store", &laptop], &messages("laptop", 0..200));
    ok(&["sync", &server.url, "--store", &laptop], b"");
    assert_eq!(
        lines(&ok(&["ls", "--store", &main], b"")),
        lines(&ok(&["ls", "--store", &laptop], b""))
    );
    // The invitation was for one instance.
    let other = chum(
        &["init", "--store", &dir.store("thief"), "--join", invitation],
        b"",
    );
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("already used"));
    assert!(!Path::new(&dir.store("thief")).join("chum.redb").exists());
    drop(server);
}

#[test]
fn a_server_killed_mid_sync_restarts_and_the_union_completes() {
    let dir = TempDir::new("kill");
    let (main, laptop) = (dir.store("main"), dir.store("laptop"));
    ok(&["init", "--store", &main], b"");
    ok(&["import", "--store", &main], &messages("main", 0..20_000));
    let server = Server::start(&main, "tcp://127.0.0.1:0");
    let url = server.url.clone();
    let invitation = ok(&["invite", "--store", &main], b"");
    ok(
        &[
            "init",
            "--store",
            &laptop,
            "--join",
            invitation.lines().last().unwrap(),
        ],
        b"",
    );
    ok(
        &["import", "--store", &laptop],
        &messages("laptop", 0..5_000),
    );
    // Sync, and kill the server with SIGKILL while it runs.
    let mut sync = Command::new(env!("CARGO_BIN_EXE_chum"))
        .args(["sync", &url, "--store", &laptop])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    server.kill();
    let started = Instant::now();
    let status = sync.wait().unwrap();
    // The sync ended by then or fails within seconds; either way it does not hang.
    assert!(started.elapsed() < Duration::from_secs(20));
    let _ = status;
    // Nothing the killed server left stops the next command, nor a new server on its port.
    ok(&["ls", "--store", &main], b"");
    let port = url.rsplit(':').next().unwrap();
    let server = Server::start(&main, &format!("tcp://127.0.0.1:{port}"));
    assert_eq!(server.url, url, "the same port binds at once");
    ok(&["sync", &url, "--store", &laptop], b"");
    let union = lines(&ok(&["ls", "--store", &main], b""));
    assert_eq!(union, lines(&ok(&["ls", "--store", &laptop], b"")));
    assert!(union.len() >= 25_000, "{}", union.len());
    drop(server);
    for store in [&main, &laptop] {
        let verify = chum(&["verify", "--store", store], b"");
        assert!(verify.status.success() && verify.stdout.is_empty());
    }
}

#[test]
fn another_person_gets_only_what_is_granted_and_garbage_does_not_hurt() {
    let dir = TempDir::new("grant");
    let (main, stranger) = (dir.store("main"), dir.store("stranger"));
    ok(&["init", "--store", &main], b"");
    let private = ok(&["import", "--store", &main], &messages("main", 0..100));
    let conversation = ok(
        &["put", "--store", &main],
        br#"{"$type":"Conversation","id":"shared","title":"hi"}"#,
    );
    let chat = ok(
        &["id", "--store", &main],
        br#"{"$type":"Conversation","id":"shared"}"#,
    );
    let entry = format!(
        r#"{{"$type":"Message","text":"for the stranger","conversation":{{"/":"{}"}}}}"#,
        chat.trim()
    );
    let entry = ok(&["put", "--store", &main], entry.as_bytes());
    let server = Server::start(&main, "ws://127.0.0.1:0");
    ok(&["init", "--store", &stranger], b"");
    let person = ok(&["whoami", "--store", &stranger], b"");
    let person = person.lines().next().unwrap().trim_start_matches("person ");

    // Garbage on the server's port: it stays up.
    let address = server.url.trim_start_matches("ws://");
    for garbage in [&b"GET / HTTP/1.1\r\n\r\n"[..], &[0xff; 4096][..], b""] {
        if let Ok(mut stream) = std::net::TcpStream::connect(address) {
            let _ = stream.write_all(garbage);
        }
    }

    // Without a grant: nothing of main's data.
    ok(&["sync", &server.url, "--store", &stranger], b"");
    let held = ok(&["ls", "--store", &stranger], b"");
    for cid in private.lines().chain([entry.trim(), conversation.trim()]) {
        assert!(
            !held.contains(cid),
            "{cid} reached a person without a grant"
        );
    }
    // With a grant on the conversation: the conversation and its entry, still nothing private.
    let grant = ok(
        &["grant", chat.trim(), "--to", person, "--store", &main],
        b"",
    );
    ok(&["sync", &server.url, "--store", &stranger], b"");
    let held = ok(&["ls", "--store", &stranger], b"");
    assert!(held.contains(entry.trim()) && held.contains(grant.trim()));
    assert!(held.contains(conversation.trim()));
    for cid in private.lines() {
        assert!(!held.contains(cid), "a private object reached the grantee");
    }
    let shown = ok(&["show", chat.trim(), "--store", &stranger], b"");
    assert!(shown.contains("\"title\":\"hi\""), "{shown}");
    // Revoked: a new entry does not arrive.
    ok(&["revoke", grant.trim(), "--store", &main], b"");
    let later = format!(
        r#"{{"$type":"Message","text":"after revoking","conversation":{{"/":"{}"}}}}"#,
        chat.trim()
    );
    let later = ok(&["put", "--store", &main], later.as_bytes());
    ok(&["sync", &server.url, "--store", &stranger], b"");
    assert!(!ok(&["ls", "--store", &stranger], b"").contains(later.trim()));
    drop(server);
}

#[test]
fn chum_put_of_a_recipe_registers_the_type_here_and_on_paired_instances() {
    let dir = TempDir::new("recipes");
    let (main, laptop) = (dir.store("main"), dir.store("laptop"));
    ok(&["init", "--store", &main], b"");
    let note = br#"{"$type":"Recipe","name":"Note","version":1,"strategy":"field-merge","fields":[{"name":"id","kind":"text","id":true},{"name":"title","kind":"text"}]}"#;
    let recipe = ok(&["put", "--store", &main], note);
    assert!(recipe.trim().starts_with("bafy"), "{recipe}");
    ok(
        &["put", "--store", &main],
        br#"{"$type":"Note","id":"n1","title":"first"}"#,
    );
    let id = ok(&["id", "--store", &main], br#"{"$type":"Note","id":"n1"}"#);
    let shown = ok(&["show", id.trim(), "--store", &main], b"");
    assert!(shown.contains(r#""title":"first""#), "{shown}");
    // The type's rules hold: a new note needs its title.
    let refused = chum(&["put", "--store", &main], br#"{"$type":"Note","id":"n2"}"#);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("title"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // A paired instance knows the type from its first sync...
    let server = Server::start(&main, "ws://127.0.0.1:0");
    let invitation = ok(&["invite", "--store", &main], b"");
    ok(
        &[
            "init",
            "--store",
            &laptop,
            "--join",
            invitation.lines().last().unwrap(),
        ],
        b"",
    );
    let shown = ok(&["show", id.trim(), "--store", &laptop], b"");
    assert!(shown.contains(r#""title":"first""#), "{shown}");
    // ...and a recipe put later (through the running server) after a sync.
    let task = br#"{"$type":"Recipe","name":"Task","version":1,"strategy":"last-write","fields":[{"name":"id","kind":"text","id":true},{"name":"done","kind":"bool"}]}"#;
    ok(&["put", "--store", &main], task);
    ok(
        &["put", "--store", &main],
        br#"{"$type":"Task","id":"t1","done":false}"#,
    );
    ok(&["sync", &server.url, "--store", &laptop], b"");
    let task_id = ok(
        &["id", "--store", &laptop],
        br#"{"$type":"Task","id":"t1"}"#,
    );
    let shown = ok(&["show", task_id.trim(), "--store", &laptop], b"");
    assert!(shown.contains(r#""done":false"#), "{shown}");
    drop(server);
}

/// One API frame: a 4-byte big-endian length and a DAG-CBOR map.
fn api_frame(map: chum::Map) -> Vec<u8> {
    let bytes = chum::dagcbor::encode(&chum::Value::Map(map)).unwrap();
    let mut frame = u32::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    frame.extend(bytes);
    frame
}

/// Whether the server closed `stream` (EOF or reset) within `wait`.
fn closed_within(stream: &mut std::net::TcpStream, wait: Duration) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buffer = [0u8; 4_096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn the_command_api_wants_the_token_before_a_large_frame_and_bounds_connections() {
    use std::io::{Read, Write};
    let dir = TempDir::new("api-limits");
    let store = dir.store("main");
    ok(&["init", "--store", &store], b"");
    let _server = Server::start(&store, "ws://127.0.0.1:0");
    let started = Instant::now();
    let api = loop {
        if let Ok(api) = std::fs::read_to_string(Path::new(&store).join("api")) {
            break api;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no api file");
        std::thread::sleep(Duration::from_millis(20));
    };
    let address = api.split_whitespace().next().unwrap().to_owned();

    // Without the token, a client that announces a 120 MiB frame after the hello is cut off
    // (the server reads at most 1 KiB before the token).
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let mut hello = chum::Map::new();
    hello.insert("nonce", vec![7u8; 32]);
    stream.write_all(&api_frame(hello)).unwrap();
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).unwrap();
    let mut proof = vec![0u8; u32::from_be_bytes(length) as usize];
    stream.read_exact(&mut proof).unwrap();
    stream.write_all(&(120u32 << 20).to_be_bytes()).unwrap();
    let _ = stream.write_all(&[0u8; 65_536]);
    assert!(closed_within(&mut stream, Duration::from_secs(3)));

    // Idle connections: at most 64 are kept; the rest are closed at once.
    let mut idle: Vec<std::net::TcpStream> = (0..200)
        .map(|_| std::net::TcpStream::connect(&address).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut closed = 0;
    for stream in &mut idle {
        if closed_within(stream, Duration::from_millis(50)) {
            closed += 1;
        }
    }
    assert!(
        closed >= 200 - 64,
        "only {closed} of 200 idle connections closed"
    );
    // The idle ones that were kept are dropped within 5 s: commands get through again.
    let started = Instant::now();
    let whoami = ok(&["whoami", "--store", &store], b"");
    assert!(whoami.contains("listening"), "{whoami}");
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(idle);
}

#[test]
fn serve_refuses_an_admission_list_it_cannot_read() {
    let dir = std::env::temp_dir().join(format!("chum-admit-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = dir.join("store");
    let store = store.to_str().unwrap();
    let _ = ok(&["init", "--store", store], b"");
    let list = dir.join("admit.txt");
    std::fs::write(&list, "# one good line, one bad\nperson bafy-not-a-cid\n").unwrap();
    for extra in [
        vec!["--admit", "nonsense"],
        vec!["--admit-file", list.to_str().unwrap()],
        vec!["--admit-file", "/nonexistent/admit.txt"],
    ] {
        let mut args = vec!["serve", "--store", store, "--listen", "ws://127.0.0.1:0"];
        args.extend(extra.iter().copied());
        let output = chum(&args, b"");
        assert_eq!(output.status.code(), Some(1), "{extra:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("--admit") || stderr.contains("cannot read"),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `serve --threads N` runs its sessions on N threads: one serves a sync; none is refused
/// before anything starts.
#[test]
fn serve_runs_on_the_threads_it_is_given() {
    let dir = TempDir::new("threads");
    let (main, laptop) = (dir.store("main"), dir.store("laptop"));
    ok(&["init", "--store", &main], b"");
    ok(&["import", "--store", &main], &messages("main", 0..50));
    let (mut server, url) = common::serve(&main, "ws://127.0.0.1:0", &["--threads", "1"]);
    let invitation = ok(&["invite", "--store", &main], b"");
    let invitation = invitation.lines().last().unwrap();
    ok(&["init", "--store", &laptop, "--join", invitation], b"");
    ok(&["sync", &url, "--store", &laptop], b"");
    assert_eq!(
        lines(&ok(&["ls", "--store", &main], b"")),
        lines(&ok(&["ls", "--store", &laptop], b""))
    );
    let _ = server.kill();
    let _ = server.wait();
    let output = chum(
        &[
            "serve",
            "--store",
            &main,
            "--listen",
            "ws://127.0.0.1:0",
            "--threads",
            "0",
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--threads"));
}
