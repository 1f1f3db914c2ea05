//! CLI entry. OWNED BY LEAD.
/// Entry point.
pub fn main() -> i32 { 0 }
