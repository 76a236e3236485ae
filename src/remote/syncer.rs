//! The background syncer: one per machine and database (whoever holds
//! `<db>.syncer-lock`; the others wait for it to be free and see its work
//! through the local database's generation, like any other process's).
//!
//! It runs a pass when a notification says the remote moved, at least every
//! `pollInterval` (correctness never rests on NOTIFY: pgbouncer in
//! transaction mode and some engines drop it), and right after every
//! (re)connect, since notifications sent while disconnected are lost. A lost
//! connection is retried with doubling backoff, reported once per outage.

use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::replica::SyncOutcome;
use super::Remote;
use crate::db::{queries, Database};
use crate::error::{Error, Result};
use crate::fsutil;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the syncer needs of the cache it serves.
pub trait Host: Send + Sync + 'static {
    fn database(&self) -> &Database;
    /// A pass moved the replica forward.
    fn synced(&self, outcome: &SyncOutcome);
    /// The remote cannot be reached, or a pass failed.
    fn failed(&self, error: &Error);
}

/// The handle the cache keeps.
pub struct Syncer {
    stop: Arc<AtomicBool>,
    wake: mpsc::Sender<()>,
}

impl Syncer {
    pub fn start<H: Host>(host: Weak<H>, remote: Arc<Remote>) -> Result<Syncer> {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, woken) = mpsc::channel();
        let (s, w) = (Arc::clone(&stop), wake.clone());
        std::thread::Builder::new()
            .name("pattern-cache-sync".into())
            .spawn(move || run(host, remote, &s, &w, &woken))
            .map_err(|e| Error::io("starting the remote syncer thread", e))?;
        Ok(Syncer { stop, wake })
    }

    /// Ends the thread at its next wake-up; never waits for the network.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.send(());
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Woke {
    /// A notification, or the connection's end.
    Signal,
    Timeout,
    Stop,
}

/// Sleeps up to `d` or until woken; drains further wake-ups (one pass
/// answers them all).
fn wait_for(d: Duration, woken: &mpsc::Receiver<()>, stop: &AtomicBool) -> Woke {
    let why = match woken.recv_timeout(d) {
        Ok(()) => Woke::Signal,
        Err(RecvTimeoutError::Timeout) => Woke::Timeout,
        Err(RecvTimeoutError::Disconnected) => return Woke::Stop,
    };
    while woken.try_recv().is_ok() {}
    if stop.load(Ordering::Acquire) {
        Woke::Stop
    } else {
        why
    }
}

/// `wait_for`: false when told to stop.
fn wait(d: Duration, woken: &mpsc::Receiver<()>, stop: &AtomicBool) -> bool {
    wait_for(d, woken, stop) != Woke::Stop
}

fn try_role(db_path: &std::path::Path) -> Option<File> {
    let file = fsutil::open_lock_file(&fsutil::with_suffix(db_path, ".syncer-lock")).ok()?;
    file.try_lock().ok()?;
    Some(file)
}

fn run<H: Host>(
    host: Weak<H>,
    remote: Arc<Remote>,
    stop: &AtomicBool,
    wake: &mpsc::Sender<()>,
    woken: &mpsc::Receiver<()>,
) {
    let Ok(rt) = crate::runtime::required() else { return };
    let poll = remote.config.poll_interval;
    // Wait for the role: another process may be this machine's syncer.
    let _role = loop {
        let Some(h) = host.upgrade() else { return };
        if let Some(role) = try_role(remote.db_path()) {
            break role;
        }
        drop(h);
        if !wait(poll, woken, stop) {
            return;
        }
    };
    let mut backoff = FIRST_BACKOFF;
    let mut reported: Option<String> = None;
    // The highest generation a notification named.
    let heard = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let report = |h: &H, e: &Error, reported: &mut Option<String>| {
        let text = e.to_string();
        if reported.as_deref() != Some(&text) {
            h.failed(e);
            *reported = Some(text);
        }
    };
    while !stop.load(Ordering::Acquire) {
        let Some(h) = host.upgrade() else { return };
        // Wakes the wait below on a notification (its payload is the
        // generation just committed) and when the connection ends. Anyone
        // who may LISTEN may also NOTIFY: a payload only decides whether a
        // pass is worth running, and is never reported as the bank's
        // generation (that comes from the bank's state row alone).
        let (wake_up, heard_now) = (wake.clone(), Arc::clone(&heard));
        let notified: Option<super::connect::OnNotify> = Some(Box::new(move |payload: Option<&str>| {
            if let Some(Ok(g)) = payload.map(str::parse::<u64>) {
                heard_now.fetch_max(g, Ordering::AcqRel);
            }
            let _ = wake_up.send(());
        }));
        // The LISTEN connection is the syncer's own: notifications ride on it.
        let client = rt.block_on(super::timed(remote.target(), async {
            let client = remote.connect_checked(h.database(), notified).await?;
            if remote.config.listen {
                client
                    .batch_execute(&format!("LISTEN {}", remote.target().schema().channel()))
                    .await
                    .map_err(|e| remote.target().error(&e))?;
            }
            Ok(client)
        }));
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                remote.set_connected(false);
                report(&h, &e, &mut reported);
                drop(h);
                if !wait(backoff, woken, stop) {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF).min(poll.max(FIRST_BACKOFF));
                continue;
            }
        };
        backoff = FIRST_BACKOFF;
        remote.set_connected(true);
        drop(h);
        // Passes until the connection breaks.
        let mut woke = Woke::Timeout;
        loop {
            let Some(h) = host.upgrade() else { return };
            // A notification of a generation the replica holds already (this
            // machine's own write, applied by its writer) needs no pass.
            let seen = heard.load(Ordering::Acquire);
            let behind = woke != Woke::Signal
                || h.database()
                    .read(|c| Ok(!super::replica::is_replica(c)? || queries::generation(c)?.generation < seen))
                    .unwrap_or(true);
            let pass = if behind {
                remote.pass(rt, &client, h.database()).map(Some)
            } else {
                Ok(None)
            };
            match pass {
                Ok(outcome) => {
                    reported = None;
                    if let Some(o) = outcome.filter(|o| o.to_generation != o.from_generation || o.reset.is_some()) {
                        h.synced(&o);
                    }
                }
                Err(e @ Error::RemoteUnavailable(_)) => {
                    remote.set_connected(false);
                    report(&h, &e, &mut reported);
                    break;
                }
                Err(e) => report(&h, &e, &mut reported),
            }
            drop(h);
            woke = wait_for(poll, woken, stop);
            if woke == Woke::Stop {
                return;
            }
            if client.is_closed() {
                remote.set_connected(false);
                break;
            }
        }
    }
}
