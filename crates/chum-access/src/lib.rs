//! # chum-access
//!
//! Who may connect and what each peer may see.
//!
//! - [`keys`]: persons (an ed25519 key; [`PersonId`] is the CID of its `Person` object),
//!   instances (their own ed25519 key) and the certificates and revocations a person signs.
//! - [`identity`]: the local instance's keys — saved in the store's instance-local area,
//!   plainly or sealed with a passphrase ([`secrets`]) — key rotation, revocation, backup.
//! - [`invite`]: invitations that let a new instance join its person, one use by default.
//! - [`handshake`]: the payloads inside the Noise handshake, which bind each side's session key
//!   to its certificate (or to an invitation), and the admission rule for a peer.
//! - [`grant`]: `Access` grants, their revocations, and groups — signed objects that replicate.
//! - [`visibility`]: the set of objects a peer's person may see, and what this side accepts
//!   from a peer of another person.
//!
//! Drivers of the sync engine (`chum-net`, `chum-sim`) use this crate to answer a session's
//! requests per peer; the engine itself (`chum-sync`) stays free of policy. The policies are in
//! `docs/security.md`.
//!
//! ## A grant, and what it shows another person
//! ```
//! use chum_access::{Access, Identity, Policy, VisibleSet};
//! use chum_object::{Object, dagjson};
//! use chum_store::{MemoryStore, Store};
//!
//! # futures::executor::block_on(async {
//! let store = MemoryStore::new();
//! let alice = Identity::new_person(1_700_000_000_000)?;
//! let bob = Identity::new_person(1_700_000_000_000)?;
//! alice.save(&store, None).await?; // secrets instance-local, Person + certificate shared
//!
//! let note = Object::from_value(&dagjson::from_str(r#"{"$type":"Note","text":"for bob"}"#)?)?;
//! let diary = Object::from_value(&dagjson::from_str(r#"{"$type":"Note","text":"mine"}"#)?)?;
//! let grant = Access::issue(alice.person_key()?, note.cid().clone(), bob.person().0, 1)?;
//! for object in [&note, &diary, &grant.object] {
//!     store.put(object.cid(), object.bytes()).await?;
//! }
//! let seen = VisibleSet::compute(&store, Policy::default(), *alice.person_public(), bob.person())
//!     .await?;
//! assert!(seen.contains(note.cid()) && seen.contains(grant.object.cid()));
//! assert!(!seen.contains(diary.cid()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
#![warn(missing_docs)]

pub mod error;
mod fields;
pub mod grant;
pub mod handshake;
pub mod hub;
pub mod identity;
pub mod invite;
pub mod keys;
pub mod secrets;
pub mod session;
mod signed;
pub mod visibility;

pub use crate::error::{AccessError, Result};
pub use crate::grant::{Access, AccessRevocation, GroupMembers, SignatureCheck, recipes};
pub use crate::handshake::{Peer, admit};
pub use crate::identity::Identity;
pub use crate::invite::Invitation;
pub use crate::keys::{Certificate, PersonId, Revocation};
pub use crate::session::{Admission, Granted, HubViews, PeerAccess, Taken, admit_peer};
pub use crate::visibility::{Announcement, Coverage, Policy, VisibleSet};
pub use chum_crdt::InstanceId;
