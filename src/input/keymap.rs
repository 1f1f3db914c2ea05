//! The X server's keyboard mapping as seen by the injector, and spare keycodes.
//!
//! [`Keymap::keycode_for`] finds the keycode that produces a keysym with the modifiers now
//! held (Shift, AltGr). When none does (a character of another layout, or one that needs a
//! modifier state the user is not in), a spare keycode (one with no keysyms at all) is bound
//! to the keysym on every level with ChangeKeyboardMapping, so pressing it types exactly
//! that keysym whatever modifiers are down. Bindings are reused and recycled least recently
//! used first, never while the key is held, and removed again by [`Keymap::unbind_all`].
//!
//! The mapping is re-read when the server announces a change (MappingNotify); a spare
//! keycode somebody else bound in the meantime leaves the pool.

use std::collections::HashSet;

use x11rb::connection::Connection;
use x11rb::errors::{ConnectionError, ReplyError};
use x11rb::protocol::xproto::{ConnectionExt as _, Keycode};

use super::keys::{is_modifier, sym};

/// Spare keycodes kept for binding, at most.
const MAX_SPARES: usize = 24;

/// One keycode the injector may bind.
#[derive(Debug)]
struct Spare {
    keycode: Keycode,
    bound: Option<u32>,
    last_used: u64,
}

/// The keyboard mapping and the spare keycode pool.
#[derive(Debug)]
pub struct Keymap {
    min: Keycode,
    per: usize,
    syms: Vec<u32>,
    spares: Vec<Spare>,
    clock: u64,
}

impl Keymap {
    /// Read the current mapping and pick the spare keycodes.
    pub fn load(conn: &impl Connection) -> Result<Keymap, ReplyError> {
        let mut map = Keymap {
            min: 0,
            per: 0,
            syms: Vec::new(),
            spares: Vec::new(),
            clock: 0,
        };
        map.reload(conn)?;
        let max = map.max_keycode();
        // Take unused keycodes from the top: low ones are where layouts put real keys.
        for kc in (map.min..=max).rev() {
            if map.spares.len() == MAX_SPARES {
                break;
            }
            if map.row(kc).iter().all(|&s| s == 0) {
                map.spares.push(Spare {
                    keycode: kc,
                    bound: None,
                    last_used: 0,
                });
            }
        }
        Ok(map)
    }

    /// Re-read the mapping after a MappingNotify.
    pub fn reload(&mut self, conn: &impl Connection) -> Result<(), ReplyError> {
        let setup = conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let reply = conn
            .get_keyboard_mapping(min, max.saturating_sub(min).saturating_add(1))?
            .reply()?;
        self.min = min;
        self.per = usize::from(reply.keysyms_per_keycode);
        self.syms = reply.keysyms;
        // A spare is still ours if it is empty or holds only what we bound.
        let rows: Vec<(Keycode, Vec<u32>)> = self
            .spares
            .iter()
            .map(|s| (s.keycode, self.row(s.keycode).to_vec()))
            .collect();
        self.spares.retain_mut(|s| {
            let Some((_, row)) = rows.iter().find(|(kc, _)| *kc == s.keycode) else {
                return false;
            };
            if row.iter().all(|&k| k == 0) {
                s.bound = None;
                true
            } else {
                // XKB may rewrite the row (fewer levels), but only with our keysym.
                s.bound
                    .is_some_and(|b| row.iter().all(|&k| k == 0 || k == b))
            }
        });
        Ok(())
    }

    fn max_keycode(&self) -> Keycode {
        let rows = self.syms.len().checked_div(self.per).unwrap_or(0);
        let last = usize::from(self.min) + rows.saturating_sub(1);
        Keycode::try_from(last).unwrap_or(Keycode::MAX)
    }

    fn row(&self, kc: Keycode) -> &[u32] {
        let Some(i) = usize::from(kc).checked_sub(usize::from(self.min)) else {
            return &[];
        };
        self.syms
            .get(i * self.per..(i + 1) * self.per)
            .unwrap_or(&[])
    }

    /// The keysym of `kc` at `column` (0 plain, 1 shifted, 4/5 AltGr), 0 if none.
    pub fn keysym_at(&self, kc: Keycode, column: usize) -> u32 {
        self.row(kc).get(column).copied().unwrap_or(0)
    }

    /// The keycode whose first keysym is `ks`, if any (for modifiers and named keys).
    fn find_any_column(&self, ks: u32) -> Option<Keycode> {
        let mut best: Option<(usize, Keycode)> = None;
        for kc in self.min..=self.max_keycode() {
            if let Some(col) = self.row(kc).iter().position(|&s| s == ks) {
                if best.is_none_or(|(c, _)| col < c) {
                    best = Some((col, kc));
                }
            }
        }
        best.map(|(_, kc)| kc)
    }

    /// The keycode that produces `ks` given the levels now held, binding a spare keycode
    /// when no existing one does. `held` are keycodes currently pressed (never recycled).
    pub fn keycode_for(
        &mut self,
        conn: &impl Connection,
        ks: u32,
        held: &HashSet<Keycode>,
    ) -> Result<Option<Keycode>, ConnectionError> {
        // Keys that modifiers do not change: any keycode carrying the keysym will do.
        if is_modifier(ks)
            || (0xff00..=0xffff).contains(&ks)
            || (0x1008_ff00..=0x1008_ffff).contains(&ks)
        {
            if let Some(kc) = self.find_any_column(ks) {
                return Ok(Some(kc));
            }
        } else {
            let shift = self.held_has(held, &[sym::SHIFT_L, sym::SHIFT_R]);
            let level3 = self.held_has(held, &[sym::ISO_LEVEL3_SHIFT, sym::MODE_SWITCH]);
            let column = usize::from(shift) + if level3 { 4 } else { 0 };
            for kc in self.min..=self.max_keycode() {
                let row = self.row(kc);
                if row.get(column) == Some(&ks) {
                    // A key whose only keysym is `ks` on level 1 also means `ks` shifted.
                    return Ok(Some(kc));
                }
                if shift
                    && !level3
                    && row.first() == Some(&ks)
                    && row.get(1).is_none_or(|&s| s == 0)
                {
                    return Ok(Some(kc));
                }
            }
            // A spare already bound to it.
            if let Some(kc) = self
                .spares
                .iter()
                .find(|s| s.bound == Some(ks))
                .map(|s| s.keycode)
            {
                self.touch(kc);
                return Ok(Some(kc));
            }
        }
        self.bind_spare(conn, ks, held)
    }

    /// How to type `ks` as one stroke of typed text: a keycode, and the Shift keycode to
    /// hold around it when the keysym is on the shifted level. Keys someone holds are not
    /// used (typing must not release them); while Shift or AltGr is held anywhere, a spare
    /// keycode bound on every level is used, so the held modifier cannot change the result.
    pub fn stroke_for(
        &mut self,
        conn: &impl Connection,
        ks: u32,
        held: &HashSet<Keycode>,
    ) -> Result<Option<(Keycode, Option<Keycode>)>, ConnectionError> {
        let levels_held = self.held_has(
            held,
            &[
                sym::SHIFT_L,
                sym::SHIFT_R,
                sym::ISO_LEVEL3_SHIFT,
                sym::MODE_SWITCH,
            ],
        );
        if !levels_held {
            let free = |kc: &Keycode| !held.contains(kc);
            let at = |col: usize| {
                (self.min..=self.max_keycode())
                    .filter(free)
                    .find(|&kc| self.row(kc).get(col) == Some(&ks))
            };
            let found = match (at(0), at(1), self.find_any_column(sym::SHIFT_L)) {
                (Some(kc), _, _) => Some((kc, None)),
                (None, Some(kc), Some(shift)) => Some((kc, Some(shift))),
                _ => None,
            };
            if let Some((kc, shift)) = found {
                // One of our spares, bound earlier: it was just used, so recycle it last.
                self.touch(kc);
                return Ok(Some((kc, shift)));
            }
        }
        Ok(self.bind_spare(conn, ks, held)?.map(|kc| (kc, None)))
    }

    fn held_has(&self, held: &HashSet<Keycode>, wanted: &[u32]) -> bool {
        held.iter()
            .any(|&kc| wanted.contains(&self.keysym_at(kc, 0)))
    }

    fn touch(&mut self, kc: Keycode) {
        self.clock += 1;
        let now = self.clock;
        if let Some(s) = self.spares.iter_mut().find(|s| s.keycode == kc) {
            s.last_used = now;
        }
    }

    /// Bind the least recently used spare keycode not now held to `ks`.
    fn bind_spare(
        &mut self,
        conn: &impl Connection,
        ks: u32,
        held: &HashSet<Keycode>,
    ) -> Result<Option<Keycode>, ConnectionError> {
        if let Some(kc) = self
            .spares
            .iter()
            .find(|s| s.bound == Some(ks))
            .map(|s| s.keycode)
        {
            self.touch(kc);
            return Ok(Some(kc));
        }
        let Some(spare) = self
            .spares
            .iter_mut()
            .filter(|s| !held.contains(&s.keycode))
            .min_by_key(|s| s.last_used)
        else {
            return Ok(None);
        };
        let per = self.per.max(1);
        let row = vec![ks; per];
        conn.change_keyboard_mapping(1, spare.keycode, per as u8, &row)?;
        spare.bound = Some(ks);
        let kc = spare.keycode;
        // Mirror the change locally so lookups agree before MappingNotify comes back.
        if let Some(i) = usize::from(kc).checked_sub(usize::from(self.min)) {
            if let Some(slot) = self.syms.get_mut(i * per..(i + 1) * per) {
                slot.copy_from_slice(&row);
            }
        }
        self.touch(kc);
        Ok(Some(kc))
    }

    /// Give every bound spare keycode back (no keysyms), e.g. on shutdown.
    pub fn unbind_all(&mut self, conn: &impl Connection) -> Result<(), ConnectionError> {
        let per = self.per.max(1);
        let empty = vec![0u32; per];
        for s in self.spares.iter_mut().filter(|s| s.bound.is_some()) {
            conn.change_keyboard_mapping(1, s.keycode, per as u8, &empty)?;
            s.bound = None;
        }
        Ok(())
    }
}
