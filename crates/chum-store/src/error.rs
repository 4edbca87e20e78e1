//! The one error type of the storage layer. Backend errors are carried as text, never as the
//! backend's own types.

use chum_object::Cid;

/// A storage failure. Each variant says whose fault it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No object with this CID is stored. Nobody's fault; ask a peer.
    #[error("object {0} not found")]
    NotFound(Cid),
    /// Bytes offered for storage do not verify against their CID or are not canonical. The
    /// sender's fault; nothing of the batch was stored.
    #[error("object {cid} refused: {reason}")]
    Invalid {
        /// The CID the bytes were offered under.
        cid: Cid,
        /// What is wrong.
        reason: String,
    },
    /// Stored bytes no longer verify (disk corruption, tampering). The medium's fault; the
    /// bytes are never returned as valid and the rest of the store keeps serving.
    #[error("stored object {cid} is corrupt: {reason}")]
    Corrupt {
        /// The object.
        cid: Cid,
        /// What failed.
        reason: String,
    },
    /// The store file is unreadable as a chum store (truncated, garbage, damaged metadata).
    #[error("store is damaged: {0}")]
    Damaged(String),
    /// Another process or instance has the store open.
    #[error("store is in use by another process or instance: {0}")]
    Locked(String),
    /// The store was written by a newer version of chum.
    #[error("store format {found} is newer than this chum supports ({supported}); upgrade chum")]
    NewerFormat {
        /// The format version found.
        found: u32,
        /// The newest format this build reads.
        supported: u32,
    },
    /// A limit of the store was exceeded (e.g. a key or value too large).
    #[error("storage limit: {0}")]
    Limit(String),
    /// The backend failed (I/O error, disk full, …).
    #[error("storage backend failed: {0}")]
    Backend(String),
    /// The store was closed (see `ClosableStore`): its owner let go of it, so it answers
    /// nothing more. The caller's mistake, or a late call racing a shutdown.
    #[error("the store is closed")]
    Closed,
    /// A fault injected by a test decorator.
    #[error("injected fault: {0}")]
    Injected(String),
}

/// Results of storage calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
