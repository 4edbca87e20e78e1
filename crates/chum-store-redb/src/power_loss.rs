//! A redb storage backend that simulates power loss, for durability tests.
//!
//! Writes land in a volatile image; `sync_data` makes the volatile image durable. At a chosen
//! write or sync the power fails: that operation and every later one return an I/O error. The
//! surviving disk is the durable image, optionally with a "torn" subset of the unsynced writes
//! (whole 512-byte sectors, chosen by a seed) applied, as a real disk may leave it.

use std::sync::{Arc, Mutex};

use redb::StorageBackend;

#[derive(Debug, Default)]
struct Disk {
    volatile: Vec<u8>,
    durable: Vec<u8>,
    /// Sectors written since the last sync (offset of each 512-byte sector), each once.
    pending: std::collections::BTreeSet<u64>,
    operations: u64,
    fail_at: Option<u64>,
    failed: bool,
}

/// A simulated disk shared by the backend handed to redb and the test that inspects it.
#[derive(Debug, Clone, Default)]
pub struct SimulatedDisk(Arc<Mutex<Disk>>);

const SECTOR: u64 = 512;

impl SimulatedDisk {
    /// A blank disk that fails at the `fail_at`-th write or sync (1-based), or never.
    pub fn new(fail_at: Option<u64>) -> SimulatedDisk {
        SimulatedDisk(Arc::new(Mutex::new(Disk {
            fail_at,
            ..Disk::default()
        })))
    }

    /// A disk holding `image` (durable), failing at the `fail_at`-th write or sync.
    pub fn from_image(image: Vec<u8>, fail_at: Option<u64>) -> SimulatedDisk {
        SimulatedDisk(Arc::new(Mutex::new(Disk {
            volatile: image.clone(),
            durable: image,
            fail_at,
            ..Disk::default()
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Disk> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the power has failed.
    pub fn failed(&self) -> bool {
        self.lock().failed
    }

    /// Writes and syncs so far.
    pub fn operations(&self) -> u64 {
        self.lock().operations
    }

    /// What survives the power loss: the durable image plus, for each unsynced sector, that
    /// sector's new contents when `seed` picks it (`seed = 0` keeps none of them, `u64::MAX`
    /// keeps all of them: everything written reached the disk).
    pub fn surviving_image(&self, seed: u64) -> Vec<u8> {
        let disk = self.lock();
        let mut image = disk.durable.clone();
        let mut rng = seed;
        for &sector in &disk.pending {
            if seed == 0 {
                break;
            }
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if seed != u64::MAX && rng.is_multiple_of(2) {
                continue;
            }
            let start = sector as usize;
            let end = (start + SECTOR as usize).min(disk.volatile.len());
            if start >= end {
                continue;
            }
            if image.len() < end {
                image.resize(end, 0);
            }
            image[start..end].copy_from_slice(&disk.volatile[start..end]);
        }
        image
    }

    /// The backend to hand to redb.
    pub fn backend(&self) -> PowerLossBackend {
        PowerLossBackend(self.clone())
    }
}

/// The redb [`StorageBackend`] over a [`SimulatedDisk`].
#[derive(Debug)]
pub struct PowerLossBackend(SimulatedDisk);

fn power_failure() -> std::io::Error {
    std::io::Error::other("simulated power loss")
}

impl PowerLossBackend {
    fn operation(&self, disk: &mut Disk) -> Result<(), std::io::Error> {
        if disk.failed {
            return Err(power_failure());
        }
        disk.operations += 1;
        if disk.fail_at == Some(disk.operations) {
            disk.failed = true;
            return Err(power_failure());
        }
        Ok(())
    }
}

impl StorageBackend for PowerLossBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        let disk = self.0.lock();
        if disk.failed {
            return Err(power_failure());
        }
        Ok(disk.volatile.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        let disk = self.0.lock();
        if disk.failed {
            return Err(power_failure());
        }
        let start = usize::try_from(offset).map_err(|_| std::io::Error::other("offset"))?;
        let end = start
            .checked_add(out.len())
            .filter(|&end| end <= disk.volatile.len());
        let end = end.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past end")
        })?;
        out.copy_from_slice(&disk.volatile[start..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        let mut disk = self.0.lock();
        self.operation(&mut disk)?;
        let len = usize::try_from(len).map_err(|_| std::io::Error::other("length"))?;
        disk.volatile.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        let mut disk = self.0.lock();
        self.operation(&mut disk)?;
        disk.durable = disk.volatile.clone();
        disk.pending.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let mut disk = self.0.lock();
        if disk.failed {
            return Err(power_failure());
        }
        // The write lands in the volatile image even when the power fails during it: a real
        // disk may have taken some of its sectors, which `surviving_image` may keep.
        let start = usize::try_from(offset).map_err(|_| std::io::Error::other("offset"))?;
        let end = start
            .checked_add(data.len())
            .ok_or_else(|| std::io::Error::other("length"))?;
        if disk.volatile.len() < end {
            disk.volatile.resize(end, 0);
        }
        disk.volatile[start..end].copy_from_slice(data);
        let mut sector = offset / SECTOR * SECTOR;
        while sector < end as u64 {
            disk.pending.insert(sector);
            sector += SECTOR;
        }
        self.operation(&mut disk)
    }
}
