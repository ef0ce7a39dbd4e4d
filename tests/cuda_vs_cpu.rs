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

on_the_emulator!(
    matmul_matches_cpu,
    linear_forward_and_backward_match_cpu,
    conv1d_matches_cpu,
    layer_norm_matches_cpu,
    attention_matches_cpu,
    softmax_activations_bias_pool_match_cpu,
    dropout_masks_are_bit_identical_to_cpu,
    losses_match_cpu,
    adamw_matches_cpu_optimizer,
);
