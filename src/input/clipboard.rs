//! The clipboard between the pages and X: UTF-8 text, and PNG images (`image/png`).
//!
//! X to page: XFixes reports each new owner of CLIPBOARD; the watcher asks the owner for its
//! TARGETS, then for `image/png` when it offers that and no text, else for UTF8_STRING
//! (STRING if refused), into a property of its own hidden window, reads it, and publishes it
//! to controlling viewers, or a message saying it is too large.
//!
//! Page to X: [`Clipboard::set`] keeps the text and takes ownership of CLIPBOARD and PRIMARY,
//! [`Clipboard::set_image`] keeps a PNG and takes CLIPBOARD; requests from other clients
//! (TARGETS, UTF8_STRING, TEXT, STRING; TARGETS and `image/png` for an image) are answered
//! from it until another client takes the selection.
//!
//! Not yet: the INCR protocol (transfers over what one property holds), so text is limited to
//! [`MAX_CLIPBOARD_BYTES`] and images to [`wire::MAX_IMAGE_BYTES`] either way.

use x11rb::connection::Connection;
use x11rb::errors::{ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ConnectionExt as _, CreateWindowAux, EventMask, PropMode, SelectionNotifyEvent,
    SelectionRequestEvent, Window, WindowClass, SELECTION_NOTIFY_EVENT,
};
use x11rb::protocol::{xfixes, Event};
use x11rb::wrapper::ConnectionExt as _;
use x11rb::CURRENT_TIME;

use super::wire::{self, MAX_CLIPBOARD_BYTES};
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

/// What we own the selections with.
#[derive(Debug)]
enum Owned {
    Text(String),
    Png(Vec<u8>),
}

/// The clipboard watcher and owner.
#[derive(Debug)]
pub(crate) struct Clipboard {
    window: Window,
    atoms: Atoms,
    /// What we own the selections with, if anything.
    owned: Option<Owned>,
    enabled: bool,
}

fn intern(conn: &impl Connection, name: &[u8]) -> Result<Atom, ReplyError> {
    Ok(conn.intern_atom(false, name)?.reply()?.atom)
}

impl Clipboard {
    /// Create the hidden window and watch CLIPBOARD (needs XFIXES; without it the X-to-page
    /// direction is off, the page-to-X direction still works).
    pub(crate) fn start(conn: &impl Connection, root: Window) -> Result<Clipboard, ReplyOrIdError> {
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
        })
    }

    /// Own CLIPBOARD and PRIMARY with `text` (from a page).
    pub(crate) fn set(
        &mut self,
        conn: &impl Connection,
        text: String,
    ) -> Result<(), ConnectionError> {
        self.owned = Some(Owned::Text(text));
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
        self.owned = Some(Owned::Png(png));
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
            Event::SelectionRequest(r) if r.owner == self.window => self.answer(conn, r)?,
            Event::SelectionClear(c) if c.owner == self.window => {
                // Another client owns one of the selections now; keep the text for the other.
                tracing::debug!(selection = c.selection, "input: clipboard taken over");
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The owner answered our ConvertSelection.
    fn received(
        &mut self,
        conn: &impl Connection,
        n: &SelectionNotifyEvent,
        publish: &Publisher,
    ) -> Result<(), ReplyError> {
        if n.target == self.atoms.targets {
            return self.choose_target(conn, n);
        }
        if n.property == x11rb::NONE {
            if n.target == self.atoms.utf8 {
                // Older owners only speak STRING (Latin-1).
                conn.convert_selection(
                    self.window,
                    self.atoms.clipboard,
                    AtomEnum::STRING.into(),
                    self.atoms.property,
                    n.time,
                )?;
            }
            return Ok(());
        }
        let image = n.target == self.atoms.png;
        let limit = if image {
            wire::MAX_IMAGE_BYTES
        } else {
            MAX_CLIPBOARD_BYTES
        };
        let limit_words = (limit / 4 + 1) as u32;
        let reply = conn
            .get_property(
                true,
                self.window,
                self.atoms.property,
                AtomEnum::ANY,
                0,
                limit_words,
            )?
            .reply()?;
        let total = reply.value.len() + reply.bytes_after as usize;
        if reply.type_ == self.atoms.incr || total > limit {
            if reply.bytes_after > 0 {
                conn.delete_property(self.window, self.atoms.property)?;
            }
            let size = if reply.type_ == self.atoms.incr {
                "more than 256 KB".to_owned()
            } else {
                format!("{total} bytes")
            };
            let what = if image { "an image" } else { "text" };
            tracing::info!("input: X clipboard of {size} not sent to the page");
            publish.clipboard(wire::encode_error(&format!(
                "The remote clipboard holds {size} of {what}, over the {limit}-byte limit: copy less."
            )));
            return Ok(());
        }
        if image {
            publish.clipboard(wire::encode_image(&reply.value));
            return Ok(());
        }
        let text = if reply.type_ == u32::from(AtomEnum::STRING) {
            reply.value.iter().map(|&b| char::from(b)).collect()
        } else {
            String::from_utf8_lossy(&reply.value).into_owned()
        };
        publish.clipboard(wire::encode_clipboard(&text));
        Ok(())
    }

    /// The owner listed its TARGETS (or refused): ask for an image when it offers one and no
    /// text, else for text.
    fn choose_target(
        &mut self,
        conn: &impl Connection,
        n: &SelectionNotifyEvent,
    ) -> Result<(), ReplyError> {
        let mut offers: Vec<Atom> = Vec::new();
        if n.property != x11rb::NONE {
            let reply = conn
                .get_property(
                    true,
                    self.window,
                    self.atoms.property,
                    AtomEnum::ATOM,
                    0,
                    1024,
                )?
                .reply()?;
            offers = reply.value32().map(|v| v.collect()).unwrap_or_default();
        }
        let text = [self.atoms.utf8, self.atoms.text, AtomEnum::STRING.into()];
        let target = if offers.contains(&self.atoms.png) && !offers.iter().any(|a| text.contains(a))
        {
            self.atoms.png
        } else {
            self.atoms.utf8
        };
        conn.convert_selection(
            self.window,
            self.atoms.clipboard,
            target,
            self.atoms.property,
            n.time,
        )?;
        Ok(())
    }

    /// Another client asks for the selection we own.
    fn answer(
        &mut self,
        conn: &impl Connection,
        r: &SelectionRequestEvent,
    ) -> Result<(), ConnectionError> {
        // Obsolete clients pass no property: use the target as the property name.
        let property = if r.property == x11rb::NONE {
            r.target
        } else {
            r.property
        };
        let a = self.atoms;
        let string = u32::from(AtomEnum::STRING);
        let done = match &self.owned {
            None => false,
            // An image is on CLIPBOARD only (PRIMARY may still name us from earlier text).
            Some(Owned::Png(_)) if r.selection != a.clipboard => false,
            Some(Owned::Png(png)) => {
                if r.target == a.targets {
                    conn.change_property32(
                        PropMode::REPLACE,
                        r.requestor,
                        property,
                        AtomEnum::ATOM,
                        &[a.targets, a.png],
                    )?;
                    true
                } else if r.target == a.png {
                    conn.change_property8(PropMode::REPLACE, r.requestor, property, a.png, png)?;
                    true
                } else {
                    false
                }
            }
            Some(_) if r.target == a.targets => {
                let list = [a.targets, a.utf8, a.text, string];
                conn.change_property32(
                    PropMode::REPLACE,
                    r.requestor,
                    property,
                    AtomEnum::ATOM,
                    &list,
                )?;
                true
            }
            Some(Owned::Text(text)) if r.target == a.utf8 || r.target == a.text => {
                conn.change_property8(
                    PropMode::REPLACE,
                    r.requestor,
                    property,
                    a.utf8,
                    text.as_bytes(),
                )?;
                true
            }
            Some(Owned::Text(text)) if r.target == string => {
                let latin1: Vec<u8> = text
                    .chars()
                    .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                    .collect();
                conn.change_property8(
                    PropMode::REPLACE,
                    r.requestor,
                    property,
                    AtomEnum::STRING,
                    &latin1,
                )?;
                true
            }
            Some(_) => false,
        };
        let event = SelectionNotifyEvent {
            response_type: SELECTION_NOTIFY_EVENT,
            sequence: 0,
            time: r.time,
            requestor: r.requestor,
            selection: r.selection,
            target: r.target,
            property: if done { property } else { x11rb::NONE },
        };
        conn.send_event(false, r.requestor, EventMask::NO_EVENT, event)?;
        Ok(())
    }
}
