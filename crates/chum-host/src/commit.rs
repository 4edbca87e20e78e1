//! The one expensive write of the receive path, which leaves the host as an output: the
//! verified batches of a session's store requests, committed together in one transaction.

use chum_access::{InstanceId, PersonId};
use chum_object::Cid;
use chum_store::index::Verified;
use chum_store::{Scope, Store};
use chum_sync::{Answer, RequestId};

use crate::events::Facts;

/// A store request's id, its verified objects, and those refused one by one.
type Request = (RequestId, Verified, Vec<(Cid, String)>);

/// Verified batches of one session waiting to be committed together (see
/// [`crate::HostOutput::Commit`]). The driver runs [`Commit::run`] where writing suits it (the
/// tokio driver on its blocking pool, the simulator inline, the browser in one IndexedDB
/// transaction) and hands the result back with [`crate::Host::committed`].
#[derive(Debug)]
pub struct Commit {
    requests: Vec<Request>,
    /// Instance-local values written in the same transaction (what a hub notes about who
    /// sent the objects).
    local: Vec<(Vec<u8>, Vec<u8>)>,
    want_facts: bool,
}

/// What committing did, for [`crate::Host::committed`].
#[derive(Debug)]
pub struct Committed {
    /// The answer to each request.
    pub(crate) answers: Vec<(RequestId, Answer)>,
    /// Objects that became shared.
    pub(crate) new: Vec<Cid>,
    /// Objects that were held already.
    pub(crate) stale: Vec<Cid>,
    /// The facts of the new objects (when asked for).
    pub(crate) facts: Vec<(Cid, Facts)>,
    /// Instances revoked by revocations among them, with who signed each.
    pub(crate) revoked: Vec<(InstanceId, PersonId)>,
}

impl Committed {
    /// The outcome of a commit that could not run at all (e.g. its task panicked): every
    /// request fails with `reason`, nothing was stored.
    pub fn failed(commit_requests: &[RequestId], reason: &str) -> Committed {
        Committed {
            answers: commit_requests
                .iter()
                .map(|id| (*id, Answer::Failed(reason.to_owned())))
                .collect(),
            new: Vec::new(),
            stale: Vec::new(),
            facts: Vec::new(),
            revoked: Vec::new(),
        }
    }
}

impl Commit {
    pub(crate) fn new() -> Commit {
        Commit {
            requests: Vec::new(),
            local: Vec::new(),
            want_facts: false,
        }
    }

    pub(crate) fn push(
        &mut self,
        request: RequestId,
        batch: Verified,
        refused: Vec<(Cid, String)>,
    ) {
        self.requests.push((request, batch, refused));
    }

    /// Values of the instance-local area to write with the batches.
    pub(crate) fn note(&mut self, local: Vec<(Vec<u8>, Vec<u8>)>) {
        self.local.extend(local);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    pub(crate) fn with_facts(mut self, want_facts: bool) -> Commit {
        self.want_facts = want_facts;
        self
    }

    /// The requests it answers (for [`Committed::failed`]).
    pub fn requests(&self) -> Vec<RequestId> {
        self.requests.iter().map(|(id, _, _)| *id).collect()
    }

    /// Stores every batch in one transaction (shared scope, with the local values noted
    /// beside them) and answers each request.
    pub async fn run(self, store: &dyn Store) -> Committed {
        let mut ids = Vec::with_capacity(self.requests.len());
        let mut batches = Vec::with_capacity(self.requests.len());
        for (request_id, batch, refused) in self.requests {
            ids.push((request_id, refused));
            batches.push(batch);
        }
        let batch = Verified::concat(batches);
        let revoked = revocations(batch.objects().iter().zip(batch.entries()).map(
            |((_, bytes), entries)| {
                (
                    bytes.as_slice(),
                    Some(entries.type_name.as_deref().unwrap_or("")),
                )
            },
        ));
        let cids: Vec<Cid> = batch.objects().iter().map(|(cid, _)| cid.clone()).collect();
        let facts: Vec<Facts> = if self.want_facts {
            batch.entries().iter().map(Facts::of).collect()
        } else {
            Vec::new()
        };
        let written = if self.local.is_empty() {
            store.put_verified(batch, Scope::Shared).await
        } else {
            store
                .put_verified_with_local(batch, Scope::Shared, &self.local)
                .await
        };
        match written {
            Ok(changed) => {
                let mut outcome = Committed {
                    answers: ids
                        .into_iter()
                        .map(|(id, refused)| {
                            if refused.is_empty() {
                                (id, Answer::Stored)
                            } else {
                                (id, Answer::StoredExcept(refused))
                            }
                        })
                        .collect(),
                    new: Vec::with_capacity(cids.len()),
                    stale: Vec::new(),
                    facts: Vec::new(),
                    revoked,
                };
                let mut facts = facts.into_iter();
                for (cid, changed) in cids.into_iter().zip(changed) {
                    let fact = facts.next();
                    if changed {
                        if let Some(fact) = fact {
                            outcome.facts.push((cid.clone(), fact));
                        }
                        outcome.new.push(cid);
                    } else {
                        outcome.stale.push(cid);
                    }
                }
                outcome
            }
            Err(error) => {
                let answer = match &error {
                    chum_store::Error::Invalid { .. } => Answer::Invalid(error.to_string()),
                    _ => Answer::Failed(error.to_string()),
                };
                Committed {
                    answers: ids
                        .into_iter()
                        .map(|(id, _)| (id, answer.clone()))
                        .collect(),
                    new: Vec::new(),
                    stale: Vec::new(),
                    facts: Vec::new(),
                    revoked: Vec::new(),
                }
            }
        }
    }
}

/// The instances revoked by revocation objects among `objects` (`types`: their `$type`s when
/// known; otherwise a cheap scan for the type name comes first).
pub(crate) fn revocations<'a>(
    objects: impl IntoIterator<Item = (&'a [u8], Option<&'a str>)>,
) -> Vec<(InstanceId, PersonId)> {
    const NAME: &[u8] = chum_access::keys::REVOCATION_TYPE.as_bytes();
    let mut revoked = Vec::new();
    for (bytes, type_name) in objects {
        let maybe = match type_name {
            Some(name) => name == chum_access::keys::REVOCATION_TYPE,
            None => bytes.windows(NAME.len()).any(|window| window == NAME),
        };
        if !maybe {
            continue;
        }
        if let Ok((object, value)) =
            chum_object::Object::from_bytes(bytes.to_vec(), &chum_object::Limits::default())
            && let Ok(revocation) = chum_access::Revocation::from_value(object, &value)
        {
            revoked.push((revocation.instance(), revocation.person()));
        }
    }
    revoked
}

/// What the application wrote, as the host needs to hear of it (see
/// [`crate::Host::local_stored`]): the objects that became shared, and the instances their
/// revocations revoke. Made with [`LocalWrite::of`] where the write happened.
#[derive(Debug, Clone, Default)]
pub struct LocalWrite {
    pub(crate) cids: Vec<Cid>,
    pub(crate) revoked: Vec<(InstanceId, PersonId)>,
}

impl LocalWrite {
    /// The write of `objects` to the shared area, where `changed` (the store's answer) says
    /// which were new.
    pub fn of(objects: &[(Cid, Vec<u8>)], changed: &[bool]) -> LocalWrite {
        let cids = objects
            .iter()
            .zip(changed)
            .filter(|(_, changed)| **changed)
            .map(|((cid, _), _)| cid.clone())
            .collect();
        // Only new dag-cbor objects can be revocations not yet acted on.
        let candidates = objects
            .iter()
            .zip(changed)
            .filter(|((cid, _), changed)| **changed && cid.is_blake3(chum_object::Codec::DagCbor))
            .map(|((_, bytes), _)| (bytes.as_slice(), None));
        LocalWrite {
            cids,
            revoked: revocations(candidates),
        }
    }

    /// Whether nothing new was written.
    pub fn is_empty(&self) -> bool {
        self.cids.is_empty() && self.revoked.is_empty()
    }
}
