//! The training-data flags shared by `train` and `tune`.

use std::path::PathBuf;

use crate::data::Format;
use crate::error::Result;
use crate::train::run::DataSource;

#[derive(clap::Args, Clone, Debug)]
pub struct SourceArgs {
    /// A trace file or directory; without it, the built-in generated trace.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Layout of --data (detected from its header when left out).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// History length of a series sample (5-minute windows).
    #[arg(long, default_value_t = 12)]
    pub window: usize,
    /// The target is the peak over the next H windows.
    #[arg(long, default_value_t = 1)]
    pub horizon: usize,
}

impl SourceArgs {
    /// The data source these flags name; `seed` drives the generator and the split.
    pub fn source(&self, seed: u64) -> Result<DataSource> {
        DataSource::choose(
            self.data.clone(),
            self.format,
            self.window,
            self.horizon,
            seed,
        )
    }
}
