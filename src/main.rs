//! The `vnrit` binary: all the work is in the library; see [`vnrit::cli`].

fn main() {
    std::process::exit(vnrit::cli::main());
}
