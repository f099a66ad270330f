//! `uploadgate`: serve the gate on one machine, inspect and reset quotas,
//! export usage, check configuration. Parsing and wiring only; the work lives in the
//! library crates.

mod cli;
mod commands;
mod export;

use std::process::ExitCode;

/// mimalloc instead of glibc malloc: the server allocates small, short-lived
/// buffers on every worker thread, and glibc's arena locks showed up in
/// profiles of `POST /v1/uploads` under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let invocation = match cli::parse(std::env::args_os().collect()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("uploadgate: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("uploadgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(invocation)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes.
            eprintln!("uploadgate: {e:#}");
            ExitCode::from(2)
        }
    }
}
