//! [`StorageModel`]: how fast a simulated device reads, and the [`Device`] clock that makes
//! every read of one file take its turn on it.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The read speed of a storage device: a sustained bandwidth and a latency per request.
///
/// Reads through a streamed container take at least `latency + bytes / bandwidth`, one
/// request after another, so that any machine can stand in for a phone's eMMC or a
/// single-board computer's SD card. A read that the real device makes slower stays slower.
///
/// ```
/// use lantern_io::stream::StorageModel;
///
/// let emmc: StorageModel = "emmc".parse()?;
/// assert_eq!(emmc, StorageModel::EMMC);
/// let custom: StorageModel = "1GB/s,100us".parse()?;
/// assert_eq!(custom.bytes_per_second, Some(1e9));
/// assert_eq!(custom.to_string(), "1 GB/s, 100 µs per read");
/// # Ok::<(), lantern_io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StorageModel {
    /// Sustained read bandwidth in bytes per second; `None` for the real device's.
    pub bytes_per_second: Option<f64>,
    /// Time from a request to its first byte.
    pub latency: Duration,
}

impl StorageModel {
    /// No throttling: the real device's speed.
    pub const UNTHROTTLED: Self = Self { bytes_per_second: None, latency: Duration::ZERO };
    /// A class 10 SD card: 50 MB/s, 1 ms per request.
    pub const SD_CARD: Self = Self::new(50e6, 1000);
    /// eMMC 5.1 flash: 250 MB/s, 200 µs per request.
    pub const EMMC: Self = Self::new(250e6, 200);
    /// UFS 3.1 flash: 1 GB/s, 100 µs per request.
    pub const UFS: Self = Self::new(1e9, 100);
    /// A PCIe 3 NVMe drive: 3 GB/s, 50 µs per request.
    pub const NVME: Self = Self::new(3e9, 50);

    const fn new(bytes_per_second: f64, latency_us: u64) -> Self {
        Self {
            bytes_per_second: Some(bytes_per_second),
            latency: Duration::from_micros(latency_us),
        }
    }

    /// The least time a read of `bytes` takes on this device.
    pub fn read_time(&self, bytes: u64) -> Duration {
        let transfer = self.bytes_per_second.map_or(0.0, |bw| bytes as f64 / bw);
        self.latency + Duration::from_secs_f64(transfer)
    }
}

impl Default for StorageModel {
    fn default() -> Self {
        Self::UNTHROTTLED
    }
}

impl fmt::Display for StorageModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.bytes_per_second {
            None => f.write_str("unthrottled")?,
            Some(bw) if bw >= 1e9 => write!(f, "{} GB/s", bw / 1e9)?,
            Some(bw) => write!(f, "{} MB/s", bw / 1e6)?,
        }
        if !self.latency.is_zero() {
            write!(f, ", {} µs per read", self.latency.as_micros())?;
        }
        Ok(())
    }
}

impl FromStr for StorageModel {
    type Err = crate::Error;

    /// A preset (`sd`, `emmc`, `ufs`, `nvme`, `none`) or `BANDWIDTH[,LATENCY]`, the
    /// bandwidth in `kB/s`, `MB/s` or `GB/s` (powers of ten) and the latency in `us` or `ms`,
    /// e.g. `250MB/s` or `1GB/s,100us`.
    fn from_str(s: &str) -> crate::Result<Self> {
        let bad = || {
            crate::Error::InvalidSetting {
            name: "storage model",
            reason: format!(
                "{s:?} is not sd, emmc, ufs, nvme, none or BANDWIDTH[,LATENCY] such as 250MB/s,200us"
            ),
        }
        };
        let preset = match s.trim().to_ascii_lowercase().as_str() {
            "sd" => Some(Self::SD_CARD),
            "emmc" => Some(Self::EMMC),
            "ufs" => Some(Self::UFS),
            "nvme" => Some(Self::NVME),
            "none" => Some(Self::UNTHROTTLED),
            _ => None,
        };
        if let Some(preset) = preset {
            return Ok(preset);
        }
        let (bandwidth, latency) = s.split_once(',').unwrap_or((s, "0us"));
        let number = |text: &str, units: &[(&str, f64)]| -> Option<f64> {
            let text = text.trim();
            units.iter().find_map(|&(unit, scale)| {
                let value: f64 = text.strip_suffix(unit)?.trim().parse().ok()?;
                (value.is_finite() && value >= 0.0).then_some(value * scale)
            })
        };
        let bytes_per_second = number(bandwidth, &[("kB/s", 1e3), ("MB/s", 1e6), ("GB/s", 1e9)])
            .filter(|&bw| bw > 0.0)
            .ok_or_else(bad)?;
        let latency = number(latency, &[("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3)])
            .filter(|&l| l < 10.0)
            .ok_or_else(bad)?;
        Ok(Self {
            bytes_per_second: Some(bytes_per_second),
            latency: Duration::from_secs_f64(latency),
        })
    }
}

/// One device's schedule. A read's latency runs from its request, overlapping the transfer
/// of earlier reads as on a device with a command queue; transfers take their turn at the
/// model's bandwidth. One read alone takes [`StorageModel::read_time`].
#[derive(Debug)]
pub(crate) struct Device {
    model: StorageModel,
    busy_until: Mutex<Instant>,
}

impl Device {
    pub(crate) fn new(model: StorageModel) -> Self {
        Self { model, busy_until: Mutex::new(Instant::now()) }
    }

    /// Books a read of `bytes` and returns when the device will have delivered it.
    pub(crate) fn book(&self, bytes: u64) -> Instant {
        let mut busy = self.busy_until.lock().unwrap_or_else(|e| e.into_inner());
        let transfer = self.model.read_time(bytes) - self.model.latency;
        let done = (*busy).max(Instant::now() + self.model.latency) + transfer;
        *busy = done;
        done
    }
}

/// Sleeps until `when`; returns how long that was.
pub(crate) fn wait_until(when: Instant) -> Duration {
    let now = Instant::now();
    let wait = when.saturating_duration_since(now);
    if !wait.is_zero() {
        std::thread::sleep(wait);
    }
    wait
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_presets_and_figures() {
        assert_eq!("SD".parse::<StorageModel>().unwrap(), StorageModel::SD_CARD);
        let m: StorageModel = "250MB/s".parse().unwrap();
        assert_eq!(m, StorageModel { bytes_per_second: Some(250e6), latency: Duration::ZERO });
        let m: StorageModel = "0.5 GB/s, 2ms".parse().unwrap();
        assert_eq!(m.bytes_per_second, Some(0.5e9));
        assert_eq!(m.latency, Duration::from_millis(2));
        for bad in ["", "fast", "0MB/s", "-1MB/s", "250", "1GB/s,", "1GB/s,1h", "NaNMB/s"] {
            assert!(bad.parse::<StorageModel>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn transfers_queue_and_latencies_overlap() {
        let latency = Duration::from_millis(5);
        let device = Device::new(StorageModel { bytes_per_second: Some(1e6), latency });
        let start = Instant::now();
        let first = device.book(10_000); // 5 ms, then 10 ms of transfer
        let second = device.book(10_000);
        assert!(first >= start + Duration::from_millis(15));
        assert!(second >= first + Duration::from_millis(10));
        assert!(second < first + Duration::from_millis(15), "the second latency overlaps");
    }
}
