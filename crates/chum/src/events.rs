//! What an instance reports: a bounded stream that never blocks the core.

use std::pin::Pin;
use std::task::{Context, Poll};

use chum_access::{InstanceId, PersonId};
use chum_object::Cid;
use futures::Stream;
use futures::future::BoxFuture;
use tokio::sync::broadcast;

/// Where a change came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// This instance (the app).
    Local,
    /// A peer instance, through a session.
    Peer {
        /// The peer instance.
        instance: InstanceId,
        /// Its person.
        person: PersonId,
    },
    /// A peer whose identity is unknown (a session without encryption).
    Unknown,
}

/// Something that happened in an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An object was stored (the seed's `objectCreated`).
    Stored {
        /// Its CID.
        cid: Cid,
        /// Its `$type`, when it has one.
        type_name: Option<String>,
        /// Who stored it.
        origin: Origin,
    },
    /// A new version of a versioned object (an ID) was stored: its state may have changed.
    Changed {
        /// The ID hash.
        id: Cid,
        /// The new version.
        version: Cid,
        /// Who wrote it.
        origin: Origin,
    },
    /// A session with a peer is up (hellos exchanged).
    PeerConnected {
        /// The peer instance (`None` without encryption).
        instance: Option<InstanceId>,
        /// Its person.
        person: Option<PersonId>,
        /// The remote address.
        remote: String,
    },
    /// A session's first reconciliation completed both ways: the two sides hold the same
    /// visible set (up to what changed meanwhile).
    Synced {
        /// The peer instance.
        instance: Option<InstanceId>,
    },
    /// A peer acknowledged durably storing objects.
    HeldByPeer {
        /// The peer instance.
        instance: Option<InstanceId>,
        /// How many objects.
        count: usize,
    },
    /// Objects a peer sent were refused here, one by one, and not stored: each breaks a
    /// recipe of this instance (e.g. a peer on another app version), is of an instance-local
    /// type, or is otherwise not acceptable. The session goes on without them.
    Refused {
        /// Each refused object with the reason (naming the recipe and field).
        refused: Vec<(Cid, String)>,
        /// Who sent them.
        origin: Origin,
    },
    /// A peer refused objects this instance sent (they break the peer's recipes): it does not
    /// hold them, and no receipt will say it does.
    PeerRefused {
        /// The peer instance.
        instance: Option<InstanceId>,
        /// The objects.
        cids: Vec<Cid>,
        /// The peer's reason.
        reason: String,
    },
    /// A session ended.
    PeerDisconnected {
        /// The peer instance, when it was known.
        instance: Option<InstanceId>,
        /// Why.
        reason: String,
    },
    /// The instance was closed ([`Instance::close`](crate::Instance::close)): nothing follows.
    Closed,
    /// This stream fell behind and skipped `missed` events: re-query what you show.
    Lagged {
        /// Events skipped.
        missed: u64,
    },
}

/// The events of an instance from the moment this stream was made, as a [`Stream`]. Bounded:
/// a consumer that falls behind gets [`Event::Lagged`] instead of slowing the instance down.
/// Dropping it unsubscribes.
#[must_use = "an event stream does nothing unless polled"]
pub struct Events {
    next: Option<Receiving>,
}

/// One pending receive, handing the receiver back with the result.
type Receiving = BoxFuture<
    'static,
    (
        Result<Event, broadcast::error::RecvError>,
        broadcast::Receiver<Event>,
    ),
>;

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

fn receive(mut receiver: broadcast::Receiver<Event>) -> Receiving {
    Box::pin(async move {
        let result = receiver.recv().await;
        (result, receiver)
    })
}

impl Events {
    pub(crate) fn new(receiver: broadcast::Receiver<Event>) -> Events {
        Events {
            next: Some(receive(receiver)),
        }
    }

    /// The next event; `None` once the instance is gone.
    pub async fn next(&mut self) -> Option<Event> {
        futures::StreamExt::next(self).await
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let Some(future) = self.next.as_mut() else {
            return Poll::Ready(None);
        };
        match future.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready((result, receiver)) => match result {
                Ok(event) => {
                    self.next = Some(receive(receiver));
                    Poll::Ready(Some(event))
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.next = Some(receive(receiver));
                    Poll::Ready(Some(Event::Lagged { missed }))
                }
                Err(broadcast::error::RecvError::Closed) => {
                    self.next = None;
                    Poll::Ready(None)
                }
            },
        }
    }
}
