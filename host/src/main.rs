//! The `civic` binary: parses the command line and calls the library.

fn main() -> std::process::ExitCode {
    civic_host::cli::main()
}
