//! Background rebuilds on a shared tokio runtime: debounced, single flight,
//! and timed by the cache's TTL.
//!
//! Each cache instance gets one task. Invalidations arrive on a channel; the
//! task waits until they stop for `DEBOUNCE` (but no longer than `MAX_DELAY`
//! after the first), then runs one rebuild on the blocking pool and waits
//! for it. Invalidations that arrive during a rebuild collapse into one
//! queued rebuild. The task holds the cache only weakly, so a dropped cache
//! stops it; `stop` ends it and waits until any rebuild it started is over.

use std::sync::{mpsc as std_mpsc, Weak};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::model::Trigger;

/// Quiet time after the last invalidation before a rebuild starts.
pub const DEBOUNCE: Duration = Duration::from_millis(50);
/// The longest an invalidation waits for quiet.
pub const MAX_DELAY: Duration = Duration::from_millis(500);
/// After a rebuild, the TTL timer does not fire again sooner than this
/// (so a rebuild that keeps failing does not spin).
pub const TTL_RETRY: Duration = Duration::from_secs(1);

/// What the scheduler needs from a cache.
pub trait Rebuild: Send + Sync + 'static {
    /// Runs one rebuild (blocking).
    fn rebuild_in_background(&self, trigger: Trigger, force: bool);
    /// How long until the file in use reaches 80% of `maxAge` (zero: now);
    /// `None` when there is no file to age.
    fn until_ttl(&self) -> Option<Duration>;
}

enum Msg {
    Invalidate {
        trigger: Trigger,
        urgent: bool,
        force: bool,
    },
    /// Re-read the TTL (a new file was installed).
    Wake,
}

/// The handle a cache keeps for its task.
pub struct Scheduler {
    /// The task's only sender: dropping it ends the task.
    tx: std::sync::Mutex<Option<mpsc::UnboundedSender<Msg>>>,
    done: std::sync::Mutex<Option<std_mpsc::Receiver<()>>>,
}

impl Scheduler {
    /// Starts the task for `cache`; `None` if no runtime could be made.
    pub fn start<R: Rebuild>(cache: Weak<R>) -> Option<Scheduler> {
        let rt = crate::runtime::get()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = std_mpsc::sync_channel(1);
        rt.spawn(async move {
            run(cache, rx).await;
            let _ = done_tx.send(());
        });
        Some(Scheduler {
            tx: std::sync::Mutex::new(Some(tx)),
            done: std::sync::Mutex::new(Some(done_rx)),
        })
    }

    fn send(&self, msg: Msg) {
        if let Some(tx) = self.tx.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = tx.send(msg);
        }
    }

    /// Asks for a rebuild: now (`urgent`) or after the burst settles.
    pub fn invalidate(&self, trigger: Trigger, urgent: bool, force: bool) {
        self.send(Msg::Invalidate { trigger, urgent, force });
    }

    /// Re-reads the TTL (a new file is in use).
    pub fn wake(&self) {
        self.send(Msg::Wake);
    }

    /// Ends the task without waiting.
    pub fn signal_stop(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Ends the task and waits (up to `timeout`) until it has finished,
    /// including a rebuild it is running. Idempotent; true once it has ended.
    pub fn stop(&self, timeout: Duration) -> bool {
        self.signal_stop();
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        match done.as_ref().map(|rx| rx.recv_timeout(timeout)) {
            None => true,
            Some(Ok(())) | Some(Err(std_mpsc::RecvTimeoutError::Disconnected)) => {
                *done = None;
                true
            }
            Some(Err(std_mpsc::RecvTimeoutError::Timeout)) => false,
        }
    }
}

struct Pending {
    trigger: Trigger,
    force: bool,
    first: Instant,
    last: Instant,
    urgent: bool,
}

impl Pending {
    fn due(&self) -> Instant {
        if self.urgent {
            self.last
        } else {
            (self.last + DEBOUNCE).min(self.first + MAX_DELAY)
        }
    }
}

async fn run<R: Rebuild>(cache: Weak<R>, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut pending: Option<Pending> = None;
    let mut ttl_not_before = Instant::now();
    loop {
        let ttl_at = match cache.upgrade() {
            Some(c) => c.until_ttl().map(|d| (Instant::now() + d).max(ttl_not_before)),
            None => return,
        };
        let due = pending.as_ref().map(Pending::due);
        let wake_at = match (due, ttl_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let msg = match wake_at {
            Some(at) => tokio::select! {
                m = rx.recv() => Some(m),
                _ = sleep_until(at) => None,
            },
            None => Some(rx.recv().await),
        };
        match msg {
            Some(None) => return, // every sender dropped: the cache is gone or stopped
            Some(Some(Msg::Wake)) => {}
            Some(Some(Msg::Invalidate { trigger, urgent, force })) => {
                let now = Instant::now();
                pending = Some(match pending.take() {
                    Some(p) => Pending {
                        // The first reason names the rebuild, unless a later one
                        // asks for it now; any forced one forces it.
                        trigger: if urgent && !p.urgent { trigger } else { p.trigger },
                        force: p.force || force,
                        first: p.first,
                        last: now,
                        urgent: p.urgent || urgent,
                    },
                    None => Pending {
                        trigger,
                        force,
                        first: now,
                        last: now,
                        urgent,
                    },
                });
            }
            None => {
                let now = Instant::now();
                let job = match pending.take() {
                    Some(p) if p.due() <= now => Some((p.trigger, p.force)),
                    Some(p) => {
                        pending = Some(p);
                        None
                    }
                    None => None,
                };
                let job = job.or_else(|| ttl_at.filter(|&t| t <= now).map(|_| (Trigger::TtlExpired, true)));
                if let Some((trigger, force)) = job {
                    let Some(c) = cache.upgrade() else { return };
                    // Single flight: the loop waits for this rebuild before the next.
                    let _ = tokio::task::spawn_blocking(move || c.rebuild_in_background(trigger, force)).await;
                    ttl_not_before = Instant::now() + TTL_RETRY;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    struct Counting {
        rebuilds: AtomicUsize,
        reasons: Mutex<Vec<Trigger>>,
        done: Mutex<std_mpsc::Sender<()>>,
    }

    impl Rebuild for Counting {
        fn rebuild_in_background(&self, trigger: Trigger, _force: bool) {
            self.rebuilds.fetch_add(1, Ordering::SeqCst);
            self.reasons.lock().unwrap().push(trigger);
            let _ = self.done.lock().unwrap().send(());
        }
        fn until_ttl(&self) -> Option<Duration> {
            None
        }
    }

    fn counting() -> (Arc<Counting>, std_mpsc::Receiver<()>) {
        let (tx, rx) = std_mpsc::channel();
        let c = Arc::new(Counting {
            rebuilds: AtomicUsize::new(0),
            reasons: Mutex::new(Vec::new()),
            done: Mutex::new(tx),
        });
        (c, rx)
    }

    #[test]
    fn a_burst_of_invalidations_coalesces() {
        let (cache, done) = counting();
        let s = Scheduler::start(Arc::downgrade(&cache)).unwrap();
        for _ in 0..1000 {
            s.invalidate(Trigger::PatternStored, false, false);
        }
        done.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(s.stop(Duration::from_secs(10)));
        let n = cache.rebuilds.load(Ordering::SeqCst);
        assert!((1..=2).contains(&n), "{n} rebuilds");
    }

    #[test]
    fn an_urgent_request_names_the_rebuild_and_runs_without_waiting_for_quiet() {
        let (cache, done) = counting();
        let s = Scheduler::start(Arc::downgrade(&cache)).unwrap();
        s.invalidate(Trigger::PatternStored, false, false);
        s.invalidate(Trigger::Manual, true, true);
        done.recv_timeout(Duration::from_secs(10)).unwrap();
        s.stop(Duration::from_secs(10));
        assert_eq!(cache.reasons.lock().unwrap()[0], Trigger::Manual);
    }

    #[test]
    fn the_task_ends_when_its_cache_is_dropped_or_stopped() {
        let (cache, _done) = counting();
        let s = Scheduler::start(Arc::downgrade(&cache)).unwrap();
        drop(cache);
        s.wake(); // the task notices the cache is gone and ends by itself
        assert!(s.stop(Duration::from_secs(10)));
        assert!(s.stop(Duration::from_secs(0)), "idempotent");

        let (cache, _done) = counting();
        let s = Scheduler::start(Arc::downgrade(&cache)).unwrap();
        assert!(s.stop(Duration::from_secs(10)), "stopped while its cache lives");
    }
}
