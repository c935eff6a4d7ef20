//! poolstat: not built yet.
fn main() {
    eprintln!("poolstat: not built yet");
    std::process::exit(2);
}
