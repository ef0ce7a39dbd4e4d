//! The emulated CUDA kernels against the engine's CPU kernels; the checks
//! themselves live in tests/cuda_support/vs_cpu.rs (shared with the GPU run).

mod cuda_support;
mod support;

use convformer::cuda::EmuBackend;
use cuda_support::vs_cpu;

/// One test per shared check, each run on the emulator.
macro_rules! on_the_emulator {
    ($($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                vs_cpu::$check(&EmuBackend);
            }
        )*
    };
}

vs_cpu::every_check!(on_the_emulator);
