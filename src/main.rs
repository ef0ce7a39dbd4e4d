//! The `convformer` command line.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "convformer",
    version,
    about = "Predict the peak memory of cloud workloads with a CNN+Transformer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the CPU threads available to the engine.
    Devices,
    /// Searches hyperparameters with BOHB (Bayesian optimisation + Hyperband).
    Tune(Box<convformer::cli::tune::TuneArgs>),
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Devices => println!("cpu: {} rayon threads", rayon::current_num_threads()),
        Command::Tune(args) => {
            if let Err(e) = convformer::cli::tune::execute(&args) {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
}
