//! The standard `process_*` metrics (CPU, memory, file descriptors, start time) read from
//! `/proc/self` at each scrape, as client_golang's process collector exposes them for stock
//! kube-proxy: dashboards chart kube-proxy's CPU and memory by these names.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// `USER_HZ`: fixed at 100 by the Linux ABI on every architecture (clock ticks in `/proc`).
const USER_HZ: f64 = 100.0;

/// One reading of the process's figures; missing files leave fields `None`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshot {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<f64>,
    pub virtual_bytes: Option<f64>,
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<f64>,
    pub max_fds: Option<f64>,
}

/// Reads `/proc/self` (Linux only; elsewhere every field is `None`).
pub fn read() -> Snapshot {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    let status = std::fs::read_to_string("/proc/self/status").ok();
    let sys_stat = std::fs::read_to_string("/proc/stat").ok();
    let limits = std::fs::read_to_string("/proc/self/limits").ok();
    let ticks = stat.as_deref().and_then(parse_stat);
    let btime = sys_stat.as_deref().and_then(parse_btime);
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as f64);
    Snapshot {
        cpu_seconds: ticks.map(|t| t.cpu_ticks / USER_HZ),
        resident_bytes: status.as_deref().and_then(|s| status_kib(s, "VmRSS:")),
        virtual_bytes: status.as_deref().and_then(|s| status_kib(s, "VmSize:")),
        start_time_seconds: ticks.zip(btime).map(|(t, b)| b + t.start_ticks / USER_HZ),
        open_fds,
        max_fds: limits.as_deref().and_then(parse_max_fds),
    }
}

#[derive(Debug, Clone, Copy)]
struct Ticks {
    cpu_ticks: f64,
    start_ticks: f64,
}

/// utime + stime and starttime from `/proc/self/stat` (fields 14, 15, 22; the command name in
/// field 2 may contain spaces and parentheses, so fields are counted after the last `)`).
fn parse_stat(s: &str) -> Option<Ticks> {
    let (_, rest) = s.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |field: usize| -> Option<f64> { fields.get(field - 3)?.parse().ok() };
    Some(Ticks {
        cpu_ticks: num(14)? + num(15)?,
        start_ticks: num(22)?,
    })
}

/// Boot time (seconds since the epoch) from `/proc/stat`.
fn parse_btime(s: &str) -> Option<f64> {
    s.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// A `Key:   123 kB` line of `/proc/self/status`, in bytes.
fn status_kib(s: &str, key: &str) -> Option<f64> {
    let v = s.lines().find_map(|l| l.strip_prefix(key))?;
    let kib: f64 = v.split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024.0)
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn parse_max_fds(s: &str) -> Option<f64> {
    let v = s.lines().find_map(|l| l.strip_prefix("Max open files"))?;
    v.split_whitespace().next()?.parse().ok()
}

/// The collector registered in the metrics registry.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let s = read();
        if let Some(v) = s.cpu_seconds {
            let c = ConstCounter::new(v);
            // Registered without `_total`; the encoder appends it to counters.
            let e = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                c.metric_type(),
            )?;
            c.encode(e)?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                s.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                s.virtual_bytes,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                s.start_time_seconds,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                s.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                s.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let g = ConstGauge::new(v);
                let e = encoder.encode_descriptor(name, help, None, g.metric_type())?;
                g.encode(e)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "4242 (kube ipvs) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 \
                    8 0 12345 104857600 2560 18446744073709551615";
        let t = parse_stat(stat).unwrap();
        assert_eq!(t.cpu_ticks, 300.0);
        assert_eq!(t.start_ticks, 12345.0);
        assert_eq!(
            parse_btime("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1.7e9)
        );
        let status = "Name:\tkube-ipvs\nVmSize:\t  102400 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(2048.0 * 1024.0));
        assert_eq!(status_kib(status, "VmSize:"), Some(102_400.0 * 1024.0));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1048576              1048576              files\n";
        assert_eq!(parse_max_fds(limits), Some(1_048_576.0));
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn reads_this_process() {
        let s = read();
        assert!(s.resident_bytes.is_some_and(|v| v > 0.0), "{s:?}");
        assert!(s.open_fds.is_some_and(|v| v >= 3.0), "{s:?}");
        assert!(s.start_time_seconds.is_some_and(|v| v > 1.5e9), "{s:?}");
    }
}
