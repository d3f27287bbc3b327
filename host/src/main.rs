//! The `civic` binary: parses the command line and calls the library.

// The service allocates many short-lived buffers per case (JSON, decision records, sled
// nodes); mimalloc handles that pattern much better than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    civic_host::alloc::tune();
    civic_host::cli::main()
}
