//! `lantern convert`: a GGUF model into a `.lantern` container (docs/format.md), its
//! tensors as they are. Re-quantizing, per-layer policies, pruning and SWSC factors are
//! `lantern-lab convert`'s.

use anyhow::Result;
use clap::Args;
use lantern_cli::container::ContainerArgs;

/// Convert a GGUF model into a `.lantern` container, its tensors as they are (to
/// re-quantize, prune or factor them: `lantern-lab convert`).
#[derive(Debug, Args)]
pub(crate) struct ConvertArgs {
    #[command(flatten)]
    container: ContainerArgs,
}

pub(crate) fn run(args: ConvertArgs) -> Result<()> {
    args.container.open()?.write(Vec::new(), Vec::new())
}
