//! agora cli.
fn main() {}
