//! Build check: on x86 and x86_64, OpenH264's assembly needs `nasm`. Without it the openh264
//! crate still builds, silently, with a C-only encoder about 2.5 times slower (1080p: 34.7 ms
//! a frame instead of 13.7 ms, too slow for 30 fps), and the only trace is one line in that
//! crate's build output. So a missing `nasm` stops the build with a message that says how to
//! fix it; `VNRIT_ALLOW_NO_NASM=1` builds the slow encoder anyway, with a warning.
//! (`OPENH264_NO_ASM`, the openh264 crate's own switch for no assembly, also skips the check.)

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Not PATH: a changed PATH would rebuild vnrit; a failed check runs again anyway.
    for var in ["NASM", "VNRIT_ALLOW_NO_NASM", "OPENH264_NO_ASM"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if !matches!(arch.as_str(), "x86" | "x86_64") || std::env::var_os("OPENH264_NO_ASM").is_some() {
        return;
    }
    let nasm = std::env::var("NASM").unwrap_or_else(|_| "nasm".to_string());
    let found = Command::new(&nasm)
        .arg("-v")
        .output()
        .is_ok_and(|out| out.status.success());
    if found {
        return;
    }
    let advice = "install nasm (Debian/Ubuntu: apt-get install nasm; Fedora: dnf install nasm) \
                  and build again";
    if std::env::var_os("VNRIT_ALLOW_NO_NASM").is_some() {
        println!(
            "cargo:warning=`{nasm}` not found: the H.264 encoder is built without its assembly \
             and is about 2.5x slower; {advice}"
        );
        return;
    }
    eprintln!(
        "\nerror: vnrit needs the `nasm` assembler on {arch} to build a fast H.264 encoder \
         (`{nasm}` was not found).\n  Fix: {advice}.\n  Or set VNRIT_ALLOW_NO_NASM=1 to build \
         a C-only encoder about 2.5x slower.\n"
    );
    std::process::exit(1);
}
