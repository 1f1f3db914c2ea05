//! Page to X: answering other clients' requests for the selections we own, in one property
//! or INCR chunks.

use std::sync::Arc;
use std::time::Instant;

use x11rb::connection::Connection;
use x11rb::errors::ConnectionError;
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ChangeWindowAttributesAux, ConnectionExt as _, EventMask, PropMode, Property,
    PropertyNotifyEvent, SelectionNotifyEvent, SelectionRequestEvent, Window,
    SELECTION_NOTIFY_EVENT,
};
use x11rb::wrapper::ConnectionExt as _;

use super::incr::{Send, Step};
use super::{Clipboard, Owned};

/// What answers one request.
enum Answer {
    /// A list of atoms (TARGETS).
    Atoms(Vec<Atom>),
    /// Bytes of this property type.
    Bytes(Atom, Arc<Vec<u8>>),
}

impl Clipboard {
    /// Another client asks for the selection we own.
    pub(super) fn answer(
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
        let done = match self.answer_for(r) {
            None => false,
            Some(Answer::Atoms(list)) => {
                conn.change_property32(
                    PropMode::REPLACE,
                    r.requestor,
                    property,
                    AtomEnum::ATOM,
                    &list,
                )?;
                true
            }
            Some(Answer::Bytes(kind, data)) if data.len() <= self.chunk => {
                conn.change_property8(PropMode::REPLACE, r.requestor, property, kind, &data)?;
                true
            }
            Some(Answer::Bytes(kind, data)) => {
                self.start_send(conn, r.requestor, property, kind, data)?;
                true
            }
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

    /// What answers request `r` from what we own, if we can.
    fn answer_for(&self, r: &SelectionRequestEvent) -> Option<Answer> {
        let a = self.atoms;
        let string = u32::from(AtomEnum::STRING);
        match self.owned.as_ref()? {
            // An image is on CLIPBOARD only (PRIMARY may still name us from earlier text).
            Owned::Png(_) if r.selection != a.clipboard => None,
            Owned::Png(_) if r.target == a.targets => Some(Answer::Atoms(vec![a.targets, a.png])),
            Owned::Png(png) if r.target == a.png => Some(Answer::Bytes(a.png, Arc::clone(png))),
            Owned::Png(_) => None,
            Owned::Text(_) if r.target == a.targets => {
                Some(Answer::Atoms(vec![a.targets, a.utf8, a.text, string]))
            }
            Owned::Text(text) if r.target == a.utf8 || r.target == a.text => {
                Some(Answer::Bytes(a.utf8, Arc::clone(text)))
            }
            Owned::Text(text) if r.target == string => {
                let latin1: Vec<u8> = String::from_utf8_lossy(text)
                    .chars()
                    .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                    .collect();
                Some(Answer::Bytes(string, Arc::new(latin1)))
            }
            Owned::Text(_) => None,
        }
    }

    /// Starts an INCR send: watch the requestor's properties, write the INCR property with the
    /// size; the chunks follow as the requestor deletes it.
    fn start_send(
        &mut self,
        conn: &impl Connection,
        requestor: Window,
        property: Atom,
        kind: Atom,
        data: Arc<Vec<u8>>,
    ) -> Result<(), ConnectionError> {
        conn.change_window_attributes(
            requestor,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::PROPERTY_CHANGE),
        )?;
        let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
        conn.change_property32(
            PropMode::REPLACE,
            requestor,
            property,
            self.atoms.incr,
            &[size],
        )?;
        tracing::debug!(
            requestor,
            bytes = data.len(),
            "input: sending the clipboard INCR"
        );
        let send = Send::new(data, kind, self.chunk, Instant::now());
        // A request for the same property replaces the transfer in flight.
        self.sending.insert((requestor, property), send);
        Ok(())
    }

    /// PropertyNotify on a requestor's window we send to: on deletion, the next chunk.
    pub(super) fn requestor_deleted(
        &mut self,
        conn: &impl Connection,
        p: &PropertyNotifyEvent,
    ) -> Result<(), ConnectionError> {
        if p.state != Property::DELETE {
            return Ok(());
        }
        let key = (p.window, p.atom);
        let Some(send) = self.sending.get_mut(&key) else {
            return Ok(());
        };
        match send.deleted(Instant::now()) {
            Step::Write(range) => {
                let chunk = send.data().get(range).unwrap_or_default();
                conn.change_property8(PropMode::REPLACE, p.window, p.atom, send.kind, chunk)?;
            }
            Step::Finish => {
                conn.change_property8(PropMode::REPLACE, p.window, p.atom, send.kind, &[])?;
                tracing::debug!(requestor = p.window, "input: clipboard INCR send done");
                self.forget_send(conn, p.window, p.atom)?;
            }
        }
        Ok(())
    }

    /// Forgets a send, and stops watching the requestor's window when nothing else goes there.
    pub(super) fn forget_send(
        &mut self,
        conn: &impl Connection,
        window: Window,
        property: Atom,
    ) -> Result<(), ConnectionError> {
        self.sending.remove(&(window, property));
        if !self.sending.keys().any(|(w, _)| *w == window) {
            // The window may be gone: an error event then, ignored.
            conn.change_window_attributes(
                window,
                &ChangeWindowAttributesAux::new().event_mask(EventMask::NO_EVENT),
            )?;
        }
        Ok(())
    }
}
