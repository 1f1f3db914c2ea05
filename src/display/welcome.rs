//! The welcome picture vnrit paints as the root window's background of its own virtual
//! display: a gradient, a grid, a window-like card with how to start programs, coloured discs,
//! so a viewer sees a desktop rather than black.

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    Arc as XArc, ChangeGCAux, ChangeWindowAttributesAux, ConnectionExt as _, CreateGCAux, Drawable,
    Gcontext, Rectangle,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

/// Clamp into the X coordinate range.
fn c16(v: i64) -> i16 {
    v.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
}

/// Clamp into the X size range.
fn u16c(v: i64) -> u16 {
    v.clamp(0, i64::from(u16::MAX)) as u16
}

fn rect(x: i64, y: i64, w: i64, h: i64) -> Rectangle {
    Rectangle {
        x: c16(x),
        y: c16(y),
        width: u16c(w),
        height: u16c(h),
    }
}

fn disc(cx: i64, cy: i64, r: i64) -> XArc {
    XArc {
        x: c16(cx - r),
        y: c16(cy - r),
        width: u16c(2 * r),
        height: u16c(2 * r),
        angle1: 0,
        angle2: 360 * 64,
    }
}

/// Mix two 0xRRGGBB colours, `t` in 0..=`n`.
fn mix(a: u32, b: u32, t: u32, n: u32) -> u32 {
    let ch = |c: u32, s: u32| (c >> s) & 0xff;
    let m = |s: u32| (ch(a, s) * (n - t) + ch(b, s) * t) / n.max(1);
    (m(16) << 16) | (m(8) << 8) | m(0)
}

fn fill(
    conn: &RustConnection,
    d: Drawable,
    gc: Gcontext,
    colour: u32,
    rects: &[Rectangle],
) -> Result<(), Box<dyn std::error::Error>> {
    conn.change_gc(gc, &ChangeGCAux::new().foreground(colour))?;
    conn.poly_fill_rectangle(d, gc, rects)?;
    Ok(())
}

pub(super) fn paint(
    conn: &RustConnection,
    screen_num: usize,
    name: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let screen = conn
        .setup()
        .roots
        .get(screen_num)
        .ok_or("the server reported no such screen")?;
    if screen.root_depth != 24 {
        return Err(format!("expected a depth-24 screen, got {}", screen.root_depth).into());
    }
    let root = screen.root;
    let (w, h) = (
        i64::from(screen.width_in_pixels),
        i64::from(screen.height_in_pixels),
    );
    let pix = conn.generate_id()?;
    conn.create_pixmap(
        24,
        pix,
        root,
        screen.width_in_pixels,
        screen.height_in_pixels,
    )?
    .check()?;
    let gc = conn.generate_id()?;
    conn.create_gc(gc, pix, &CreateGCAux::new().graphics_exposures(0))?;

    // Vertical gradient, dusk blue to deep navy, in 64 bands.
    const BANDS: u32 = 64;
    for i in 0..BANDS {
        let y0 = h * i64::from(i) / i64::from(BANDS);
        let y1 = h * i64::from(i + 1) / i64::from(BANDS);
        let colour = mix(0x2c_5c_8a, 0x0d_15_2e, i, BANDS - 1);
        fill(conn, pix, gc, colour, &[rect(0, y0, w, y1 - y0)])?;
    }
    // A faint grid every 48 px.
    let mut lines = Vec::new();
    for x in (0..w).step_by(48) {
        lines.push(rect(x, 0, 1, h));
    }
    for y in (0..h).step_by(48) {
        lines.push(rect(0, y, w, 1));
    }
    fill(conn, pix, gc, 0x35_4f_75, &lines)?;

    // Coloured discs along the lower left.
    let r = (h / 12).max(4);
    for (i, colour) in [0xf2_8c_28u32, 0xe8_4a_5f, 0x2a_c3_b8, 0xf6_d3_5b]
        .iter()
        .enumerate()
    {
        conn.change_gc(gc, &ChangeGCAux::new().foreground(*colour))?;
        let i = i as i64;
        conn.poly_fill_arc(pix, gc, &[disc(w / 10 + i * r * 5 / 2, h - r * 2, r)])?;
    }

    // A window-like card in the middle: shadow, body, title bar, three buttons.
    let (cw, ch) = (w / 2, h / 3);
    let (cx, cy) = ((w - cw) / 2, (h - ch) / 2 - h / 10);
    let bar = (ch / 8).max(6);
    fill(conn, pix, gc, 0x08_0c_18, &[rect(cx + 8, cy + 8, cw, ch)])?;
    fill(conn, pix, gc, 0xf4_f1_ea, &[rect(cx, cy, cw, ch)])?;
    fill(conn, pix, gc, 0x33_41_5c, &[rect(cx, cy, cw, bar)])?;
    for (i, colour) in [0xff_5f_56u32, 0xff_bd_2e, 0x27_c9_3f].iter().enumerate() {
        conn.change_gc(gc, &ChangeGCAux::new().foreground(*colour))?;
        let i = i as i64;
        conn.poly_fill_arc(
            pix,
            gc,
            &[disc(
                cx + bar * (1 + 2 * i) / 2 + bar / 2,
                cy + bar / 2,
                bar / 3,
            )],
        )?;
    }
    // Coloured bars inside the card, like a chart.
    let palette = [
        0x2a_c3_b8u32,
        0xf2_8c_28,
        0xe8_4a_5f,
        0x5b_7c_f6,
        0xf6_d3_5b,
    ];
    for (i, colour) in palette.iter().enumerate() {
        let i = i as i64;
        let bw = cw / 12;
        let bh = (ch - bar) * (3 + i) / 10;
        let bx = cx + cw - cw / 16 - 7 * bw + i * bw * 3 / 2;
        fill(
            conn,
            pix,
            gc,
            *colour,
            &[rect(bx, cy + ch - bh - ch / 12, bw, bh)],
        )?;
    }

    // Text, when the server has the core "fixed" font (Xvfb usually does).
    let font = conn.generate_id()?;
    if conn.open_font(font, b"fixed")?.check().is_ok() {
        conn.change_gc(
            gc,
            &ChangeGCAux::new()
                .foreground(0x1b_26_3b)
                .background(0xf4_f1_ea)
                .font(font),
        )?;
        let lines = [
            "vnrit".to_owned(),
            format!("virtual display {name}  {w}x{h}"),
            format!("run programs here:  DISPLAY={name} xterm &"),
            "or let vnrit start one:  vnrit -- firefox".to_owned(),
            "right-click the desktop for a menu (openbox)".to_owned(),
        ];
        for (i, text) in lines.iter().enumerate() {
            let y = cy + bar + 24 + 18 * i as i64;
            conn.image_text8(pix, gc, c16(cx + 20), c16(y), text.as_bytes())?;
        }
        conn.close_font(font)?;
    }

    // Make it the root background and repaint; the window keeps the pixmap alive.
    conn.change_window_attributes(
        root,
        &ChangeWindowAttributesAux::new().background_pixmap(pix),
    )?;
    conn.clear_area(false, root, 0, 0, 0, 0)?;
    conn.free_pixmap(pix)?;
    conn.free_gc(gc)?;
    conn.sync()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_hits_both_ends() {
        assert_eq!(mix(0x10_20_30, 0xf0_e0_d0, 0, 4), 0x10_20_30);
        assert_eq!(mix(0x10_20_30, 0xf0_e0_d0, 4, 4), 0xf0_e0_d0);
        assert_eq!(mix(0, 0x64, 1, 2), 0x32);
    }
}
