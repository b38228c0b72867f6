//! The `graphscale` binary: parses flags, runs a subcommand, maps errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

/// `println!` that returns an error on a closed pipe instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}
pub(crate) use say;

/// mimalloc: burn's CPU backend allocates many short-lived buffers, and glibc malloc was 1.5 to
/// 1.75x slower on large graphs (shared/STACK.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod api;
mod app;
mod bench;
mod bench_keda;
mod bench_rl;
mod data;
mod experiment;
mod flags;
mod flags_bench;
mod flags_rl;
mod forecast;
mod graph;
mod live;
mod operator;
mod rl;
mod serve;
mod simulate;
mod tune;
mod twin;

fn main() -> ExitCode {
    let cli = flags::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRAPHSCALE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match app::run(cli) {
        Ok(code) => code,
        // A closed pipe (`graphscale ... | head`) is not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            // `{:#}`: the message, then each cause, `: `-separated (our error types keep their
            // source out of their own message, so nothing is said twice).
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
