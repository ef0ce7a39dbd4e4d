//! The data flags shared by `train`, `tune` and `data`.

use std::path::PathBuf;

use crate::data::Format;
use crate::error::Result;
use crate::train::run::DataSource;

/// How a trace is read into samples.
#[derive(clap::Args, Clone, Debug)]
pub struct LayoutArgs {
    /// Layout of the trace (detected from its header when left out).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// History length of a series sample (5-minute windows).
    #[arg(long, default_value_t = 12)]
    pub window: usize,
    /// The target is the peak over the next H windows.
    #[arg(long, default_value_t = 1)]
    pub horizon: usize,
}

#[derive(clap::Args, Clone, Debug)]
pub struct SourceArgs {
    /// A trace file, a directory, or a quoted glob of export shards (`exports/*.json.gz`);
    /// without it, the built-in generated trace.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub layout: LayoutArgs,
}

impl SourceArgs {
    /// The data source these flags name; `seed` drives the generator and the split.
    pub fn source(&self, seed: u64) -> Result<DataSource> {
        DataSource::choose(
            self.data.clone(),
            self.layout.format,
            self.layout.window,
            self.layout.horizon,
            seed,
        )
    }
}
