//! `infrawatch-collector`: not built yet (see the crate documentation).

fn main() -> std::process::ExitCode {
    eprintln!("infrawatch-collector: not built yet; the collector arrives with a later release");
    std::process::ExitCode::from(2)
}
