//! A set of 16x16 macroblocks of one picture: which parts of the screen changed, were coded
//! lossy, or are to be sent again. Raster order, one flag per macroblock.

use super::frame::I420Frame;
use crate::capture::DamageRect;

/// One flag per macroblock of a `width_mbs` x `height_mbs` picture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MbMap {
    width_mbs: u32,
    height_mbs: u32,
    flags: Vec<bool>,
    count: u32,
}

impl MbMap {
    /// An empty set for a picture of `width` x `height` pixels (partial macroblocks count).
    pub fn new(width: u32, height: u32) -> Self {
        let (width_mbs, height_mbs) = (width.div_ceil(16), height.div_ceil(16));
        MbMap {
            width_mbs,
            height_mbs,
            flags: vec![false; (width_mbs * height_mbs) as usize],
            count: 0,
        }
    }

    /// Macroblocks per row and rows.
    pub fn size_in_mbs(&self) -> (u32, u32) {
        (self.width_mbs, self.height_mbs)
    }

    /// How many macroblocks are in the set.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Every macroblock of the picture.
    pub fn len(&self) -> u32 {
        self.width_mbs * self.height_mbs
    }

    /// Whether no macroblock is in the set.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether macroblock `addr` (raster order) is in the set.
    pub fn get(&self, addr: u32) -> bool {
        self.flags.get(addr as usize).copied().unwrap_or(false)
    }

    /// Puts macroblock `addr` in the set (or takes it out); addresses outside are ignored.
    pub fn set(&mut self, addr: u32, on: bool) {
        if let Some(f) = self.flags.get_mut(addr as usize) {
            if *f != on {
                *f = on;
                if on {
                    self.count += 1;
                } else {
                    self.count -= 1;
                }
            }
        }
    }

    /// Adds every macroblock that `rect` (pixels) touches.
    pub fn add_rect(&mut self, rect: DamageRect) {
        let (x0, y0) = (rect.x / 16, rect.y / 16);
        let x1 = (rect.x.saturating_add(rect.width))
            .div_ceil(16)
            .min(self.width_mbs);
        let y1 = (rect.y.saturating_add(rect.height))
            .div_ceil(16)
            .min(self.height_mbs);
        for my in y0..y1 {
            for mx in x0..x1 {
                self.set(my * self.width_mbs + mx, true);
            }
        }
    }

    /// Adds every macroblock.
    pub fn fill(&mut self) {
        self.flags.fill(true);
        self.count = self.len();
    }

    /// Empties the set.
    pub fn clear(&mut self) {
        self.flags.fill(false);
        self.count = 0;
    }

    /// Adds the macroblocks of `other` (same picture size; otherwise all of them).
    pub fn union(&mut self, other: &MbMap) {
        if other.flags.len() != self.flags.len() {
            self.fill();
            return;
        }
        if other.count == 0 {
            return;
        }
        for (i, &f) in other.flags.iter().enumerate() {
            if f {
                self.set(i as u32, true);
            }
        }
    }

    /// Takes the macroblocks of `other` out of the set.
    pub fn subtract(&mut self, other: &MbMap) {
        if self.count == 0 || other.count == 0 {
            return;
        }
        for (i, &f) in other.flags.iter().enumerate().take(self.flags.len()) {
            if f {
                self.set(i as u32, false);
            }
        }
    }

    /// The addresses in the set, in raster order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.flags
            .iter()
            .enumerate()
            .filter(|(_, &f)| f)
            .map(|(i, _)| i as u32)
    }

    /// The first `n` addresses of the set (raster order) as a new set of the same size.
    pub fn first(&self, n: u32) -> MbMap {
        let mut out = MbMap {
            width_mbs: self.width_mbs,
            height_mbs: self.height_mbs,
            flags: vec![false; self.flags.len()],
            count: 0,
        };
        for addr in self.iter().take(n as usize) {
            out.set(addr, true);
        }
        out
    }

    /// The smallest pixel rectangle covering the set, clipped to `width` x `height`.
    pub fn bounds(&self, width: u32, height: u32) -> Option<DamageRect> {
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
        for addr in self.iter() {
            let (mx, my) = (addr % self.width_mbs, addr / self.width_mbs);
            x0 = x0.min(mx);
            y0 = y0.min(my);
            x1 = x1.max(mx + 1);
            y1 = y1.max(my + 1);
        }
        if x1 == 0 {
            return None;
        }
        let (px0, py0) = (x0 * 16, y0 * 16);
        let (px1, py1) = ((x1 * 16).min(width), (y1 * 16).min(height));
        (px1 > px0 && py1 > py0).then_some(DamageRect {
            x: px0,
            y: py0,
            width: px1 - px0,
            height: py1 - py0,
        })
    }
}

/// The macroblocks where `decoded` (planes with their strides) differs from `frame` at all:
/// what a lossless refinement has to send after a picture the encoder coded.
pub fn differing(frame: &I420Frame, decoded: [(&[u8], usize); 3]) -> MbMap {
    let mut m = MbMap::new(frame.width, frame.height);
    let (cw, ch) = frame.chroma_size();
    let planes = [
        (&frame.y[..], frame.width, frame.height, 16),
        (&frame.u[..], cw, ch, 8),
        (&frame.v[..], cw, ch, 8),
    ];
    for ((src, w, h, mb), (dec, stride)) in planes.into_iter().zip(decoded) {
        let (w, h, mb) = (w as usize, h as usize, mb as usize);
        for y in 0..h {
            let (a, Some(b)) = (&src[y * w..y * w + w], dec.get(y * stride..y * stride + w)) else {
                m.fill();
                return m;
            };
            if a == b {
                continue;
            }
            for x in (0..w).step_by(mb) {
                let end = (x + mb).min(w);
                if a[x..end] != b[x..end] {
                    m.set(((y / mb) * m.width_mbs as usize + x / mb) as u32, true);
                }
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rects_cover_every_touched_macroblock() {
        let mut m = MbMap::new(1920, 1080);
        assert_eq!(m.size_in_mbs(), (120, 68));
        m.add_rect(DamageRect {
            x: 15,
            y: 0,
            width: 2,
            height: 1,
        });
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![0, 1]);
        m.add_rect(DamageRect {
            x: 1900,
            y: 1070,
            width: 20,
            height: 10,
        });
        assert!(m.get(120 * 68 - 1));
        assert_eq!(m.count(), 6, "two plus two by two");
        assert_eq!(
            m.bounds(1920, 1080),
            Some(DamageRect {
                x: 0,
                y: 0,
                width: 1920,
                height: 1080
            })
        );
        let first = m.first(2);
        assert_eq!(first.count(), 2);
        m.subtract(&first);
        assert_eq!(m.count(), 4);
        assert!(!m.get(0) && m.get(120 * 68 - 1));
        let mut other = MbMap::new(64, 64);
        other.union(&m);
        assert_eq!(other.count(), 16, "a map of another size means everything");
    }
}
