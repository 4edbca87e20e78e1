//! The one error type of the Instance API.

use chum_access::AccessError;

/// What went wrong. Match on the variant; the text is for people.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another instance (in this or another process) has the store open.
    #[error("the store is in use by another instance: {0}")]
    StoreLocked(String),
    /// The store failed.
    #[error("storage: {0}")]
    Storage(chum_store::Error),
    /// Bytes or text that are not a valid object.
    #[error("not a valid object: {0}")]
    Decode(String),
    /// An object breaks its type's recipe, or a versioned operation on a type without one.
    #[error("{0}")]
    Invalid(String),
    /// An object breaks its type's recipe: which field, which rule (match on the
    /// [`RecipeError`](chum_object::recipe::RecipeError) for the structure).
    #[error("{0}")]
    Recipe(chum_object::recipe::RecipeError),
    /// No recipe for this type is known here.
    #[error("no recipe for type {0:?}")]
    UnknownRecipe(String),
    /// No object with this CID is stored here.
    #[error("not found: {0}")]
    NotFound(String),
    /// The operation is not allowed (no person key, an instance-local type to a peer, …).
    #[error("denied: {0}")]
    Denied(String),
    /// An invitation was refused: wrong, expired, cancelled or used.
    #[error("invitation: {0}")]
    Invitation(String),
    /// Identity or key handling failed (wrong passphrase, damaged keys).
    #[error("identity: {0}")]
    Identity(String),
    /// Something did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A connection could not be made or was lost.
    #[error("transport: {0}")]
    Transport(String),
    /// The instance was closed.
    #[error("the instance is closed")]
    Closed,
}

impl From<chum_store::Error> for Error {
    fn from(error: chum_store::Error) -> Error {
        match error {
            chum_store::Error::NotFound(cid) => Error::NotFound(cid.to_string()),
            chum_store::Error::Locked(reason) => Error::StoreLocked(reason),
            chum_store::Error::Closed => Error::Closed,
            chum_store::Error::Invalid { cid, reason } => {
                Error::Invalid(format!("object {cid}: {reason}"))
            }
            other => Error::Storage(other),
        }
    }
}

impl From<AccessError> for Error {
    fn from(error: AccessError) -> Error {
        match error {
            AccessError::Invitation(reason) => Error::Invitation(reason),
            AccessError::NoPersonKey => Error::Denied(error.to_string()),
            AccessError::Store(store) => Error::from(store),
            other => Error::Identity(other.to_string()),
        }
    }
}

impl From<chum_object::SerdeError> for Error {
    fn from(error: chum_object::SerdeError) -> Error {
        Error::Invalid(format!("does not fit the type: {error}"))
    }
}

impl From<chum_object::recipe::RecipeError> for Error {
    fn from(error: chum_object::recipe::RecipeError) -> Error {
        Error::Recipe(error)
    }
}

/// The result type of the Instance API.
pub type Result<T, E = Error> = std::result::Result<T, E>;
