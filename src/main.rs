//! The `lab` binary: parse, run, print errors once with their fix, exit honestly.

use std::process::ExitCode;

use lab::error::{LabError, EXIT_USAGE};

fn main() -> ExitCode {
    lab::out::init_colors();
    match lab::cli::main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // clap errors (bad flags of a lab, `--help`) print themselves.
            if let Some(e) = err.downcast_ref::<clap::Error>() {
                let _ = e.print();
                return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
            }
            // Whoever read our output has gone (`lab list | head -1`): that is how a
            // pipe ends, not a failure. The library lets it travel up (see `lab::out`),
            // wrapped in any amount of context, and the decision is made here.
            let closed_pipe = err.chain().any(|cause| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if closed_pipe {
                return ExitCode::SUCCESS;
            }
            let code = err
                .downcast_ref::<LabError>()
                .map_or(EXIT_USAGE, |e| e.code);
            eprintln!("lab: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  because: {cause}");
            }
            if let Some(fix) = err
                .downcast_ref::<LabError>()
                .and_then(|e| e.fix.as_deref())
            {
                eprintln!("  fix: {}", fix.replace('\n', "\n  "));
            }
            ExitCode::from(code)
        }
    }
}
