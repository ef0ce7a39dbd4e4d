//! The `convformer` command line.

use clap::{Parser, Subcommand};
use convformer::cli;

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
    /// Train ConvFormerNet and write a run directory (model, config, metrics, plots).
    Train(cli::train::TrainArgs),
    /// Evaluate a trained run against the naive and ridge baselines.
    Eval(cli::eval::EvalArgs),
    /// Write a trained run's predictions as CSV.
    Predict(cli::predict::PredictArgs),
    /// Lists the CPU threads and CUDA devices available to the engine.
    Devices,
    /// Inspects, plots or generates Borg traces.
    #[command(subcommand)]
    Data(cli::data::DataCmd),
    /// Searches hyperparameters with BOHB (Bayesian optimisation + Hyperband).
    Tune(Box<cli::tune::TuneArgs>),
}

fn main() {
    let cli = Cli::parse();
    convformer::train::alloc::keep_freed_memory();
    let result = match cli.command {
        Command::Train(args) => cli::train::run(&args),
        Command::Eval(args) => cli::eval::run(&args),
        Command::Predict(args) => cli::predict::run(&args),
        Command::Devices => {
            cli::devices::run();
            Ok(())
        }
        Command::Data(cmd) => cli::data::run(cmd),
        Command::Tune(args) => cli::tune_shared::dispatch(&args),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
