//! The desktop fits the viewer: pages ask for their size, vnrit sets the X screen to it.
//!
//! One [`ResizeService`] per display owns a private X connection ([`randr::Screen`]) on its own
//! thread, and the decision state ([`policy::Policy`]: who may resize, which request wins,
//! spacing, bounds, even sizes, a display that refuses). A signalling session hands each of
//! its page's requests to [`ResizeService::request`] with whether that viewer may control the
//! desktop, and says when it leaves; the thread applies what the policy says is due. Capture,
//! encoder and page follow the new size through RandR's own notifications, as they do for any
//! resize.
//!
//! Settings: [`ResizeMode`] (`--resize`) and `--max-size`, in [`ResizeSettings`].

pub mod policy;
pub mod randr;

use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::lock::lock;
use policy::{Policy, Refusal, Request, Target};
use randr::{RandrError, Screen};

/// `--resize`: whether pages may set the screen size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResizeMode {
    /// On for the virtual display vnrit starts, off for a display it was given.
    Auto,
    /// Always (the display must support RandR 1.2 modes).
    On,
    /// Never.
    Off,
}

impl ResizeMode {
    /// Whether resizing is on, for a display vnrit started itself (`own`) or not.
    pub fn enabled(self, own: bool) -> bool {
        match self {
            ResizeMode::Auto => own,
            ResizeMode::On => true,
            ResizeMode::Off => false,
        }
    }
}

/// Resize settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResizeSettings {
    /// `--resize`.
    pub mode: ResizeMode,
    /// `--max-size`: the largest screen a page may ask for.
    pub max: (u32, u32),
}

impl Default for ResizeSettings {
    fn default() -> Self {
        ResizeSettings {
            mode: ResizeMode::Auto,
            max: (3840, 2160),
        }
    }
}

/// What the thread is told.
enum Command {
    /// Something may be due.
    Wake,
    /// Put the display back as it was (when vnrit did not start it), then stop.
    Stop { restore: bool },
}

/// Sets the screen size on behalf of the pages. Dropping it stops the thread.
pub struct ResizeService {
    policy: Arc<Mutex<Policy>>,
    tx: mpsc::Sender<Command>,
    thread: Mutex<Option<JoinHandle<()>>>,
    restore: bool,
}

impl ResizeService {
    /// Opens display `name` for resizing, bounded by `max` and the display's own limit. With
    /// `initial`, sets that size (96 DPI) before returning. `restore`: put the display back as
    /// it was on [`shutdown`](Self::shutdown) (for a display vnrit did not start).
    pub fn start(
        name: &str,
        max: (u32, u32),
        initial: Option<(u32, u32)>,
        restore: bool,
    ) -> Result<ResizeService, RandrError> {
        let mut screen = Screen::open(name)?;
        let limit = screen.max();
        let max = (max.0.min(limit.0), max.1.min(limit.1));
        let mut policy = Policy::new(true, max);
        policy.set_current(screen.original());
        if let Some((w, h)) = initial {
            let target = policy
                .target_for(Request {
                    width: w,
                    height: h,
                    dpr: 1.0,
                })
                .map_err(|e| RandrError::Unsupported(e.to_string()))?;
            screen.apply(target)?;
            policy.set_current(target);
        }
        tracing::info!(
            display = %name,
            max_width = max.0,
            max_height = max.1,
            "pages may resize the desktop"
        );
        let policy = Arc::new(Mutex::new(policy));
        let (tx, rx) = mpsc::channel();
        let shared = Arc::clone(&policy);
        let thread = std::thread::Builder::new()
            .name("vnrit-resize".into())
            .spawn(move || run(screen, &shared, &rx))
            .map_err(|e| RandrError::X(format!("cannot start the resize thread: {e}")))?;
        Ok(ResizeService {
            policy,
            tx,
            thread: Mutex::new(Some(thread)),
            restore,
        })
    }

    /// The largest size a page may ask for.
    pub fn max(&self) -> (u32, u32) {
        self.lock().max()
    }

    /// Viewer `viewer` asks for `req`; `may_control` says whether it may control the desktop.
    pub fn request(&self, viewer: u64, may_control: bool, req: Request) -> Result<Target, Refusal> {
        let target = self.lock().request(viewer, may_control, req)?;
        let _ = self.tx.send(Command::Wake);
        Ok(target)
    }

    /// Viewer `viewer` left: its request, if still waiting, is dropped.
    pub fn viewer_left(&self, viewer: u64) {
        self.lock().viewer_left(viewer);
    }

    /// Stops the thread (bounded by `timeout`), first putting a display vnrit did not start
    /// back to its original size.
    pub fn shutdown(&self, timeout: Duration) {
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            let _ = self.tx.send(Command::Stop {
                restore: self.restore,
            });
            let deadline = Instant::now() + timeout;
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Policy> {
        // A panic while holding the lock leaves a consistent policy (every method is a few
        // assignments), so a poisoned lock is used as is.
        lock(&self.policy)
    }
}

impl Drop for ResizeService {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(1));
    }
}

/// The resize thread: waits for requests, applies what the policy says is due.
fn run(mut screen: Screen, policy: &Mutex<Policy>, rx: &mpsc::Receiver<Command>) {
    loop {
        let wait = lock(policy).next_wake(Instant::now());
        let command = match wait {
            Some(d) if d.is_zero() => Ok(Command::Wake),
            Some(d) => match rx.recv_timeout(d) {
                Err(mpsc::RecvTimeoutError::Timeout) => Ok(Command::Wake),
                other => other.map_err(|_| ()),
            },
            None => rx.recv().map_err(|_| ()),
        };
        match command {
            Ok(Command::Wake) => {}
            Ok(Command::Stop { restore }) => {
                if restore {
                    if let Err(err) = screen.restore() {
                        tracing::warn!("could not put the display back to its size: {err}");
                    }
                }
                return;
            }
            Err(()) => return,
        }
        let Some(target) = lock(policy).due(Instant::now()) else {
            continue;
        };
        let started = Instant::now();
        let result = screen.apply(target);
        let ok = result.is_ok();
        match result {
            Ok(()) => tracing::info!(
                width = target.width,
                height = target.height,
                dpi = target.dpi,
                ms = started.elapsed().as_millis() as u64,
                "set the screen to the viewer's size"
            ),
            Err(err) => tracing::warn!(
                width = target.width,
                height = target.height,
                "the display refused the viewer's size: {err}"
            ),
        }
        let mut p = lock(policy);
        p.applied(Instant::now(), target, ok);
        if !p.active() {
            tracing::warn!(
                "the display refused {} sizes in a row; it keeps its size and pages scale the picture",
                policy::MAX_FAILURES
            );
        }
    }
}
