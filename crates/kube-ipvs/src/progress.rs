//! Progress of long work on a large node (programming its kernel, cleaning it up): the caller
//! logs a line every [`EVERY`] while it runs and one at the end with the total and rate, so an
//! operator watching a rollout sees it move. Counting only; the words are the caller's.

use std::time::{Duration, Instant};

/// Work that takes longer than this logs its progress.
pub const EVERY: Duration = Duration::from_secs(5);

/// Items done out of a known total, and since when.
#[derive(Debug)]
pub struct Progress {
    total: usize,
    done: usize,
    started: Instant,
    logged: Instant,
}

impl Progress {
    /// Nothing done yet of `total`.
    #[must_use]
    pub fn new(total: usize) -> Self {
        let now = Instant::now();
        Self {
            total,
            done: 0,
            started: now,
            logged: now,
        }
    }

    /// Counts `n` more done; whether a progress line is due (one per [`EVERY`], none once all
    /// is done: the end has its own line).
    pub fn advance(&mut self, n: usize) -> bool {
        self.done += n;
        let due = self.done < self.total && self.logged.elapsed() >= EVERY;
        if due {
            self.logged = Instant::now();
        }
        due
    }

    /// Whether the work took long enough for its end to be logged.
    #[must_use]
    pub fn was_long(&self) -> bool {
        self.started.elapsed() >= EVERY
    }

    /// Items done.
    #[must_use]
    pub fn done(&self) -> usize {
        self.done
    }

    /// Items in all.
    #[must_use]
    pub fn total(&self) -> usize {
        self.total
    }

    /// Seconds since the start.
    #[must_use]
    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Items done per second so far (0 before any time passed).
    #[must_use]
    pub fn per_second(&self) -> u64 {
        let s = self.seconds();
        if s > 0.0 {
            // Display only: a rate below 2^53 per second converts exactly.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let r = (self.done as f64 / s) as u64;
            r
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_due_once_per_period_and_never_at_the_end() {
        let mut p = Progress::new(3);
        assert!(!p.advance(1), "nothing is due before a period passed");
        p.logged -= EVERY;
        assert!(p.advance(1));
        assert!(!p.advance(0), "one line per period");
        p.logged -= EVERY;
        assert!(!p.advance(1), "the end has its own line");
        assert_eq!((p.done(), p.total()), (3, 3));
        assert!(!p.was_long());
        p.started -= EVERY;
        assert!(p.was_long());
    }
}
