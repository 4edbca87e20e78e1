//! The PostgreSQL store over TLS, against a throwaway cluster that takes TCP connections over
//! TLS only (`hostssl`): libpq's `sslmode` and `sslrootcert`, each way a certificate check can
//! fail, and the store's watcher on an encrypted connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chum_object::Object;
use chum_store::{Store, conformance};
use chum_store_postgres::cluster::{ClusterOptions, ClusterTls, TempCluster};
use chum_store_postgres::{Options, PostgresStore};
use futures::StreamExt;

/// A cluster whose certificate names `localhost` (not `127.0.0.1`), the file of that
/// certificate as a root, and the file of a root that did not sign it.
struct Tls {
    cluster: TempCluster,
    dir: PathBuf,
    root: PathBuf,
    stranger: PathBuf,
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_cluster() -> Tls {
    let server = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    tls_cluster_with(&server.cert.pem(), &server.signing_key.serialize_pem())
}

/// A cluster presenting `cert_pem` (also written as the root file).
fn tls_cluster_with(cert_pem: &str, key_pem: &str) -> Tls {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cluster = TempCluster::start_with(&ClusterOptions {
        fsync: false,
        tls: Some(ClusterTls {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
        }),
        ..ClusterOptions::default()
    })
    .unwrap_or_else(|error| panic!("a throwaway PostgreSQL cluster with TLS: {error}"));
    let dir = std::env::temp_dir().join(format!(
        "chum-pg-tls-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let root = dir.join("root.pem");
    let stranger = dir.join("stranger.pem");
    std::fs::write(&root, cert_pem).unwrap();
    std::fs::write(&stranger, other.cert.pem()).unwrap();
    Tls {
        cluster,
        dir,
        root,
        stranger,
    }
}

/// A self-signed certificate for `localhost` marked as a CA (as `openssl req -x509` makes
/// them), valid until `not_after` (year), and its key.
fn ca_marked(not_after: i32) -> (String, String) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(not_after, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

async fn round_trip(url: &str) -> Result<(), String> {
    let store = PostgresStore::open(url)
        .await
        .map_err(|error| error.to_string())?;
    let object = conformance::message(7);
    store.put(object.cid(), object.bytes()).await.unwrap();
    assert_eq!(store.get(object.cid()).await.unwrap(), object.bytes());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_and_sslrootcert_choose_how_the_server_is_checked() {
    let tls = tls_cluster();
    let ip = tls.cluster.tcp_url("127.0.0.1", "postgres");
    let named = tls.cluster.tcp_url("localhost", "postgres");
    let root = tls.root.display().to_string();
    let stranger = tls.stranger.display().to_string();

    // The server takes TCP over TLS only: each of these connected encrypted.
    for url in [
        // The default (prefer) and require: encrypted, the certificate unchecked.
        format!("{ip}?schema=a"),
        format!("{ip}?schema=a&sslmode=prefer"),
        format!("{ip}?schema=a&sslmode=require"),
        // Checked against the root; the name is checked only with verify-full.
        format!("{named}?schema=a&sslmode=verify-full&sslrootcert={root}"),
        format!("{ip}?schema=a&sslmode=verify-ca&sslrootcert={root}"),
        // require with a root file is verify-ca (as libpq).
        format!("{ip}?schema=a&sslmode=require&sslrootcert={root}"),
        // Over the unix socket there is no TLS, whatever sslmode says (as libpq).
        format!(
            "{}&schema=a&sslmode=verify-full&sslrootcert={root}",
            tls.cluster.url("postgres")
        ),
        // A root file's path may be percent-encoded.
        format!(
            "{named}?schema=a&sslmode=verify-full&sslrootcert={}",
            root.replace('/', "%2F")
        ),
    ] {
        round_trip(&url)
            .await
            .unwrap_or_else(|error| panic!("{url}: {error}"));
    }

    // Refused, each with the reason in the error.
    for (url, reason) in [
        (
            format!("{ip}?schema=a&sslmode=disable"),
            "no encryption", // the server's pg_hba.conf: hostssl only
        ),
        (
            format!("{ip}?schema=a&sslmode=verify-full&sslrootcert={root}"),
            "not valid for name",
        ),
        (
            format!("{named}?schema=a&sslmode=verify-full&sslrootcert={stranger}"),
            "checked against sslrootcert=",
        ),
        (
            format!("{ip}?schema=a&sslmode=verify-ca&sslrootcert={stranger}"),
            "checked against sslrootcert=",
        ),
        (
            format!("{ip}?schema=a&sslmode=require&sslrootcert={stranger}"),
            "invalid peer certificate",
        ),
        // Mozilla's roots do not vouch for a self-signed certificate.
        (
            format!("{named}?schema=a&sslmode=verify-full"),
            "checked against Mozilla's roots",
        ),
        (
            format!("{named}?schema=a&sslrootcert=system"),
            "checked against Mozilla's roots",
        ),
    ] {
        let error = round_trip(&url)
            .await
            .expect_err(&format!("{url} must be refused"));
        assert!(error.contains(reason), "{url}: {error}");
    }

    // The same check through the API.
    let pem = std::fs::read(&tls.root).unwrap();
    let options = Options::from_url(&format!("{named}?schema=a"))
        .unwrap()
        .verify_server(Some(&pem), true)
        .unwrap();
    options.open().await.unwrap();
    let options = Options::from_url(&format!("{ip}?schema=a"))
        .unwrap()
        .verify_server(Some(&pem), true)
        .unwrap();
    let Err(error) = options.open().await else {
        panic!("a name the certificate lacks must be refused");
    };
    assert!(error.to_string().contains("not valid for name"), "{error}");
}

/// The web PKI's rules refuse a CA's certificate as a server's own; one the root file holds
/// is taken as pinned instead — within its dates, and with `verify-full` for its names only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_files_own_certificate_is_taken_as_pinned_within_its_dates() {
    let (cert, key) = ca_marked(2100);
    let tls = tls_cluster_with(&cert, &key);
    let root = tls.root.display().to_string();
    let ip = tls.cluster.tcp_url("127.0.0.1", "postgres");
    let named = tls.cluster.tcp_url("localhost", "postgres");
    round_trip(&format!(
        "{named}?schema=a&sslmode=verify-full&sslrootcert={root}"
    ))
    .await
    .unwrap();
    round_trip(&format!(
        "{ip}?schema=a&sslmode=verify-ca&sslrootcert={root}"
    ))
    .await
    .unwrap();
    let error = round_trip(&format!(
        "{ip}?schema=a&sslmode=verify-full&sslrootcert={root}"
    ))
    .await
    .expect_err("a name the certificate lacks");
    assert!(error.contains("not valid for name"), "{error}");
    let stranger = tls.stranger.display().to_string();
    let error = round_trip(&format!(
        "{named}?schema=a&sslmode=verify-full&sslrootcert={stranger}"
    ))
    .await
    .expect_err("another root");
    assert!(error.contains("invalid peer certificate"), "{error}");
    // Against Mozilla's roots, the error says what to do.
    let error = round_trip(&format!("{named}?schema=a&sslmode=verify-full"))
        .await
        .expect_err("not one of Mozilla's");
    assert!(
        error.contains("put that certificate in the sslrootcert file"),
        "{error}"
    );
    drop(tls);

    let (cert, key) = ca_marked(2001);
    let tls = tls_cluster_with(&cert, &key);
    let error = round_trip(&format!(
        "{}?schema=a&sslmode=verify-full&sslrootcert={}",
        tls.cluster.tcp_url("localhost", "postgres"),
        tls.root.display()
    ))
    .await
    .expect_err("an expired certificate");
    assert!(error.contains("certificate expired"), "{error}");
}

/// A watcher's own connection is encrypted and checked as the pool's are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_over_tls_hears_the_other_handles_writes() {
    let tls = tls_cluster();
    let url = format!(
        "{}?schema=live&sslmode=verify-full&sslrootcert={}",
        tls.cluster.tcp_url("localhost", "postgres"),
        tls.root.display()
    );
    let a = PostgresStore::open(&url).await.unwrap();
    let b = PostgresStore::open(&url).await.unwrap();
    let mut heard = b.watch_others().expect("a PostgreSQL store watches");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let objects: Vec<Object> = (0..20).map(conformance::message).collect();
    let pairs: Vec<_> = objects
        .iter()
        .map(|object| (object.cid().clone(), object.bytes().to_vec()))
        .collect();
    a.put_many(&pairs).await.unwrap();
    let mut got = 0;
    while got < objects.len() {
        let batch = tokio::time::timeout(Duration::from_secs(10), heard.next())
            .await
            .expect("the watcher hears within 10 s")
            .expect("the stream lives");
        got += batch.len();
    }
    assert_eq!(got, objects.len());
}

/// TLS settings that cannot work are clear errors before anything connects.
#[test]
fn bad_tls_settings_are_refused() {
    let dir = std::env::temp_dir().join(format!("chum-pg-tls-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    for (url, reason) in [
        ("postgres://h/db?sslmode=always", "sslmode=always"),
        (
            "postgres://h/db?sslmode=verify-full&sslrootcert=/no/such/file",
            "cannot read",
        ),
        (
            &format!(
                "postgres://h/db?sslmode=verify-full&sslrootcert={}",
                garbage.display()
            ),
            "no certificate",
        ),
        ("postgres://h/db?sslrootcert=%zz", "hexadecimal"),
        (
            "postgres://h/db?sslrootcert=system&sslmode=require",
            "verify-full",
        ),
        (
            "postgres://h/db?sslcert=/c.pem&sslkey=/k.pem",
            "not supported",
        ),
        ("postgres://h/db?sslcrl=/crl.pem", "not supported"),
    ] {
        let error = Options::from_url(url)
            .err()
            .unwrap_or_else(|| panic!("{url}"));
        assert!(error.to_string().contains(reason), "{url}: {error}");
    }
    assert!(
        Options::from_url("postgres://h/db")
            .unwrap()
            .verify_server(Some(b"nothing"), true)
            .is_err()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
