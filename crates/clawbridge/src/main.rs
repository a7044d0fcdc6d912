//! `clawbridge`: see `clawbridge --help`.

fn main() -> std::process::ExitCode {
    clawbridge::cli::main()
}
