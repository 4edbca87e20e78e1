//! The one error type of this crate.

use chum_object::sign::SignatureError;

/// Why an identity, certificate, invitation or grant operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// An object or payload does not have the shape its type requires.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being read (`"InstanceCertificate"`, `"handshake payload"`, …).
        what: &'static str,
        /// Which rule it broke.
        reason: String,
    },
    /// A signature does not verify.
    #[error("{what}: {error}")]
    Signature {
        /// What was signed.
        what: &'static str,
        /// Why it failed.
        error: SignatureError,
    },
    /// The operation needs the person's secret key, which this instance does not hold (it
    /// joined the person; the key stays on the instance that created it).
    #[error("this instance does not hold its person's secret key")]
    NoPersonKey,
    /// An invitation was refused.
    #[error("invitation refused: {0}")]
    Invitation(String),
    /// A passphrase-protected secret could not be opened (wrong passphrase or damaged data),
    /// or a passphrase is needed and none was given.
    #[error("secret keys: {0}")]
    Secrets(String),
    /// The operating system's random source failed.
    #[error("no randomness available: {0}")]
    Random(String),
    /// An object could not be encoded.
    #[error(transparent)]
    Encode(#[from] chum_object::EncodeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] chum_store::Error),
    /// This side serves only the persons its operator admits ([`crate::Policy::admit_only`]),
    /// and the peer's person is not one of them.
    #[error("this node serves only the persons its operator admits; {0} is not one of them")]
    NotServed(crate::PersonId),
}

impl AccessError {
    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> AccessError {
        AccessError::Malformed {
            what,
            reason: reason.into(),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = AccessError> = std::result::Result<T, E>;
