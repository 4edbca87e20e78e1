//! TLS to the server (rustls over *ring*), as libpq's `sslmode` and `sslrootcert` choose:
//!
//! | `sslmode` | encrypted | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (the default) | when the server offers it | not checked |
//! | `require` | always, or no connection | not checked; with `sslrootcert`, as `verify-ca` |
//! | `verify-ca` | always | must chain to a root of `sslrootcert` |
//! | `verify-full` | always | must chain to a root and name the host connected to |
//!
//! Over a unix socket there is no TLS, whatever `sslmode` says (as libpq).
//!
//! `sslrootcert` is a PEM file of root certificates, or `system`: Mozilla's roots (as
//! `webpki-roots` ships them), which without an `sslmode` means `verify-full`. A certificate
//! of the file that the server presents as its own is taken as pinned, within its dates (a
//! self-signed server certificate made with `openssl req -x509` is marked as a CA, which
//! the web PKI's rules refuse as a server's). `verify-ca` and
//! `verify-full` without `sslrootcert` trust Mozilla's roots too. An unchecked certificate
//! keeps out those who only listen, not one in the middle: that one can pose as the server
//! (and ask for the password as it likes). Across a network you do not control, use
//! `verify-full`.

use std::sync::{Arc, Mutex};

use chum_store::{Error, Result};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How the server's certificate is checked on an encrypted connection.
#[derive(Debug, Clone)]
pub(crate) enum Check {
    /// Not checked (encrypted, not authenticated): `prefer` and `require`.
    None,
    /// It must chain to one of the roots, or be one of them (pinned); with `hostname`, also
    /// name the host.
    Roots { roots: Roots, hostname: bool },
}

/// Roots to check a server's certificate against.
#[derive(Debug, Clone)]
pub(crate) struct Roots {
    pub(crate) roots: Arc<RootCertStore>,
    /// The certificates of a root file, as given.
    pub(crate) pinned: Arc<Vec<CertificateDer<'static>>>,
    /// What they are, for errors.
    pub(crate) from: String,
}

impl Check {
    /// The roots checked, `hostname`: and the name.
    pub(crate) fn roots(roots: Roots, hostname: bool) -> Check {
        Check::Roots { roots, hostname }
    }

    /// Mozilla's roots.
    pub(crate) fn mozilla_roots() -> Roots {
        Roots {
            roots: Arc::new(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }),
            pinned: Arc::new(Vec::new()),
            from: "Mozilla's roots (no sslrootcert: name the file of the server's CA with it)"
                .to_owned(),
        }
    }

    /// The roots of a PEM text (`what` names it in errors): at least one certificate.
    pub(crate) fn roots_from_pem(pem: &[u8], what: &str) -> Result<Roots> {
        let mut roots = RootCertStore::empty();
        let mut pinned = Vec::new();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|error| {
                Error::Backend(format!("{what}: not a PEM certificate file: {error}"))
            })?;
            roots.add(cert.clone()).map_err(|error| {
                Error::Backend(format!(
                    "{what}: a certificate that cannot be a root: {error}"
                ))
            })?;
            pinned.push(cert);
        }
        if roots.is_empty() {
            return Err(Error::Backend(format!("{what}: no certificate in it")));
        }
        Ok(Roots {
            roots: Arc::new(roots),
            pinned: Arc::new(pinned),
            from: what.to_owned(),
        })
    }

    /// The connector for the driver.
    pub(crate) fn connector(&self) -> Result<Connector> {
        let explained = Arc::new(Mutex::new(None));
        let provider = Arc::new(ring_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|error| Error::Backend(format!("TLS: {error}")))?;
        let chain = match self {
            Check::None => None,
            Check::Roots { roots, hostname } => Some(Chain {
                webpki: WebPkiServerVerifier::builder_with_provider(
                    Arc::clone(&roots.roots),
                    Arc::clone(&provider),
                )
                .build()
                .map_err(|error| Error::Backend(format!("TLS roots: {error}")))?,
                roots: roots.clone(),
                hostname: *hostname,
                explained: Arc::clone(&explained),
            }),
        };
        let verifier = Arc::new(Verifier { provider, chain });
        let mut config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        // As libpq 17 does: a server may then take TLS without PostgreSQL's own request first.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Connector {
            make: MakeRustlsConnect::new(config),
            explained,
        })
    }
}

/// The driver's TLS connector, and why it last refused a certificate.
#[derive(Clone)]
pub(crate) struct Connector {
    pub(crate) make: MakeRustlsConnect,
    explained: Arc<Mutex<Option<String>>>,
}

impl Connector {
    /// `error` of a connection, with what the refused certificate was checked against when
    /// a certificate was refused.
    pub(crate) fn explain(&self, error: Error) -> Error {
        match error {
            Error::Backend(text) if text.contains("invalid peer certificate") => {
                match self
                    .explained
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .as_deref()
                {
                    Some(why) => Error::Backend(format!("{text}: {why}")),
                    None => Error::Backend(text),
                }
            }
            other => other,
        }
    }
}

/// rustls over *ring* (as `chum-net`'s WSS: no C toolchain beyond the one *ring* brings).
#[allow(deprecated)]
fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Checks the server's certificate as a [`Check`] says: with no `chain`, takes any. The
/// handshake's signatures are always checked with the certificate's key.
#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    chain: Option<Chain>,
}

/// The chain checked against the roots (or the certificate pinned), and with `hostname` the
/// name (`verify-full`; without: `verify-ca`).
#[derive(Debug)]
struct Chain {
    webpki: Arc<WebPkiServerVerifier>,
    /// Its pinned certificates, and what they are for errors.
    roots: Roots,
    hostname: bool,
    /// See [`Connector::explain`].
    explained: Arc<Mutex<Option<String>>>,
}

impl Chain {
    /// Notes for the caller's error what `error` was checked against (and what to do when the
    /// server's own certificate is a CA's), and returns `error` as it is (so that the
    /// server hears the alert that fits).
    fn explain(&self, error: rustls::Error) -> rustls::Error {
        if let rustls::Error::InvalidCertificate(certificate) = &error {
            let ca_as_own = matches!(certificate, CertificateError::Other(other)
                if other.to_string() == "CaUsedAsEndEntity");
            let hint = if ca_as_own {
                "the server presented a CA's certificate as its own (as `openssl req -x509` \
                 makes them): put that certificate in the sslrootcert file to trust it; "
            } else {
                ""
            };
            *self
                .explained
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(format!("{hint}checked against {}", self.roots.from));
        }
        error
    }
}

/// A pinned certificate's dates, as a chain's are checked.
fn in_dates(
    end_entity: &CertificateDer<'_>,
    now: UnixTime,
) -> std::result::Result<(), rustls::Error> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(end_entity)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let validity = &cert.tbs_certificate.validity;
    let not_before = validity.not_before.to_unix_duration();
    let not_after = validity.not_after.to_unix_duration();
    if now.as_secs() < not_before.as_secs() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYetContext {
                time: now,
                not_before: UnixTime::since_unix_epoch(not_before),
            },
        ));
    }
    if now.as_secs() > not_after.as_secs() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::ExpiredContext {
                time: now,
                not_after: UnixTime::since_unix_epoch(not_after),
            },
        ));
    }
    Ok(())
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        if chain
            .roots
            .pinned
            .iter()
            .any(|pinned| pinned.as_ref() == end_entity.as_ref())
        {
            in_dates(end_entity, now).map_err(|error| chain.explain(error))?;
            if chain.hostname {
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)
                    .map_err(|error| chain.explain(error))?;
            }
            return Ok(ServerCertVerified::assertion());
        }
        // The chain is checked before the name: a wrong name means the chain was good.
        match chain.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !chain.hostname => Ok(ServerCertVerified::assertion()),
            Err(error) => Err(chain.explain(error)),
            Ok(verified) => Ok(verified),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `%XX` escapes of a URL's query value decoded (as libpq decodes them).
pub(crate) fn percent_decode(value: &str) -> std::result::Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| format!("{value}: a % not followed by two hexadecimal digits"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{value}: not UTF-8 once decoded"))
}
