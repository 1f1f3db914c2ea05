//! Video stage benchmark (placeholder while the module is built).
fn main() {}
