//! X to page: reading the X clipboard when another client owns it, in one property or INCR
//! chunks, and publishing it to the pages.

use std::time::Instant;

use x11rb::connection::Connection;
use x11rb::errors::ReplyError;
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ConnectionExt as _, GetPropertyReply, Property, PropertyNotifyEvent,
    SelectionNotifyEvent,
};

use super::incr::{Got, Receive};
use super::{Clipboard, Publisher};
use crate::input::wire::ClipData;

impl Clipboard {
    /// The owner answered our ConvertSelection.
    pub(super) fn received(
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
        let reply = self.read_property(conn)?;
        let total = reply.value.len() + reply.bytes_after as usize;
        if reply.type_ == self.atoms.incr {
            // Reading the INCR property deleted it: the owner starts sending chunks.
            let announced = reply.value32().and_then(|mut v| v.next()).unwrap_or(0);
            let mut receive = Receive::new(announced as usize, self.max, Instant::now());
            receive.kind = n.target;
            if receive.over().is_some() {
                self.too_large(announced as usize, n.target == self.atoms.png, publish);
            }
            self.incoming = Some(receive);
            return Ok(());
        }
        self.incoming = None;
        if total > self.max {
            if reply.bytes_after > 0 {
                conn.delete_property(self.window, self.atoms.property)?;
            }
            self.too_large(total, reply.type_ == self.atoms.png, publish);
            return Ok(());
        }
        self.publish(reply.type_, reply.value, publish);
        Ok(())
    }

    /// Reads and deletes our property, up to the size limit.
    fn read_property(&self, conn: &impl Connection) -> Result<GetPropertyReply, ReplyError> {
        let limit_words = u32::try_from(self.max / 4 + 1).unwrap_or(u32::MAX);
        conn.get_property(
            true,
            self.window,
            self.atoms.property,
            AtomEnum::ANY,
            0,
            limit_words,
        )?
        .reply()
    }

    /// PropertyNotify on our window: during an INCR transfer, the owner wrote the next chunk.
    pub(super) fn incoming_chunk(
        &mut self,
        conn: &impl Connection,
        p: &PropertyNotifyEvent,
        publish: &Publisher,
    ) -> Result<(), ReplyError> {
        if p.atom != self.atoms.property || p.state != Property::NEW_VALUE {
            return Ok(());
        }
        let Some(receive) = self.incoming.as_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        if receive.over().is_some() {
            // Over the limit: delete each chunk unread until the empty one.
            let len = conn
                .get_property(false, self.window, self.atoms.property, AtomEnum::ANY, 0, 0)?
                .reply()?
                .bytes_after;
            conn.delete_property(self.window, self.atoms.property)?;
            if receive.drained(len as usize, now) {
                self.incoming = None;
            }
            return Ok(());
        }
        let reply = self.read_property(conn)?;
        let Some(receive) = self.incoming.as_mut() else {
            return Ok(());
        };
        let got = if reply.bytes_after > 0 {
            // A chunk larger than the whole limit: not read, deleted.
            conn.delete_property(self.window, self.atoms.property)?;
            receive.skip(reply.value.len() + reply.bytes_after as usize, now)
        } else {
            if !reply.value.is_empty() {
                receive.kind = reply.type_;
            }
            receive.chunk(&reply.value, now)
        };
        let kind = receive.kind;
        match got {
            Got::More => {}
            Got::TooLarge(total) => self.too_large(total, kind == self.atoms.png, publish),
            Got::Drained => self.incoming = None,
            Got::Done(bytes) => {
                self.incoming = None;
                tracing::debug!(bytes = bytes.len(), "input: INCR clipboard received");
                self.publish(kind, bytes, publish);
            }
        }
        Ok(())
    }

    /// Tells the pages the X clipboard is over the limit (nothing of it is sent).
    fn too_large(&self, size: usize, image: bool, publish: &Publisher) {
        let what = if image { "an image" } else { "text" };
        tracing::info!("input: X clipboard of {size} bytes not sent to the page");
        publish.clipboard_error(&format!(
            "The remote clipboard holds {size} bytes of {what}, over the server's {}-byte limit (--max-clipboard): copy less.",
            self.max
        ));
    }

    /// Publishes a complete content whose property type is `kind`.
    fn publish(&self, kind: Atom, bytes: Vec<u8>, publish: &Publisher) {
        if kind == self.atoms.png {
            publish.clipboard(ClipData::png(bytes));
            return;
        }
        let text = if kind == u32::from(AtomEnum::STRING) {
            bytes.iter().map(|&b| char::from(b)).collect()
        } else {
            String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        };
        publish.clipboard(ClipData::text(text));
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
}
