//! The clipboard between the pages and X: UTF-8 text, and PNG images (`image/png`), up to
//! `--max-clipboard` bytes either way (16 MiB by default).
//!
//! X to page ([`fetch`]): XFixes reports each new owner of CLIPBOARD; the watcher asks the
//! owner for its TARGETS, then for `image/png` when it offers that and no text, else for
//! UTF8_STRING (STRING if refused), into a property of its own hidden window, reads it
//! (following the INCR protocol when the owner sends it in chunks, see [`incr`]), and
//! publishes it to controlling viewers, or a message saying it is too large.
//!
//! Page to X ([`serve`]): [`Clipboard::set`] keeps the text and takes ownership of CLIPBOARD
//! and PRIMARY, [`Clipboard::set_image`] keeps a PNG and takes CLIPBOARD; requests from other
//! clients (TARGETS, UTF8_STRING, TEXT, STRING; TARGETS and `image/png` for an image) are
//! answered from it until another client takes the selection. Contents over one property
//! (see [`incr::chunk_size`]) go INCR, to any number of requestors at once; one that stops
//! deleting the property is dropped after [`incr::STEP_TIMEOUT`].
//!
//! Everything is driven by X events on the input thread, a chunk at a time, so small
//! requests are answered while a large transfer is in flight. Contents are kept once
//! ([`Arc`]) and sent to every requestor from there.

mod fetch;
pub(crate) mod incr;
mod serve;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use x11rb::connection::Connection;
use x11rb::errors::{ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ConnectionExt as _, CreateWindowAux, EventMask, Window, WindowClass,
};
use x11rb::protocol::{xfixes, Event};
use x11rb::CURRENT_TIME;

use super::wire;
use super::Publisher;

/// Atoms the clipboard uses.
#[derive(Debug, Clone, Copy)]
struct Atoms {
    clipboard: Atom,
    utf8: Atom,
    targets: Atom,
    text: Atom,
    incr: Atom,
    property: Atom,
    png: Atom,
}

/// What we own the selections with (shared with the INCR transfers sending it).
#[derive(Debug)]
enum Owned {
    /// UTF-8 text.
    Text(Arc<Vec<u8>>),
    Png(Arc<Vec<u8>>),
}

/// The clipboard watcher and owner.
#[derive(Debug)]
pub(crate) struct Clipboard {
    window: Window,
    atoms: Atoms,
    /// What we own the selections with, if anything.
    owned: Option<Owned>,
    enabled: bool,
    /// The largest content carried either way (`--max-clipboard`).
    max: usize,
    /// Contents over this many bytes are sent INCR.
    chunk: usize,
    /// The X clipboard arriving in INCR chunks, if it is.
    incoming: Option<incr::Receive>,
    /// INCR sends in flight, by requestor window and property.
    sending: HashMap<(Window, Atom), incr::Send>,
}

fn intern(conn: &impl Connection, name: &[u8]) -> Result<Atom, ReplyError> {
    Ok(conn.intern_atom(false, name)?.reply()?.atom)
}

impl Clipboard {
    /// Create the hidden window and watch CLIPBOARD (needs XFIXES; without it the X-to-page
    /// direction is off, the page-to-X direction still works). `max` is `--max-clipboard`.
    pub(crate) fn start(
        conn: &impl Connection,
        root: Window,
        max: usize,
    ) -> Result<Clipboard, ReplyOrIdError> {
        let window = conn.generate_id()?;
        conn.create_window(
            0,
            window,
            root,
            -10,
            -10,
            1,
            1,
            0,
            WindowClass::INPUT_ONLY,
            0,
            &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
        )?;
        let atoms = Atoms {
            clipboard: intern(conn, b"CLIPBOARD")?,
            utf8: intern(conn, b"UTF8_STRING")?,
            targets: intern(conn, b"TARGETS")?,
            text: intern(conn, b"TEXT")?,
            incr: intern(conn, b"INCR")?,
            property: intern(conn, b"VNRIT_CLIPBOARD")?,
            png: intern(conn, wire::IMAGE_PNG.as_bytes())?,
        };
        let enabled = conn
            .extension_information(xfixes::X11_EXTENSION_NAME)?
            .is_some();
        if enabled {
            // The cursor watcher has already negotiated the XFIXES version.
            xfixes::select_selection_input(
                conn,
                window,
                atoms.clipboard,
                xfixes::SelectionEventMask::SET_SELECTION_OWNER,
            )?;
        } else {
            tracing::warn!("input: no XFIXES extension; copies in X do not reach the page");
        }
        Ok(Clipboard {
            window,
            atoms,
            owned: None,
            enabled,
            max,
            chunk: incr::chunk_size(conn.maximum_request_bytes()),
            incoming: None,
            sending: HashMap::new(),
        })
    }

    /// Own CLIPBOARD and PRIMARY with `text` (from a page).
    pub(crate) fn set(
        &mut self,
        conn: &impl Connection,
        text: String,
    ) -> Result<(), ConnectionError> {
        // A transfer still coming in from the last owner is stale now.
        self.incoming = None;
        self.owned = Some(Owned::Text(Arc::new(text.into_bytes())));
        conn.set_selection_owner(self.window, self.atoms.clipboard, CURRENT_TIME)?;
        conn.set_selection_owner(self.window, AtomEnum::PRIMARY.into(), CURRENT_TIME)?;
        Ok(())
    }

    /// Own CLIPBOARD with a PNG image (from a page); PRIMARY is for text and left alone.
    pub(crate) fn set_image(
        &mut self,
        conn: &impl Connection,
        png: Vec<u8>,
    ) -> Result<(), ConnectionError> {
        self.incoming = None;
        self.owned = Some(Owned::Png(Arc::new(png)));
        conn.set_selection_owner(self.window, self.atoms.clipboard, CURRENT_TIME)?;
        Ok(())
    }

    /// Note an X event; returns whether it was one of ours.
    pub(crate) fn on_event(
        &mut self,
        conn: &impl Connection,
        ev: &Event,
        publish: &Publisher,
    ) -> Result<bool, ReplyError> {
        match ev {
            Event::XfixesSelectionNotify(n)
                if self.enabled && n.selection == self.atoms.clipboard =>
            {
                if n.owner != self.window && n.owner != x11rb::NONE {
                    // A new owner: whatever the last one was still sending is dropped.
                    self.incoming = None;
                    conn.convert_selection(
                        self.window,
                        self.atoms.clipboard,
                        self.atoms.targets,
                        self.atoms.property,
                        n.selection_timestamp,
                    )?;
                }
            }
            Event::SelectionNotify(n) if n.requestor == self.window => {
                self.received(conn, n, publish)?
            }
            Event::PropertyNotify(p) if p.window == self.window => {
                self.incoming_chunk(conn, p, publish)?
            }
            Event::PropertyNotify(p) if self.sending.contains_key(&(p.window, p.atom)) => {
                self.requestor_deleted(conn, p)?
            }
            Event::SelectionRequest(r) if r.owner == self.window => self.answer(conn, r)?,
            Event::SelectionClear(c) if c.owner == self.window => {
                // Another client owns one of the selections now; keep the text for the other.
                tracing::debug!(selection = c.selection, "input: clipboard taken over");
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// When the next transfer times out, if one is in flight.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let sends = self.sending.values().map(incr::Send::deadline);
        self.incoming
            .as_ref()
            .map(incr::Receive::deadline)
            .into_iter()
            .chain(sends)
            .min()
    }

    /// Drops the transfers whose other side stopped (no progress for
    /// [`incr::STEP_TIMEOUT`]).
    pub(crate) fn expire(
        &mut self,
        conn: &impl Connection,
        now: Instant,
        publish: &Publisher,
    ) -> Result<(), ConnectionError> {
        if self.incoming.as_ref().is_some_and(|r| r.deadline() <= now) {
            self.incoming = None;
            conn.delete_property(self.window, self.atoms.property)?;
            tracing::info!("input: the X clipboard owner stopped sending; transfer dropped");
            publish.clipboard_error(
                "The remote clipboard's owner stopped sending it (INCR transfer timed out): copy again.",
            );
        }
        let stale: Vec<(Window, Atom)> = self
            .sending
            .iter()
            .filter(|(_, s)| s.deadline() <= now)
            .map(|(k, _)| *k)
            .collect();
        for (window, property) in stale {
            tracing::info!(
                requestor = window,
                "input: a clipboard requestor stopped reading; transfer dropped"
            );
            self.forget_send(conn, window, property)?;
        }
        Ok(())
    }
}
