//! How many BLAKE3 hashes of object bytes and DAG-CBOR decodes this process has done — to
//! count what a code path costs per object (tests and benchmarks). The counts are kept only
//! with the `counters` feature; without it they read 0 and cost nothing.

#[cfg(feature = "counters")]
static HASHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
#[cfg(feature = "counters")]
static DECODES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Object bytes hashed so far (computing a CID, or checking bytes against one).
pub fn hashes() -> u64 {
    #[cfg(feature = "counters")]
    {
        HASHES.load(std::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(not(feature = "counters"))]
    {
        0
    }
}

/// DAG-CBOR values decoded so far (building the value; a check that builds nothing counts
/// too).
pub fn decodes() -> u64 {
    #[cfg(feature = "counters")]
    {
        DECODES.load(std::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(not(feature = "counters"))]
    {
        0
    }
}

/// Whether the counts are kept (the `counters` feature).
pub const ENABLED: bool = cfg!(feature = "counters");

#[inline]
pub(crate) fn hashed() {
    #[cfg(feature = "counters")]
    HASHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

#[inline]
pub(crate) fn decoded() {
    #[cfg(feature = "counters")]
    DECODES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}
