//! Objects received before what they link to: they are stored (durably, acknowledged) but
//! announced to the application only once every link target is stored too, and the missing
//! targets are fetched from the peer. Bounded: past the limit, objects are announced as
//! incomplete instead of waiting.

use std::collections::{HashMap, HashSet};

use chum_object::Cid;

/// The objects of one session waiting for link targets.
#[derive(Debug, Default)]
pub(crate) struct Dependencies {
    /// Target → the waiting objects that link to it.
    waiting_on: HashMap<Cid, Vec<Cid>>,
    /// Waiting object → how many of its targets are still missing.
    missing: HashMap<Cid, usize>,
    /// Targets not yet fetched from the peer.
    to_fetch: Vec<Cid>,
    fetched: HashSet<Cid>,
    /// CIDs known to be stored (a bounded cache that saves store lookups).
    present: HashSet<Cid>,
    limit: usize,
}

/// Objects a session keeps waiting at most.
pub(crate) const MAX_WAITING: usize = 100_000;
/// CIDs the presence cache holds at most before it starts afresh.
const MAX_PRESENT: usize = 200_000;

impl Dependencies {
    pub(crate) fn new(limit: usize) -> Dependencies {
        Dependencies {
            limit,
            ..Dependencies::default()
        }
    }

    /// Whether `cid` is known to be stored (or about to be, in a verified batch).
    pub(crate) fn known_present(&self, cid: &Cid) -> bool {
        self.present.contains(cid)
    }

    /// Records that `cid` is stored or about to be.
    pub(crate) fn note_present(&mut self, cid: &Cid) {
        if self.present.len() >= MAX_PRESENT {
            self.present.clear();
        }
        self.present.insert(cid.clone());
    }

    /// `cid` waits for `targets`; false (and nothing recorded) when the limit is reached.
    pub(crate) fn wait(&mut self, cid: &Cid, targets: Vec<Cid>) -> bool {
        if targets.is_empty() || self.missing.contains_key(cid) {
            return true;
        }
        if self.missing.len() >= self.limit {
            return false;
        }
        self.missing.insert(cid.clone(), targets.len());
        for target in targets {
            if self.fetched.insert(target.clone()) {
                self.to_fetch.push(target.clone());
            }
            self.waiting_on.entry(target).or_default().push(cid.clone());
        }
        true
    }

    /// Whether no object waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.missing.is_empty()
    }

    /// Whether `cid` waits for a target.
    pub(crate) fn is_waiting(&self, cid: &Cid) -> bool {
        self.missing.contains_key(cid)
    }

    /// `cid` is now stored: the waiting objects it completes.
    pub(crate) fn arrived(&mut self, cid: &Cid) -> Vec<Cid> {
        self.note_present(cid);
        let mut complete = Vec::new();
        for dependent in self.waiting_on.remove(cid).unwrap_or_default() {
            if let Some(count) = self.missing.get_mut(&dependent) {
                *count -= 1;
                if *count == 0 {
                    self.missing.remove(&dependent);
                    complete.push(dependent);
                }
            }
        }
        complete
    }

    /// Targets to ask the peer for, each once.
    pub(crate) fn take_fetches(&mut self) -> Vec<Cid> {
        std::mem::take(&mut self.to_fetch)
    }

    /// Every object still waiting (the session is ending).
    pub(crate) fn drain(&mut self) -> Vec<Cid> {
        self.waiting_on.clear();
        self.to_fetch.clear();
        let mut waiting: Vec<Cid> = self.missing.drain().map(|(cid, _)| cid).collect();
        waiting.sort();
        waiting
    }
}

#[cfg(test)]
mod tests {
    use chum_object::Codec;

    use super::*;

    fn cid(n: u8) -> Cid {
        Cid::hash(Codec::Raw, &[n])
    }

    #[test]
    fn an_object_completes_when_its_last_target_arrives() {
        let mut deps = Dependencies::new(10);
        assert!(deps.wait(&cid(1), vec![cid(10), cid(11)]));
        assert!(deps.wait(&cid(2), vec![cid(10)]));
        assert_eq!(deps.take_fetches(), [cid(10), cid(11)]);
        assert_eq!(deps.arrived(&cid(10)), [cid(2)]);
        assert!(deps.is_waiting(&cid(1)));
        assert_eq!(deps.arrived(&cid(11)), [cid(1)]);
        assert!(!deps.is_waiting(&cid(1)));
        assert!(deps.known_present(&cid(11)));
    }

    #[test]
    fn the_limit_holds_and_drain_empties() {
        let mut deps = Dependencies::new(1);
        assert!(deps.wait(&cid(1), vec![cid(10)]));
        assert!(!deps.wait(&cid(2), vec![cid(10)]));
        assert_eq!(deps.drain(), [cid(1)]);
        assert!(deps.arrived(&cid(10)).is_empty());
    }
}
