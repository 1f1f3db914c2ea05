//! vnrit streams an X11 desktop to web browsers over WebRTC and takes their
//! keyboard and mouse back.
//!
//! Data flows one way per direction, and each stage has its own module:
//!
//! ```text
//!  X server ──capture──▶ video (convert, scale, H.264) ──▶ broadcast ──▶ session (one per viewer) ──▶ browser
//!                                                                        ▲
//!  server: HTTP, the embedded page (web/), WebSocket signalling, auth ──┘
//! ```
//!
//! * [`capture`] grabs the screen from X11 (MIT-SHM or GetImage) only when XDamage says it changed.
//! * [`video`] turns BGRA frames into I420, optionally downscales, and encodes H.264 with OpenH264.
//! * [`broadcast`] runs one capture+encode pipeline per display on its own thread, started by the
//!   first viewer and stopped after the last, and fans encoded frames out to every viewer.
//! * [`session`] is one viewer's WebRTC peer connection (webrtc-rs), the only module that
//!   touches WebRTC.
//! * [`server`] serves the page, the signalling WebSocket and the stats API, with token auth.
//! * [`abr`] adapts the shared encoder's bitrate to the viewers' links (per-viewer bandwidth
//!   estimates, RTT and loss) and drops frames for a viewer far slower than the rest.
//! * [`display`] starts a private Xvfb when no display is given.
//! * [`publish`] pushes the shared stream to a WHIP ingest (an SFU) with `--whip`.
//! * [`control`] decides who may drive the desktop when several people watch (presence,
//!   one controller at a time, hand-over); the server and input ask it.
//! * [`input`] injects the viewers' keyboard and mouse with XTest and sends them the cursor
//!   and clipboard.
//! * `on_demand` is the life of a worker thread shared by subscribers (the video pipeline and
//!   the audio worker both use it).
//! * [`resize`] sets the X screen to a viewer's window size and DPI (RandR), when allowed.
//! * [`launch`] starts the programs of the desktop (the COMMAND after `--`, or a window
//!   manager and a terminal) and stops them with vnrit.
//! * [`xserver`] holds one X connection from start to exit, so a server never resets under
//!   vnrit, and waits briefly for a server that is still starting.
//! * [`lock`] is the one way vnrit takes a lock (a poisoned one is used as it is; the module
//!   says why).
//! * [`wake`] lets other threads cut short the capture and input threads' sleep on their X
//!   connection.

pub mod abr;
pub mod audio;
pub mod broadcast;
pub mod capture;
pub mod cli;
pub mod config;
pub mod control;
pub mod display;
pub mod input;
pub mod launch;
pub mod lock;
pub(crate) mod on_demand;
pub mod publish;
pub mod resize;
pub mod server;
pub mod session;
pub mod video;
pub mod wake;
pub mod xserver;
