//! This process's memory as `/proc/self/status` reports it, for the examples that print it.

/// A `/proc/self/status` field in kB (`VmRSS:`, `VmHWM:`), as MiB; 0 if absent.
pub fn status_mib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
        / 1024
}
