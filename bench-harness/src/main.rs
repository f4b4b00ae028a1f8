//! `ferromq-bench`: load generator and reports for ferromq.
fn main() {}
