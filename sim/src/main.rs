fn main() -> std::process::ExitCode {
    lakesim::cli::main()
}
