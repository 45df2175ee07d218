#![forbid(unsafe_code)]

fn main() {
    std::process::exit(torrust_tracker_deployer::cli::main());
}
