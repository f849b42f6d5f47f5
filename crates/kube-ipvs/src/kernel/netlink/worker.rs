//! The thread kernel reads (full and partial) run on.
//!
//! A full read of a large table is seconds of system calls (one GET_DEST dump per virtual
//! server: 100,000 at 50,000 Services). On the agent's own thread it would share one cooperative
//! scheduler with the sync loop, the watches and the HTTP servers; on a thread of its own, with a
//! runtime of its own, it only shares the CPUs. Its sockets (the `Reader`) are opened by the first
//! read, so they are registered with this runtime's reactor and stay usable by every later read.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::{mpsc, oneshot};

use super::super::KernelError;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A thread with a current-thread runtime that runs one read at a time, in order.
#[derive(Debug)]
pub(super) struct ReadWorker {
    jobs: mpsc::UnboundedSender<Job>,
}

impl ReadWorker {
    /// Starts the thread.
    pub(super) fn start() -> Result<Self, KernelError> {
        let thread_error = |source| KernelError::Namespace {
            op: "start the kernel read thread".into(),
            source,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(thread_error)?;
        let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name("kernel-read".into())
            .spawn(move || {
                // Ends when the kernel (the sender) is dropped.
                rt.block_on(async move {
                    while let Some(job) = rx.recv().await {
                        // A task of its own: a panicking read fails that read, not the thread.
                        let _ = tokio::spawn(job).await;
                    }
                });
            })
            .map_err(thread_error)?;
        Ok(Self { jobs })
    }

    /// Runs `work` on the thread; its output, or an error if it panicked or the thread is gone.
    pub(super) fn run<T, F>(
        &self,
        work: F,
    ) -> impl Future<Output = Result<T, KernelError>> + Send + 'static + use<T, F>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let sent = self.jobs.send(Box::pin(async move {
            let _ = tx.send(work.await);
        }));
        async move {
            let lost = || KernelError::Namespace {
                op: "kernel read".into(),
                source: std::io::Error::other("the read panicked or its thread ended"),
            };
            if sent.is_err() {
                return Err(lost());
            }
            rx.await.map_err(|_| lost())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_read_thread_in_order() {
        let w = ReadWorker::start().unwrap();
        let name = || std::thread::current().name().map(str::to_owned);
        let a = w.run(async move { name() });
        let b = w.run(async { 2 });
        assert_eq!(a.await.unwrap().as_deref(), Some("kernel-read"));
        assert_eq!(b.await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_panicking_read_is_an_error_not_a_hang() {
        let w = ReadWorker::start().unwrap();
        let r = w.run(async { panic!("boom") }).await;
        let e: Result<(), _> = r;
        assert!(e.unwrap_err().to_string().contains("kernel read"));
        // The thread lives on for the next read.
        assert_eq!(w.run(async { 3 }).await.unwrap(), 3);
    }
}
