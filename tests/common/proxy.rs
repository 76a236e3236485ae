//! A TCP proxy of the tests' own between a client and a server on this
//! machine, for injecting network faults for real: it forwards bytes both
//! ways until told to fault on the next client chunk that contains a
//! marker (say, the name of a write's SQL function), then either
//! - `Hold`: keeps that chunk (never forwarded) and stops both directions,
//!   sockets left open: a client that vanished mid-request (no FIN);
//! - `DropReply`: forwards it, then swallows everything the server sends
//!   back on that connection: the request ran, its answer is lost.
//!
//! `black_hole(true)` also stops every connection, old and new, the same way
//! (a network that is gone without a word). New connections after a fault
//! pass normally unless black-holed.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Hold,
    DropReply,
}

#[derive(Default)]
struct Shared {
    /// (marker, fault) armed for the next client chunk containing marker.
    armed: Mutex<Option<(Vec<u8>, Fault)>>,
    /// How many armed faults have fired.
    fired: Mutex<usize>,
    black_hole: AtomicBool,
    stop: AtomicBool,
}

pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to 127.0.0.1:`to`.
    pub fn start(to: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        listener.set_nonblocking(true).expect("nonblocking listener");
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        thread::spawn(move || {
            while !s.stop.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                            continue;
                        };
                        let frozen = Arc::new(AtomicBool::new(false));
                        let swallow = Arc::new(AtomicBool::new(false));
                        pipe(&s, &client, &server, true, &frozen, &swallow);
                        pipe(&s, &server, &client, false, &frozen, &swallow);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy { port, shared }
    }

    pub fn url(&self, db: &str, user: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}?sslmode=disable", self.port)
    }

    /// Faults the next client chunk that contains `marker`.
    pub fn arm(&self, marker: &str, fault: Fault) {
        *self.shared.armed.lock().unwrap() = Some((marker.as_bytes().to_vec(), fault));
    }

    /// How many armed faults have fired so far.
    pub fn fired(&self) -> usize {
        *self.shared.fired.lock().unwrap()
    }

    pub fn black_hole(&self, on: bool) {
        self.shared.black_hole.store(on, Ordering::Release);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

/// Copies `from` to `to` on a thread of its own, applying the faults.
fn pipe(
    shared: &Arc<Shared>,
    from: &TcpStream,
    to: &TcpStream,
    from_client: bool,
    frozen: &Arc<AtomicBool>,
    swallow: &Arc<AtomicBool>,
) {
    let (mut from, mut to) = (from.try_clone().expect("clone"), to.try_clone().expect("clone"));
    let (shared, frozen, swallow) = (Arc::clone(shared), Arc::clone(frozen), Arc::clone(swallow));
    from.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            if shared.stop.load(Ordering::Acquire) {
                break;
            }
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
                Err(_) => break,
            };
            let chunk = &buf[..n];
            if from_client {
                let mut armed = shared.armed.lock().unwrap();
                let hit = armed
                    .as_ref()
                    .is_some_and(|(marker, _)| chunk.windows(marker.len()).any(|w| w == &marker[..]));
                if hit {
                    let (_, fault) = armed.take().unwrap();
                    *shared.fired.lock().unwrap() += 1;
                    match fault {
                        Fault::Hold => frozen.store(true, Ordering::Release),
                        Fault::DropReply => swallow.store(true, Ordering::Release),
                    }
                }
            }
            if frozen.load(Ordering::Acquire) || shared.black_hole.load(Ordering::Acquire) {
                // Bytes stop here, in both directions; the sockets stay open.
                continue;
            }
            if !from_client && swallow.load(Ordering::Acquire) {
                continue;
            }
            if to.write_all(chunk).is_err() {
                break;
            }
        }
        // A frozen connection's far end never hears that this one closed.
        if !frozen.load(Ordering::Acquire) && !shared.black_hole.load(Ordering::Acquire) {
            let _ = to.shutdown(Shutdown::Write);
        }
    });
}
