//! Answering a session's requests from a [`Store`]: the glue between the sans-IO
//! [`Session`](crate::Session) and any store, with no policy (admission is the driver's).

use std::ops::Bound;

use chum_object::Cid;
use chum_store::sync::{resolve_short_ids, shared_among, shared_short_ids, shared_sketch};
use chum_store::{Error, Result, Scope, Store};

use crate::session::{Answer, Request};

/// Answers a session's request from `store`. For [`Request::Store`], also returns the CIDs
/// that became shared here (a driver tells its other sessions with
/// [`Input::LocalStored`](crate::Input::LocalStored)). Store errors become [`Answer::Failed`]; objects that
/// fail verification become [`Answer::Invalid`] (nothing of that batch is stored). A store
/// has no admission policy: [`Request::Admit`] is refused (the driver of an encrypted session
/// decides admission itself, e.g. with `chum-access`).
pub async fn answer<S: Store + ?Sized>(store: &S, request: Request) -> (Answer, Vec<Cid>) {
    let result = match request {
        Request::Admit { .. } => Ok(Answer::Refused("no admission policy".into())),
        Request::Summary => {
            // The journal position first: read before the summary's snapshot, it is at most
            // that snapshot's (a checkpoint may then claim less, never more).
            match store.journal(0, 0).await {
                Ok(page) => store
                    .sync_digest()
                    .await
                    .map(|digest| Answer::Summary(digest.summary, Some(page.head))),
                Err(error) => Err(error),
            }
        }
        Request::Journal { after, limit } => journal_objects(store, after, limit).await,
        Request::Sketch { cells, salt } => shared_sketch(store, cells, salt)
            .await
            .map(|(summary, sketch)| Answer::Sketch(summary, sketch)),
        Request::ShortIds { after, limit } => shared_short_ids(store, after, limit)
            .await
            .map(Answer::ShortIds),
        Request::Cids { after, limit } => {
            let start = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
            store
                .sync_list((start, Bound::Unbounded), limit)
                .await
                .map(Answer::Cids)
        }
        Request::Resolve(ids) => resolve_short_ids(store, &ids).await.map(Answer::Resolved),
        Request::Shared(cids) => shared_among(store, cids).await.map(Answer::Resolved),
        Request::Objects { after, limit } => store
            .sync_objects(after.as_ref(), limit)
            .await
            .map(|(objects, next)| Answer::Objects { objects, next }),
        Request::Load(cids) => store.get_many(&cids).await.map(|loaded| {
            Answer::Loaded(
                cids.into_iter()
                    .zip(loaded)
                    .filter_map(|(cid, bytes)| Some((cid, bytes.ok()?)))
                    .collect(),
            )
        }),
        Request::Store(objects) => {
            return match store.put_scoped(&objects, Scope::Shared).await {
                Ok(new) => {
                    let cids = objects
                        .into_iter()
                        .zip(new)
                        .filter_map(|((cid, _), new)| new.then_some(cid))
                        .collect();
                    (Answer::Stored, cids)
                }
                Err(error @ Error::Invalid { .. }) => {
                    (Answer::Invalid(error.to_string()), Vec::new())
                }
                Err(error) => (Answer::Failed(error.to_string()), Vec::new()),
            };
        }
    };
    match result {
        Ok(answer) => (answer, Vec::new()),
        Err(error) => (Answer::Failed(error.to_string()), Vec::new()),
    }
}

/// The objects of a journal page, for [`Request::Journal`].
async fn journal_objects<S: Store + ?Sized>(store: &S, after: u64, limit: usize) -> Result<Answer> {
    let page = store.journal(after, limit).await?;
    let cids: Vec<Cid> = page.entries.into_iter().map(|(_, cid)| cid).collect();
    let loaded = store.get_many(&cids).await?;
    Ok(Answer::Journal {
        objects: cids
            .into_iter()
            .zip(loaded)
            .filter_map(|(cid, bytes)| Some((cid, bytes.ok()?)))
            .collect(),
        last: page.last,
        head: page.head,
    })
}
