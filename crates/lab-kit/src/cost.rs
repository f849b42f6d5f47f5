//! What a bench step cost: wall time, and CPU time split into user space and kernel (sys), from
//! `getrusage`: `RUSAGE_SELF` for our own work (the benches are one thread),
//! `RUSAGE_CHILDREN` around a reference CLI the step waits for.

use std::time::{Duration, Instant};

pub use nix::sys::resource::UsageWho;

/// Wall time and CPU time (user, sys) of one step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// Elapsed time.
    pub wall: Duration,
    /// CPU time in user space.
    pub user: Duration,
    /// CPU time in the kernel.
    pub sys: Duration,
}

impl Cost {
    /// The kernel's share of the CPU time.
    pub fn sys_share(&self) -> f64 {
        self.sys.as_secs_f64() / (self.user + self.sys).as_secs_f64().max(1e-9)
    }
}

/// `   1.23 s  (user    0.40 s, sys    0.80 s:  67% in the kernel)`; a precision (`{:.3}`)
/// sets the seconds' decimals (2 by default).
impl std::fmt::Display for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = f.precision().unwrap_or(2);
        write!(
            f,
            "{:>8.p$} s  (user {:>7.p$} s, sys {:>7.p$} s: {:>3.0}% in the kernel)",
            self.wall.as_secs_f64(),
            self.user.as_secs_f64(),
            self.sys.as_secs_f64(),
            100.0 * self.sys_share()
        )
    }
}

/// CPU time (user, sys) of `who` so far.
fn cpu(who: UsageWho) -> (Duration, Duration) {
    let u = nix::sys::resource::getrusage(who).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    (tv(u.user_time()), tv(u.system_time()))
}

/// A step being measured: [`Stopwatch::stop`] gives its [`Cost`] so far (for steps that
/// `.await`, where [`measure`] cannot wrap them).
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    who: UsageWho,
    t0: Instant,
    user: Duration,
    sys: Duration,
}

impl Stopwatch {
    /// Starts measuring the CPU time of `who` (ourselves, or the children waited for meanwhile).
    pub fn start(who: UsageWho) -> Self {
        let (user, sys) = cpu(who);
        Self {
            who,
            t0: Instant::now(),
            user,
            sys,
        }
    }

    /// The cost since [`Self::start`].
    pub fn stop(&self) -> Cost {
        let wall = self.t0.elapsed();
        let (user, sys) = cpu(self.who);
        Cost {
            wall,
            user: user.saturating_sub(self.user),
            sys: sys.saturating_sub(self.sys),
        }
    }
}

/// Runs `f`, charging it the CPU time `who` (ourselves, or the children waited for meanwhile)
/// spent during it.
pub fn measure<T>(who: UsageWho, f: impl FnOnce() -> T) -> (T, Cost) {
    let watch = Stopwatch::start(who);
    let out = f();
    (out, watch.stop())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_follows_the_requested_precision() {
        let c = Cost {
            wall: Duration::from_millis(1500),
            user: Duration::from_millis(250),
            sys: Duration::from_millis(750),
        };
        assert_eq!(
            c.to_string(),
            "    1.50 s  (user    0.25 s, sys    0.75 s:  75% in the kernel)"
        );
        assert_eq!(
            format!("{c:.3}"),
            "   1.500 s  (user   0.250 s, sys   0.750 s:  75% in the kernel)"
        );
    }
}
